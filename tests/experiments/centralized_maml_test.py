"""Centralized MAML on the runner's rounds equals federated MAML."""

import csv
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import pytest
import numpy as np

from tests.experiments import run_test

pytestmark = pytest.mark.slow  # Runs the entry point as a process.

EPISODES = ['--task=digits', '--num_clients=6', '--clients_per_round=3',
            '--ways=3', '--shots=1', '--query_shots=2', '--eval_episodes=4',
            '--eval_query_shots=2', '--rounds=3', '--inner_learning_rate=0.1',
            '--inner_steps=2']


def _run(module, *args):
  return subprocess.run([sys.executable, '-m', module, *args],
                        cwd=run_test.REPO, capture_output=True, text=True,
                        timeout=run_test.TIMEOUT_S, check=False)


def _rows(out):
  with open(os.path.join(out, 'metrics.csv')) as f:
    return list(csv.DictReader(f))


class CentralizedMamlTest(absltest.TestCase):

  def test_equals_federated_maml_on_the_same_episodes(self):
    root = tempfile.mkdtemp()
    for algorithm in ('fed_maml', 'fo_maml'):
      args = [*EPISODES, f'--algorithm={algorithm}', f'--root_output_dir={root}']
      fed = _run('fedmeta.experiments.run', *args)
      self.assertEqual(fed.returncode, 0, fed.stderr)
      central = _run('fedmeta.experiments.reproduce.centralized_maml', *args)
      self.assertEqual(central.returncode, 0, central.stderr)
      fed_dir = os.path.join(root, f'digits_{algorithm}_seed0')
      central_dir = os.path.join(root, f'digits_{algorithm}_centralized_seed0')
      with np.load(os.path.join(fed_dir, 'model_weights.npz')) as a, np.load(
          os.path.join(central_dir, 'model_weights.npz')) as b:
        self.assertEqual(sorted(a.files), sorted(b.files))
        for name in a.files:
          np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6)
      for fed_row, central_row in zip(_rows(fed_dir), _rows(central_dir),
                                      strict=True):
        for column in ('train/loss', 'train/sparse_categorical_accuracy',
                       'train/num_examples',
                       'eval/after/sparse_categorical_accuracy/mean',
                       'eval/after/loss/mean'):
          self.assertAlmostEqual(float(fed_row[column]),
                                 float(central_row[column]), places=5,
                                 msg=f'{algorithm} {column}')

  def test_refuses_what_has_no_centralized_meaning(self):
    root = tempfile.mkdtemp()
    for flag, error in (('--algorithm=reptile', '--algorithm'),
                        ('--aggregation=median', '--aggregation')):
      result = _run('fedmeta.experiments.reproduce.centralized_maml', *EPISODES,
                    '--algorithm=fed_maml', flag, f'--root_output_dir={root}')
      self.assertEqual(result.returncode, 2, result.stderr)
      self.assertIn(error, result.stderr)
      self.assertNotIn('Traceback', result.stderr)
    self.assertEqual(os.listdir(root), [])


if __name__ == '__main__':
  absltest.main()
