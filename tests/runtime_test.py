"""No TFF worker outlives a fedmeta process, however the process ends."""

import os
import signal
import subprocess
import sys

from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import pytest
from fedmeta import runtime
from fedmeta import tff_internals
import tensorflow_federated as tff

from tests import processes

pytestmark = pytest.mark.slow  # Starts and signals child processes.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 120

# Runs one federated computation, prints its worker's pid, then ends as asked.
CHILD = r'''
import sys, time
from fedmeta import runtime
import tensorflow_federated as tff
runtime.set_local_context()
tff.federated_computation(lambda: 'ok')()
print('worker', *runtime.live_worker_pids(), flush=True)
mode = sys.argv[1]
if mode == 'raise':
  raise RuntimeError('expected failure')
if mode == 'wait':
  time.sleep(300)
'''

# Replaces its context, as each test or notebook cell that sets one does: TFF
# then stops the old context's worker with SIGINT and waits for it.
REPLACE_CONTEXT = r'''
import gc
from fedmeta import runtime
import tensorflow_federated as tff
runtime.set_local_context()
tff.federated_computation(lambda: 'ok')()
first = runtime.live_worker_pids()
runtime.set_local_context()
gc.collect()
tff.federated_computation(lambda: 'ok')()
print('first', *first, flush=True)
'''

# Imports the whole library after TFF (which sets a log level and a context of
# its own) and prints whether that changed anything in the process.
IMPORT_ONLY = r'''
import os, signal, subprocess
import tensorflow_federated
from tensorflow_federated.python.core.impl.executor_stacks import executor_factory
def state():
  return (os.environ.get('TF_CPP_MIN_LOG_LEVEL'), executor_factory.subprocess,
          signal.getsignal(signal.SIGTERM))
before = state()
import fedmeta, fedmeta.aggregation, fedmeta.algorithms, fedmeta.compat
import fedmeta.data, fedmeta.models, fedmeta.privacy, fedmeta.runtime

print(state() == before, before[1] is subprocess)
'''

# Prints each worker's TF_NUM_INTRAOP_THREADS: one context with the option,
# then one without it, in a process whose environment does not set it.
INTRA_OP_THREADS = r'''
import os
from fedmeta import runtime
import tensorflow_federated as tff
os.environ.pop('TF_NUM_INTRAOP_THREADS', None)
for threads in (1, None):
  runtime.set_local_context(intra_op_threads=threads)
  tff.federated_computation(lambda: 'ok')()
  pid, = runtime.live_worker_pids()
  with open(f'/proc/{pid}/environ', 'rb') as f:
    env = dict(e.split(b'=', 1) for e in f.read().split(b'\0') if b'=' in e)
  print(env.get(b'TF_NUM_INTRAOP_THREADS', b'unset').decode(), flush=True)
'''


def _start(mode: str) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, '-c', CHILD, mode], cwd=REPO, text=True,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      preexec_fn=processes.takes_sigint_as_from_a_terminal)


def _read_worker_pid(proc: subprocess.Popen) -> int:
  line = proc.stdout.readline()
  assert line.startswith('worker '), (line, proc.stderr.read())
  pids = [int(p) for p in line.split()[1:]]
  assert len(pids) == 1, line
  return pids[0]


class RuntimeTest(parameterized.TestCase):

  def test_importing_fedmeta_changes_nothing_in_the_process(self):
    env = {k: v for k, v in os.environ.items()
           if k not in ('TF_CPP_MIN_LOG_LEVEL', runtime.TF_LOGS_ENV)}
    proc = subprocess.run(
        [sys.executable, '-c', IMPORT_ONLY], cwd=REPO, text=True, env=env,
        capture_output=True, timeout=TIMEOUT_S, check=False)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    # Log level, TFF's worker launcher and the SIGTERM handler as TFF left
    # them.
    self.assertEqual(proc.stdout.split(), ['True', 'True'])

  def test_other_tff_versions_are_refused_in_one_line(self):
    with mock.patch.object(tff, '__version__', '0.88.0'):
      with self.assertRaisesRegex(
          tff_internals.UnsupportedTffVersion,
          r'^fedmeta\.tff_internals patches tensorflow-federated 0\.87\.0 '
          r'internals, found 0\.88\.0: install the version in '
          r'requirements\.lock$'):
        tff_internals.check_version()
    tff_internals.check_version()

  @parameterized.parameters('exit', 'raise')
  def test_worker_stops_and_piped_output_closes(self, mode):
    proc = _start(mode)
    worker = _read_worker_pid(proc)
    # communicate() returns only when every holder of the pipes has closed
    # them: a leaked worker would make it time out.
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    self.assertEqual(proc.returncode, 0 if mode == 'exit' else 1, stderr)
    self.assertEmpty(processes.wait_dead({worker}),
                     f'worker {worker} outlived {mode}')
    self.assertNotIn('Exception ignored', stderr)

  @parameterized.named_parameters(
      # A background job (`make test &`, a CI runner) starts with SIGINT
      # ignored, and its children inherit that.
      ('ignored', lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)),
      # Some process supervisors block it; the mask is inherited too.
      ('blocked',
       lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})))
  def test_replaced_context_stops_its_worker_when_sigint_is(self, preexec):
    proc = subprocess.run(
        [sys.executable, '-c', REPLACE_CONTEXT], cwd=REPO, text=True,
        capture_output=True, timeout=TIMEOUT_S, check=False,
        preexec_fn=preexec)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    first = {int(p) for p in proc.stdout.split()[1:]}
    self.assertLen(first, 1)
    self.assertEmpty(processes.wait_dead(first))

  def test_intra_op_threads_reach_only_the_workers_asked(self):
    proc = subprocess.run(
        [sys.executable, '-c', INTRA_OP_THREADS], cwd=REPO, text=True,
        capture_output=True, timeout=TIMEOUT_S, check=False)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertEqual(proc.stdout.split(), ['1', 'unset'])
    with self.assertRaisesRegex(ValueError, 'intra_op_threads: must be >= 1'):
      runtime.set_local_context(intra_op_threads=0)

  @parameterized.parameters(signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
  def test_worker_dies_with_signalled_parent(self, signum):
    proc = _start('wait')
    worker = _read_worker_pid(proc)
    self.assertTrue(processes.alive(worker))
    proc.send_signal(signum)
    proc.communicate(timeout=TIMEOUT_S)
    self.assertNotEqual(proc.returncode, 0)
    self.assertEmpty(processes.wait_dead({worker}),
                     f'worker {worker} outlived signal {signum}')


if __name__ == '__main__':
  absltest.main()
