"""`make demo`'s program, on a tiny budget: both runs, the table, the PNG."""

import csv
import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import pytest

from tests.experiments import run_test

pytestmark = pytest.mark.slow  # Runs `make demo`'s entry point as a process.


class DemoTest(absltest.TestCase):

  def test_prints_the_comparison_and_writes_the_curves(self):
    root = tempfile.mkdtemp()
    result = subprocess.run(
        [sys.executable, '-m', 'fedmeta.experiments.demo', '--rounds=2',
         '--eval_clients=5', f'--root_output_dir={root}',
         '--experiment_name=d'], cwd=run_test.REPO, capture_output=True,
        text=True, timeout=run_test.TIMEOUT_S, check=False)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('| steps | federated MAML | FedAvg + fine-tuning |',
                  result.stdout)
    out = os.path.join(root, 'd')
    with open(os.path.join(out, 'adaptation.png'), 'rb') as f:
      self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')
    with open(os.path.join(out, 'adaptation.json')) as f:
      curves = json.load(f)
    for name in ('fed_maml', 'fed_avg'):
      losses = curves[name]['mean_query_mse_by_steps']
      self.assertLen(losses, 11)
      # Fine-tuning on a sine's own support points lowers its query error.
      self.assertLess(losses[-1], losses[0])
      # Its hand-written adaptation scores what the runner's personalization
      # evaluation scored on the same held-out sines, before and after 1 step.
      with open(os.path.join(out, name, 'metrics.csv')) as f:
        last = list(csv.DictReader(f))[-1]
      self.assertAlmostEqual(losses[0], float(last['eval/before/loss/mean']),
                             places=4)
      self.assertAlmostEqual(losses[1], float(last['eval/after/loss/mean']),
                             places=4)


if __name__ == '__main__':
  absltest.main()
