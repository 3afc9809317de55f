"""`make notebook`: the Jupyter server Colab's local runtime connects to, and
the notebooks' first cell, which says where it runs and what it does."""

import asyncio
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from absl.testing import absltest
import pytest
import nbformat
from tornado import websocket

pytestmark = pytest.mark.slow  # Starts a Jupyter server and kernels.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, 'notebooks')
COLAB = 'https://colab.research.google.com'
TOKEN = 'fedmeta-test'
START_TIMEOUT_S = 600  # The first call builds .venv-notebook from the lock.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _setup_cell() -> str:
  """The first code cell, the same in every notebook."""
  cells = set()
  for name in sorted(os.listdir(NOTEBOOKS)):
    if name.endswith('.ipynb'):
      notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
      cells.add(next(c.source for c in notebook.cells
                     if c.cell_type == 'code'))
  assert len(cells) == 1, 'the notebooks\' first code cells differ'
  return cells.pop()


async def _execute(url: str, kernel_id: str, code: str) -> str:
  """Runs `code` in the kernel over the channels websocket, as Colab's
  frontend does; returns what it printed."""
  connection = await websocket.websocket_connect(
      f'ws://{url}/api/kernels/{kernel_id}/channels?token={TOKEN}')
  msg_id = uuid.uuid4().hex
  connection.write_message(json.dumps({
      'header': {'msg_id': msg_id, 'msg_type': 'execute_request',
                 'username': 'test', 'session': uuid.uuid4().hex,
                 'version': '5.3'},
      'parent_header': {}, 'metadata': {}, 'channel': 'shell',
      'content': {'code': code, 'silent': False, 'store_history': False,
                  'user_expressions': {}, 'allow_stdin': False}}))
  printed = ''
  while True:
    message = json.loads(await connection.read_message())
    if message.get('parent_header', {}).get('msg_id') != msg_id:
      continue
    if message['msg_type'] == 'stream':
      printed += message['content']['text']
    elif message['msg_type'] == 'error':
      raise AssertionError('\n'.join(message['content']['traceback']))
    elif (message['msg_type'] == 'status'
          and message['content']['execution_state'] == 'idle'):
      connection.close()
      return printed


class NotebookServerTest(absltest.TestCase):

  def test_serves_colab_a_kernel_that_imports_fedmeta(self):
    port = _free_port()
    server = subprocess.Popen(
        ['make', 'notebook', f'NOTEBOOK_PORT={port}',
         f'NOTEBOOK_TOKEN={TOKEN}'],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f'127.0.0.1:{port}'

    def get(path, method='GET', body=None):
      request = urllib.request.Request(
          f'http://{url}{path}', method=method, data=body,
          headers={'Authorization': f'token {TOKEN}', 'Origin': COLAB})
      with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers, json.loads(response.read() or b'null')

    try:
      deadline = time.monotonic() + START_TIMEOUT_S
      while True:
        try:
          headers, specs = get('/api/kernelspecs')
          break
        except OSError:
          self.assertIsNone(server.poll(), 'make notebook exited')
          self.assertLess(time.monotonic(), deadline)
          time.sleep(1)
      self.assertEqual(headers['Access-Control-Allow-Origin'], COLAB)
      self.assertEqual(specs['default'], 'fedmeta')
      argv = specs['kernelspecs']['fedmeta']['spec']['argv']
      self.assertEqual(argv[0], os.path.join(REPO, '.venv', 'bin', 'python'))
      _, kernel = get('/api/kernels', 'POST', b'{"name": "fedmeta"}')
      printed = asyncio.run(asyncio.wait_for(_execute(
          url, kernel['id'], _setup_cell() + '\nimport fedmeta\n'
          'print("fedmeta", fedmeta.__version__)'), 120))
      self.assertIn('fedmeta found', printed)
      self.assertIn('fedmeta ', printed.splitlines()[-1])
      get(f'/api/kernels/{kernel["id"]}', 'DELETE')
    finally:
      os.killpg(server.pid, signal.SIGTERM)
      server.wait(timeout=60)


def _python(*versions: str):
  """An interpreter of one of `versions` ('3.12', ...) that runs, or None."""
  candidates = [shutil.which(f'python{v}') for v in versions]
  candidates += sorted(glob.glob(os.path.expanduser(
      '~/.pyenv/versions/*/bin/python3')))
  for python in filter(None, candidates):
    result = subprocess.run(
        [python, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
        capture_output=True, text=True, check=False)
    if result.returncode == 0 and result.stdout.strip() in versions:
      return python
  return None


class SetupCellTest(absltest.TestCase):

  def _run(self, python, **env):
    # Not from the repository, whose fedmeta/ would be importable.
    return subprocess.run(
        [python, '-c', _setup_cell()], capture_output=True, text=True,
        timeout=120, check=False, cwd=tempfile.mkdtemp(),
        env=dict(os.environ, **env))

  def test_with_fedmeta_it_does_nothing(self):
    result = self._run(sys.executable)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEqual(result.stdout.strip().splitlines(),
                     ['fedmeta found (this runtime has it): nothing to '
                      'install.'])

  def test_on_python_3_12_it_points_to_a_local_runtime(self):
    python = _python('3.12', '3.13', '3.14')
    if python is None:
      self.skipTest('needs a Python other than 3.11 (python3.12 or 3.13)')
    result = self._run(python)
    self.assertEqual(result.returncode, 1)
    message = result.stderr.strip().splitlines()
    self.assertLen(message, 1, result.stderr)
    self.assertRegex(message[0], r'^Python 3\.1[2-9]: TFF 0\.87 needs Python '
                     r'3\.11.*make notebook.*Connect to a local runtime')

  def test_on_python_3_11_without_fedmeta_it_installs_from_the_clone(self):
    python = _python('3.11')
    if python is None:
      self.skipTest('needs a Python 3.11 other than .venv\'s')
    result = self._run(python, FEDMETA_SOURCE='/nonexistent/fedmeta',
                       PYTHONNOUSERSITE='1')
    if 'fedmeta found' in result.stdout:
      self.skipTest(f'{python} has fedmeta installed')
    self.assertEqual(result.stdout.strip().splitlines()[0],
                     'Python 3.11 without fedmeta: installing the pinned '
                     'stack from /nonexistent/fedmeta.')
    self.assertNotEqual(result.returncode, 0)  # No clone there to install.


if __name__ == '__main__':
  absltest.main()
