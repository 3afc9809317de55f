"""The robustness table's cells: their flags, and a refused cell."""

import os
import shutil
import tempfile

from absl import flags
from absl.testing import absltest

from fedmeta.experiments.benchmarks import robustness_table


class RobustnessTableTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()  # A cell parses the runner's flags.
    super().tearDown()

  def test_defences_assume_the_columns_attackers(self):
    flags = robustness_table.cell_flags('bulyan', 'alie', 0.2, seed=3)
    self.assertContainsSubsequence(
        flags, ['--aggregation=bulyan', '--byzantine=4', '--attack=alie',
                '--malicious_fraction=0.2', '--seed=3'])
    self.assertIn('--trim_fraction=0.4',
                  robustness_table.defence_flags('trimmed_mean', 0.4))
    self.assertNotIn('--malicious_fraction=0.2', robustness_table.cell_flags(
        'krum', None, 0.2, seed=0))

  def test_bulyan_against_40_percent_is_refused_before_any_output(self):
    # 20 clients a round; f = 8 needs 4f + 3 = 35.
    root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, root)
    result = robustness_table.run_cell(
        root, robustness_table.cell_flags('bulyan', 'sign_flip', 0.4, seed=0))
    self.assertEqual(result, 'refused: needs n >= 4f + 3 = 35')
    self.assertEmpty(os.listdir(root))


if __name__ == '__main__':
  absltest.main()
