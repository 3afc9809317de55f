"""Simulation on TFF workers: the same numbers as the local runtime, and
clear failures when a worker is missing or dies."""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest
import pytest
import numpy as np
import portpicker

import tensorflow as tf  # pylint: disable=g-bad-import-order
from fedmeta import algorithms
from fedmeta import runtime
from tests import testing

pytestmark = pytest.mark.slow  # Starts TFF workers and runner processes.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300
SMALL = ['--task=digits', '--num_clients=6', '--clients_per_round=4',
         '--client_batch_size=32', '--checkpoint_every=1']


def _start_workers(test, n):
  ports = [portpicker.pick_unused_port() for _ in range(n)]
  workers = [runtime.start_worker(p) for p in ports]
  for worker in workers:
    test.addCleanup(worker.kill)
  return [f'127.0.0.1:{p}' for p in ports], workers


def _run(*args, **kwargs):
  return subprocess.Popen(
      [sys.executable, '-m', 'fedmeta.experiments.run', *args], cwd=REPO, text=True,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _rows(out):
  with open(os.path.join(out, 'metrics.csv')) as f:
    return list(csv.DictReader(f))


def _checkpointed_rounds(out):
  """Rounds after 0 with a checkpoint under `out`."""
  try:
    names = os.listdir(os.path.join(out, 'checkpoints'))
  except FileNotFoundError:
    return []
  rounds = [n[len('round_'):] for n in names]
  return [int(r) for r in rounds if r.isdigit() and r != '0']


def _train_columns(rows):
  return [{k: float(v) for k, v in r.items()
           if v and k.startswith(('train/', 'eval/'))} for r in rows]


class RemoteContextTest(absltest.TestCase):

  def test_three_rounds_on_two_workers_equal_local_rounds(self):
    model = testing.softmax_regression(hidden=5)
    plain = testing.client_datasets([5, 7, 9, 4, 6])
    flagged = [testing.flagged_dataset(x, y, s)
               for x, y, s in testing.meta_clients([6, 8, 10, 4, 6])]
    builds = {
        'fed_avg': (lambda: algorithms.build_fed_avg(model), plain),
        'fed_maml': (lambda: algorithms.build_fed_maml(
            model, inner_learning_rate=0.1, inner_steps=2), flagged)}
    runtime.set_local_context()
    local = {name: testing.run_rounds(build(), data, 3)
             for name, (build, data) in builds.items()}
    addresses, _ = _start_workers(self, 2)
    runtime.set_remote_context(addresses)
    self.addCleanup(runtime.set_local_context)
    for name, (build, data) in builds.items():
      weights, outputs = testing.run_rounds(build(), data, 3)
      local_weights, local_outputs = local[name]
      self.assertLess(testing.max_abs_diff(weights, local_weights), 1e-6, name)
      for output, local_output in zip(outputs, local_outputs):
        self.assertLess(testing.max_abs_diff(
            output.metrics, local_output.metrics), 1e-6, name)
      self.assertEqual(type(outputs[0]), type(local_outputs[0]))

  def test_each_worker_runs_part_of_the_round(self):
    addresses, workers = _start_workers(self, 2)
    runtime.set_remote_context(addresses, reconnect_timeout_s=1)
    self.addCleanup(runtime.set_local_context)
    process = algorithms.build_fed_avg(testing.softmax_regression())
    state = process.initialize()
    workers[1].kill()
    workers[1].wait()
    with self.assertRaisesRegex(runtime.WorkerError,
                                f'TFF worker {addresses[1]} stopped'):
      process.next(state, testing.client_datasets([5, 7]))

  def test_unreachable_worker(self):
    address = f'127.0.0.1:{portpicker.pick_unused_port()}'
    with self.assertRaisesRegex(runtime.WorkerError,
                                f'cannot reach TFF worker {address}'):
      runtime.set_remote_context([address], connect_timeout_s=0.5)


class RunnerOnWorkersTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.root)

  def test_unreachable_worker_is_one_line_error(self):
    address = f'127.0.0.1:{portpicker.pick_unused_port()}'
    proc = _run(*SMALL, f'--workers={address}',
                f'--root_output_dir={self.root}', '--experiment_name=u')
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    self.assertEqual(proc.returncode, 2, stderr)
    self.assertEqual(stderr.strip().splitlines(),
                     [f'error: --workers: cannot reach TFF worker {address} '
                      'within 10 s'])

  def test_worker_dying_mid_run_stops_it_and_a_rerun_resumes(self):
    addresses, workers = _start_workers(self, 2)
    args = [*SMALL, '--algorithm=fed_adam', '--rounds=8',
            f'--root_output_dir={self.root}']
    out = os.path.join(self.root, 'w')
    proc = _run(*args, f'--workers={",".join(addresses)}',
                '--experiment_name=w')
    deadline = time.monotonic() + TIMEOUT_S
    while not _checkpointed_rounds(out):
      if proc.poll() is not None or time.monotonic() > deadline:
        self.fail(f'no round checkpointed: {proc.communicate()}')
      time.sleep(0.02)
    workers[1].kill()
    workers[1].wait()
    stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    self.assertEqual(proc.returncode, 1, stdout + stderr)
    self.assertEqual(
        stderr.strip().splitlines()[-1],
        f'error: --workers: TFF worker {addresses[1]} stopped answering; '
        'rerun the same command to resume from the last checkpoint')
    done = max(_checkpointed_rounds(out))
    self.assertLess(done, 8)
    self.assertLen(_rows(out), done)

    port = int(addresses[1].split(':')[1])
    self.addCleanup(runtime.start_worker(port).kill)
    proc = _run(*args, f'--workers={",".join(addresses)}',
                '--experiment_name=w')
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    self.assertEqual(proc.returncode, 0, stderr)
    with open(os.path.join(out, 'summary.json')) as f:
      self.assertEqual(json.load(f)['resumed_after_round'], done)

    proc = _run(*args, '--experiment_name=local')
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    self.assertEqual(proc.returncode, 0, stderr)
    resumed = _train_columns(_rows(out))
    local = _train_columns(_rows(os.path.join(self.root, 'local')))
    self.assertEqual([r.keys() for r in resumed], [r.keys() for r in local])
    # float32 sums over clients partitioned otherwise: equal to 1e-6, relative.
    for r, l in zip(resumed, local):
      for key in r:
        np.testing.assert_allclose(r[key], l[key], rtol=1e-6, atol=1e-6,
                                   err_msg=key)


if __name__ == '__main__':
  tf.test.main()
