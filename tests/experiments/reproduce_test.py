"""The reproduction driver's bookkeeping (the runs themselves are the
runner's, tested in run_test; the studies take minutes to hours)."""

import csv
import json
import os
import tempfile

from absl.testing import absltest

from fedmeta import experiments
from fedmeta.experiments.reproduce import reproduce
from fedmeta.experiments.reproduce import studies

ROWS = [
    {'round': '1', 'bytes/server_to_client': '1000000',
     'bytes/client_to_server': '500000', 'eval/acc': '0.40'},
    {'round': '2', 'bytes/server_to_client': '1000000',
     'bytes/client_to_server': '500000', 'eval/acc': ''},
    {'round': '3', 'bytes/server_to_client': '1000000',
     'bytes/client_to_server': '500000', 'eval/acc': '0.70'},
]


def _write_run(run_dir, rows):
  """A finished run's metrics.csv and summary.json, 4 clients a round."""
  os.makedirs(run_dir)
  with open(os.path.join(run_dir, 'metrics.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  with open(os.path.join(run_dir, 'summary.json'), 'w') as f:
    json.dump({'flags': {'rounds': len(rows), 'clients_per_round': 4}}, f)


class ReproduceTest(absltest.TestCase):

  def test_every_run_names_a_committed_config(self):
    for name, study in studies.STUDIES.items():
      for run in study.runs:
        path = os.path.join(experiments.REPO, 'experiments', 'configs',
                            f'{run.config}.flags')
        self.assertTrue(os.path.exists(path), f'{name}/{run.name}: {path}')
        self.assertNotEmpty(run.rows, f'{name}/{run.name}')
        if run.evaluation:
          self.assertIn(run.evaluation, reproduce.EVALUATIONS)

  def test_failed_evaluation_exits_with_one_line(self):
    run = studies.Run('r', 'demo', evaluation='omniglot_all_runs')
    run_dir = os.path.join(tempfile.mkdtemp(), 'r')  # No run in it.
    with self.assertRaisesRegex(
        SystemExit, r'^error: evaluation omniglot_all_runs of run r failed '
        r'\(exit 1\)$'):
      reproduce.evaluate_once(run, run_dir)
    self.assertFalse(os.path.exists(
        os.path.join(run_dir, 'omniglot_all_runs.json')))

  def test_communication_to_target_counts_both_ways_up_to_it(self):
    self.assertEqual(reproduce.to_target(ROWS, 'eval/acc', 0.5, False),
                     '3 / 4.5 MB')
    self.assertEqual(reproduce.to_target(ROWS, 'eval/acc', 0.4, False),
                     '1 / 1.5 MB')
    self.assertEqual(reproduce.to_target(ROWS, 'eval/acc', 0.3, True),
                     'not reached')

  def test_time_to_target_counts_tasks_and_round_seconds(self):
    rows = [dict(r, round_seconds='2.5') for r in ROWS]
    self.assertEqual(
        reproduce.time_to_target(rows, 'eval/acc', 0.5, False, 32),
        '96 / 8 s')
    self.assertEqual(
        reproduce.time_to_target(rows, 'eval/acc', 0.9, False, 32),
        'not reached')

  def test_table_shows_the_confidence_interval_beside_a_mean(self):
    out = tempfile.mkdtemp()
    run = studies.Run('b', 'demo', rows=(
        studies.Row('B', 'eval/acc/mean', '98.7'),), module='some.module',
                      short=('--rounds=3',))
    study = studies.Study('T', 'P', (run,), short=('--eval_every=1',),
                          time_targets=(0.6,))
    _write_run(os.path.join(out, 'b'), [
        {'round': '1', 'round_seconds': '1.0', 'eval/acc/mean': '0.5',
         'eval/acc/ci95': '0.05'},
        {'round': '2', 'round_seconds': '1.0', 'eval/acc/mean': '0.75',
         'eval/acc/ci95': '0.0125'}])
    self.assertEqual(
        reproduce.table(study, out).splitlines()[-1],
        '| B | `eval/acc/mean` | 98.7 | 0.7500 +- 0.0125 | 2 x 4 | 8 / 2 s | '
        '`python -m some.module --flagfile=experiments/configs/demo.flags '
        f'--eval_every=1 --rounds=3 --root_output_dir={out} '
        '--experiment_name=b` |')
    self.assertIn('--rounds=3', reproduce.command(
        run, reproduce.added_flags(study, run, False), out))
    self.assertEqual(reproduce.added_flags(study, run, True), ())

  def test_table_row_has_last_evaluation_budget_and_command(self):
    out = tempfile.mkdtemp()
    run = studies.Run('a', 'demo', ('--rounds=3',),
                      (studies.Row('A', 'eval/acc', '0.9 (paper)'),))
    study = studies.Study('T', 'P', (run,), short=('--eval_every=1',),
                          target=0.5)
    _write_run(os.path.join(out, 'a'), ROWS)
    lines = reproduce.table(study, out).splitlines()
    self.assertEqual(
        lines[-1],
        '| A | `eval/acc` | 0.9 (paper) | 0.7000 | 3 x 4 | 3 / 4.5 MB | '
        '`python -m fedmeta.experiments.run --flagfile=experiments/configs/demo.flags'
        f' --rounds=3 --eval_every=1 --root_output_dir={out} '
        '--experiment_name=a` |')


if __name__ == '__main__':
  absltest.main()
