"""The robustness table's cells: their flags, and a refused cell."""

import os
import shutil
import tempfile

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver

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

  def test_setups_set_their_flags_and_radius(self):
    femnist = robustness_table.cell_flags('centered_clip', 'alie', 0.2,
                                          seed=1, setup='femnist')
    self.assertContainsSubsequence(
        femnist, ['--task=femnist', '--aggregation=centered_clip',
                  '--clip_norm=0.4', '--attack=alie', '--seed=1'])
    self.assertNotIn('--task=digits', femnist)
    maml = robustness_table.cell_flags('krum', 'ipm', 0.4, seed=0,
                                       setup='omniglot_maml')
    self.assertIn('--byzantine=8', maml)
    self.assertTrue(maml[0].endswith(
        'omniglot_episodes_5way_1shot_fed_maml.flags'))
    self.assertTrue(os.path.exists(maml[0].split('=', 1)[1]))
    # Episodes permute labels: no label flipping or backdoor there.
    self.assertEqual(robustness_table.SETUPS['omniglot_maml'].attacks,
                     ('sign_flip', 'alie', 'ipm'))

  def test_grid_flags_are_checked_in_one_line(self):
    flags.FLAGS(['robustness_table'])
    with flagsaver.flagsaver(setup='omniglot_maml', attacks=['backdoor']):
      with self.assertRaises(SystemExit) as e:
        robustness_table._grid('omniglot_maml')
    self.assertEqual(str(e.exception), '--attacks: backdoor not among '
                     'sign_flip, alie, ipm (--setup=omniglot_maml)')
    with flagsaver.flagsaver(fractions=['0.2', 'half']):
      with self.assertRaisesRegex(SystemExit, r'^--fractions: .*0.2,half$'):
        robustness_table._grid('digits')
    with flagsaver.flagsaver(defences=['krum', 'mean'], attacks=None,
                             fractions=['0.1']):
      self.assertEqual(robustness_table._grid('femnist'),
                       (['krum', 'mean'], list(robustness_table.ATTACKS),
                        [0.1]))

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
