"""The runner as a user runs it: a subprocess, its files and its errors."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

from tests import processes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TIMEOUT_S = 300
SMALL = ['--task=digits', '--num_clients=6', '--clients_per_round=3',
         '--client_batch_size=32']


def run(*args):
  # Pipes on stdout and stderr: a leaked TFF worker would hold them open and
  # make this time out instead of returning when the run is done.
  return subprocess.run(
      [sys.executable, '-m', 'experiments.run', *args], cwd=REPO,
      capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


class RunTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.root)

  def test_three_rounds_write_metrics_and_summary(self):
    before = processes.live_workers()
    result = run(*SMALL, '--rounds=3', '--eval_every=2',
                 f'--root_output_dir={self.root}', '--experiment_name=e')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEmpty(processes.live_workers() - before)
    out = os.path.join(self.root, 'e')
    self.assertIn(f'Results in {out}/', result.stdout)
    self.assertEqual(result.stdout.count('round '), 3)
    with open(os.path.join(out, 'metrics.csv')) as f:
      rows = list(csv.DictReader(f))
    self.assertEqual([r['round'] for r in rows], ['1', '2', '3'])
    self.assertTrue(all(float(r['train/loss']) > 0 for r in rows))
    self.assertEqual([bool(r['eval/loss']) for r in rows], [False, True, True])
    with open(os.path.join(out, 'summary.json')) as f:
      summary = json.load(f)
    self.assertEqual(summary['flags']['rounds'], 3)
    self.assertEqual(summary['versions']['tensorflow_federated'], '0.87.0')
    self.assertIn('eval/sparse_categorical_accuracy', summary['final_metrics'])

  def test_sigint_mid_run_stops_worker_and_keeps_metrics(self):
    proc = subprocess.Popen(
        [sys.executable, '-m', 'experiments.run', *SMALL, '--rounds=500',
         f'--root_output_dir={self.root}', '--experiment_name=i'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As a terminal's Ctrl-C: not inherited as ignored from a shell.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    self.assertTrue(proc.stdout.readline().startswith('round 1/500'))
    workers = processes.live_workers(parent=proc.pid)
    self.assertLen(workers, 1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    self.assertEqual(proc.returncode, 130, stderr)
    self.assertNotIn('Traceback', stderr)
    self.assertIn('interrupted', stderr)
    self.assertEmpty(processes.wait_dead(workers))
    out = os.path.join(self.root, 'i')
    self.assertFalse(os.path.exists(os.path.join(out, 'metrics.csv.tmp')))
    with open(os.path.join(out, 'metrics.csv')) as f:
      rounds = [int(r['round']) for r in csv.DictReader(f)]
    self.assertEqual(rounds, list(range(1, len(rounds) + 1)))
    self.assertNotEmpty(rounds)

  @parameterized.named_parameters(
      ('unknown_task', ['--task=mnist'], '--task'),
      ('unknown_algorithm', ['--algorithm=fed_magic'], '--algorithm'),
      ('zero_rounds', ['--rounds=0'], '--rounds'),
      ('zero_clients', ['--clients_per_round=0'], '--clients_per_round'),
      ('too_many_clients', ['--clients_per_round=7'], '--clients_per_round'),
      ('server_optimizer_conflict',
       ['--algorithm=fed_adam', '--server_optimizer=sgd'],
       '--server_optimizer'),
      ('shots_without_classes',
       ['--task=sinusoid', '--algorithm=fed_maml', '--shots=2'], '--shots'),
      ('shots_and_fraction',
       ['--algorithm=reptile', '--shots=1', '--support_fraction=0.3'],
       '--shots'),
      ('num_clients_of_natural_clients', ['--task=heart_disease'],
       '--num_clients'),
      ('missing_data_dir', ['--task=credit', '--data_dir=/nonexistent'],
       'data_dir'))
  def test_bad_flag_is_one_line_error(self, args, flag):
    result = run(*SMALL, '--rounds=1', f'--root_output_dir={self.root}', *args)
    self.assertIn(result.returncode, (1, 2))
    self.assertNotIn('Traceback', result.stderr)
    self.assertIn(flag, result.stderr)

  def test_missing_data_is_one_line_error(self):
    result = run('--task=femnist', '--data_dir=/nonexistent', '--rounds=1',
                 f'--root_output_dir={self.root}')
    self.assertEqual(result.returncode, 2)
    self.assertEqual(result.stderr.strip(),
                     'error: data_dir: /nonexistent does not exist')

  def test_meta_learning_run_reports_personalization(self):
    result = run('--task=sinusoid', '--num_clients=200', '--algorithm=fed_maml',
                 '--rounds=2', '--clients_per_round=3', '--inner_steps=2',
                 f'--root_output_dir={self.root}', '--experiment_name=m')
    self.assertEqual(result.returncode, 0, result.stderr)
    with open(os.path.join(self.root, 'm', 'metrics.csv')) as f:
      rows = list(csv.DictReader(f))
    self.assertLen(rows, 2)
    for stage in ('before', 'after'):
      for stat in ('mean', 'p10', 'p50', 'p90'):
        self.assertGreater(float(rows[-1][f'eval/{stage}/loss/{stat}']), 0)
    self.assertEqual(rows[-1]['eval/num_clients'], '1000')

  def test_describe(self):
    result = run('--task=heart_disease', '--describe')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('train: 4 clients, 486 examples', result.stdout)

  def test_output_root_that_is_a_file_is_refused(self):
    path = os.path.join(self.root, 'file')
    with open(path, 'w') as f:
      f.write('keep')
    result = run(*SMALL, '--rounds=1', f'--root_output_dir={path}')
    self.assertEqual(result.returncode, 2)
    self.assertNotIn('Traceback', result.stderr)
    self.assertIn('is a file', result.stderr)
    with open(path) as f:
      self.assertEqual(f.read(), 'keep')

  def test_existing_run_is_not_overwritten(self):
    out = os.path.join(self.root, 'done')
    os.makedirs(out)
    with open(os.path.join(out, 'metrics.csv'), 'w') as f:
      f.write('round\n1\n')
    result = run(*SMALL, '--rounds=1', f'--root_output_dir={self.root}',
                 '--experiment_name=done')
    self.assertEqual(result.returncode, 2)
    self.assertIn('already holds a run', result.stderr)
    with open(os.path.join(out, 'metrics.csv')) as f:
      self.assertEqual(f.read(), 'round\n1\n')


if __name__ == '__main__':
  absltest.main()
