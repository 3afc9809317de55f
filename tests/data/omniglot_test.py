"""Omniglot on the real files: splits, clients, zips, and the official runs."""

import os
import shutil
import tempfile

from absl.testing import absltest
import numpy as np

from fedmeta.data import DataError
from fedmeta.data import omniglot
from tests import testing

FOLDER = os.path.join(testing.data_dir(), 'omniglot')


def folder_with(*names):
  """A temp folder holding links to some of the real Omniglot files."""
  folder = tempfile.mkdtemp()
  for name in names:
    os.symlink(os.path.join(FOLDER, name), os.path.join(folder, name))
  return folder


class OmniglotTest(absltest.TestCase):

  def test_character_splits(self):
    for split, sizes in (('maml', (1200, 423)), ('background', (964, 659)),
                         ('background_small', (242, 659))):
      (train, _), (test, _) = omniglot.read_characters(FOLDER, split)
      self.assertEqual((len(train), len(test)), sizes, split)
      self.assertEqual(train.shape[1:], (20, 28, 28))
      self.assertEqual(train.dtype, np.uint8)

  def test_character_clients(self):
    task = omniglot.load(ways=5)
    # 1,200 characters -> 240 groups; 423 -> 84 (3 left over).
    self.assertLen(task.train.client_ids, 240)
    self.assertLen(task.test.client_ids, 84)
    self.assertEqual(task.examples_per_class, 20)
    client = testing.client_arrays_of(task.train, 'Balinese_0107')
    self.assertEqual(client['x'].shape, (100, 28, 28, 1))
    np.testing.assert_array_equal(np.bincount(client['y']), [20] * 5)
    self.assertBetween(client['x'].mean(), 0.02, 0.3)  # Ink is sparse.
    self.assertEqual(client['x'].max(), 1.0)

  def test_groups_stay_within_alphabets(self):
    alphabets = np.asarray(['a'] * 7 + ['b'] * 4 + [''] * 6)
    groups = omniglot.character_groups(alphabets, 3)
    # Leftovers 6 and 10 make a group of 2 < 3: dropped.
    self.assertEqual([list(g) for g in groups],
                     [[0, 1, 2], [3, 4, 5], [7, 8, 9], [11, 12, 13],
                      [14, 15, 16]])
    # With 4, leftovers 4, 5, 6, 15, 16 give a mixed group; 16 is dropped.
    self.assertEqual([list(g) for g in omniglot.character_groups(alphabets, 4)],
                     [[0, 1, 2, 3], [7, 8, 9, 10], [11, 12, 13, 14],
                      [4, 5, 6, 15]])

  def test_rotations_and_drawers(self):
    rotated = omniglot.load(split='background_small', rotations=True)
    plain = omniglot.load(split='background_small')
    self.assertLen(rotated.train.client_ids,
                   4 * len(plain.train.client_ids))
    self.assertEqual(plain.train.client_ids[0], 'Balinese_0000')
    a = testing.client_arrays_of(plain.train, 'Balinese_0000')
    b = testing.client_arrays_of(rotated.train, 'Balinese_0000_rot90')
    np.testing.assert_array_equal(np.rot90(a['x'], 1, axes=(1, 2)), b['x'])
    drawers = omniglot.load(split='background_small', clients_by='drawer')
    self.assertLen(drawers.train.client_ids, 16)
    self.assertLen(drawers.test.client_ids, 4)
    self.assertEqual(drawers.examples_per_class, 1)
    d = testing.client_arrays_of(drawers.test, 'drawer_19')
    np.testing.assert_array_equal(d['y'], np.arange(242))

  def test_alphabet_pools(self):
    (_, alphabets), _ = omniglot.read_characters(FOLDER, 'background_small')
    task = omniglot.load(split='background_small', clients_by='pools',
                         pool_by='alphabet', pool_size=10)
    pools = [np.unique(testing.client_arrays_of(task.train, c)['y'])
             for c in task.train.client_ids]
    # 8 alphabets of 24/22/24/47/40/26/42/17 characters: 21 whole pools of
    # 10, and 32 leftovers make 3 mixed pools (2 dropped).
    self.assertLen(pools, 24)
    self.assertTrue(all(len(p) == 10 for p in pools))
    self.assertLen(np.unique(np.concatenate(pools)), 240)
    self.assertEqual([len(set(alphabets[p])) == 1 for p in pools].count(True),
                     21)
    mixed = omniglot.load(split='background_small', clients_by='pools',
                          pool_size=10)
    self.assertLess(
        [len(set(alphabets[np.unique(
            testing.client_arrays_of(mixed.train, c)['y'])])) == 1
         for c in mixed.train.client_ids].count(True), 3)
    with self.assertRaisesRegex(DataError, "^pool_by: 'alphabet' needs"):
      omniglot.load(split='maml_shuffled', clients_by='pools',
                    pool_by='alphabet')
    with self.assertRaisesRegex(DataError, '^pool_by: must be one of'):
      omniglot.load(clients_by='pools', pool_by='drawer')

  def test_official_zips_equal_the_npz(self):
    # README: the small zips' images are the npz's; its ranges are 1-based.
    from_zips = omniglot.read_characters(
        folder_with('images_background_small1.zip',
                    'images_background_small2.zip', 'images_evaluation.npz'),
        'background_small')[0]
    from_npz = omniglot.read_characters(FOLDER, 'background_small')[0]
    np.testing.assert_array_equal(from_zips[0], from_npz[0])
    np.testing.assert_array_equal(from_zips[1], from_npz[1])

  def test_official_one_shot_runs(self):
    runs = omniglot.load_one_shot_runs(image_size=None)
    self.assertLen(runs, 20)
    for run in runs:
      self.assertEqual(run.support_x.shape, (20, 105, 105))
      self.assertCountEqual(run.query_y, range(20))
    # Lake et al.'s demo reports 38.8% error for this baseline.
    error, per_run = omniglot.one_shot_error(
        runs, omniglot.modified_hausdorff_predict)
    self.assertAlmostEqual(error, 0.3875)
    self.assertLen(per_run, 20)
    small = omniglot.load_one_shot_runs()
    self.assertEqual(small[0].query_x.shape, (20, 28, 28, 1))

  def test_cache_is_used_and_keyed_by_content(self):
    cache = tempfile.mkdtemp()
    first = omniglot.read_characters(FOLDER, 'background', cache)
    self.assertLen(os.listdir(cache), 2)
    again = omniglot.read_characters(FOLDER, 'background', cache)
    np.testing.assert_array_equal(first[0][0], again[0][0])
    self.assertLen(os.listdir(cache), 2)

  def test_bad_files(self):
    folder = folder_with('images_background.npz')
    with self.assertRaisesRegex(DataError, 'images_evaluation.npz: not found'):
      omniglot.load(folder)
    truncated = os.path.join(folder, 'all_runs.zip')
    with open(os.path.join(FOLDER, 'all_runs.zip'), 'rb') as f:
      data = f.read()
    with open(truncated, 'wb') as f:
      f.write(data[:len(data) // 2])
    with self.assertRaisesRegex(DataError, 'all_runs.zip: not a readable zip'):
      omniglot.load_one_shot_runs(folder)
    shutil.copy(truncated, os.path.join(folder, 'images_evaluation.zip'))
    with self.assertRaisesRegex(DataError,
                                'images_evaluation.zip: not a readable zip'):
      omniglot.load(folder, split='background')
    with self.assertRaisesRegex(DataError, 'split'):
      omniglot.load(split='mini')


if __name__ == '__main__':
  absltest.main()
