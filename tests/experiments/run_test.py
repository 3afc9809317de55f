"""The runner as a user runs it: a subprocess, its files and its errors."""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TIMEOUT_S = 300
SMALL = ['--task=digits', '--num_clients=6', '--clients_per_round=3',
         '--client_batch_size=32']


def run(*args):
  return subprocess.run(
      [sys.executable, '-m', 'experiments.run', *args], cwd=REPO,
      capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


class RunTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.root)

  def test_three_rounds_write_metrics_and_summary(self):
    result = run(*SMALL, '--rounds=3', '--eval_every=2',
                 f'--root_output_dir={self.root}', '--experiment_name=e')
    self.assertEqual(result.returncode, 0, result.stderr)
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

  @parameterized.named_parameters(
      ('unknown_task', ['--task=mnist'], '--task'),
      ('unknown_algorithm', ['--algorithm=fed_magic'], '--algorithm'),
      ('zero_rounds', ['--rounds=0'], '--rounds'),
      ('zero_clients', ['--clients_per_round=0'], '--clients_per_round'),
      ('too_many_clients', ['--clients_per_round=7'], '--clients_per_round'),
      ('server_optimizer_conflict',
       ['--algorithm=fed_adam', '--server_optimizer=sgd'],
       '--server_optimizer'))
  def test_bad_flag_is_one_line_error(self, args, flag):
    result = run(*SMALL, '--rounds=1', f'--root_output_dir={self.root}', *args)
    self.assertIn(result.returncode, (1, 2))
    self.assertNotIn('Traceback', result.stderr)
    self.assertIn(flag, result.stderr)

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
