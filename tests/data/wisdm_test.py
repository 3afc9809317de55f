"""WISDM v1.1: parsing, the two protocols, imputation, errors and the cache."""

import os
import re
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from fedmeta.data import DataError
from fedmeta.data import files
from fedmeta.data import wisdm
from tests import testing

FOLDER = os.path.join(files.default_data_dir() or '', wisdm.SUBDIR)
REAL = os.path.join(FOLDER, wisdm.FILE)
needs_real_data = absltest.skipUnless(
    os.path.isfile(REAL), f'needs ../shared/data/{wisdm.SUBDIR}/{wisdm.FILE}')
HELD_OUT_SEED_0 = ['user_03', 'user_04', 'user_05', 'user_12', 'user_21',
                   'user_22', 'user_27', 'user_31', 'user_35']
XPEAK = wisdm.FEATURES.index('XPEAK')
# The real file's header, as it is written there (`class{` without a space).
HEADER = (['@relation activity_recognition_labeled', '',
           '@attribute "UNIQUE_ID" numeric',
           '@attribute "user" {"1" , "2", "3", "4"} '] +
          [f'@attribute "{name}" numeric' for name in wisdm.FEATURES] +
          ['@attribute class{ "Walking" , "Jogging" , "Upstairs" , '
           '"Downstairs" , "Sitting" , "Standing" }', '', '@data'])
FIRST_ROW_LINE = len(HEADER) + 1


def small_rows(seed=0):
  """Rows of 4 users, 12 windows each, every class twice; XPEAK `?` in 4."""
  rng = np.random.default_rng(seed)
  rows = []
  for user in range(1, 5):
    for i in range(12):
      features = [f'{v:.2f}' for v in rng.normal(size=wisdm.NUM_FEATURES)]
      if i == user:
        features[XPEAK] = '?'
      rows.append([str(len(rows) + 1), str(user)] + features +
                  [wisdm.CLASSES[i % 6]])
  return rows


def write(folder, rows, header=HEADER, end='\r\n'):
  path = os.path.join(folder, wisdm.FILE)
  with open(path, 'w', newline='') as f:
    f.write(end.join(header + [','.join(r) for r in rows]) + end)
  return path


def pooled_x(client_data):
  return np.concatenate([testing.client_arrays_of(client_data, c)['x']
                         for c in client_data.client_ids])


class RealDataTest(parameterized.TestCase):

  @needs_real_data
  def test_rows_classes_missing_cells_and_users(self):
    rows = wisdm.read(REAL)
    self.assertEqual(rows['x'].shape, (5418, 43))
    np.testing.assert_array_equal(np.bincount(rows['y']),
                                  [2081, 1625, 632, 528, 306, 246])
    missing = dict(zip(wisdm.FEATURES, np.isnan(rows['x']).sum(axis=0)))
    self.assertEqual({k: v for k, v in missing.items() if v},
                     {'XPEAK': 381, 'YPEAK': 131, 'ZPEAK': 103})
    np.testing.assert_array_equal(np.unique(rows['user']), np.arange(1, 37))
    per_user = np.bincount(rows['user'])[1:]
    self.assertEqual((per_user.min(), np.median(per_user), per_user.max()),
                     (60, 155, 273))
    activities = [len(np.unique(rows['y'][rows['user'] == u]))
                  for u in range(1, 37)]
    self.assertEqual(np.bincount(activities).tolist(), [0, 1, 2, 0, 11, 4, 18])

  @needs_real_data
  def test_heldout_users(self):
    task = wisdm.load()
    self.assertEqual(list(task.test.client_ids), HELD_OUT_SEED_0)
    self.assertLen(task.train.client_ids, 27)
    self.assertEmpty(set(task.train.client_ids) & set(task.test.client_ids))
    self.assertEqual(sum(testing.client_sizes(task.train)) +
                     sum(testing.client_sizes(task.test)), 5418)
    self.assertIsNone(task.examples_per_class)
    spec = task.train.element_type_structure
    self.assertEqual((spec['x'].shape, spec['x'].dtype), ((43,), tf.float32))
    self.assertEqual((spec['y'].shape, spec['y'].dtype), ((), tf.int32))
    x = pooled_x(task.train)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-4)
    std = x.std(axis=0)
    np.testing.assert_allclose(std[std > 0], 1, atol=1e-4)
    self.assertTrue(np.isfinite(pooled_x(task.test)).all())

  @needs_real_data
  def test_missing_cells_take_the_training_median(self):
    task = wisdm.load()
    rows = wisdm.read(REAL)
    held_out = np.isin(rows['user'], [int(i[-2:]) for i in HELD_OUT_SEED_0])
    column = rows['x'][~held_out, XPEAK]
    median = np.nanmedian(column)
    self.assertNotEqual(median, np.nanmedian(rows['x'][:, XPEAK]))
    imputed = np.where(np.isnan(column), median, column)
    expected = (median - imputed.mean()) / imputed.std()
    user = rows['user'][held_out & np.isnan(rows['x'][:, XPEAK])][0]
    raw = rows['x'][rows['user'] == user, XPEAK]
    x = testing.client_arrays_of(task.test, f'user_{user:02d}')['x'][:, XPEAK]
    np.testing.assert_allclose(x[np.isnan(raw)], expected, rtol=1e-5)

  @needs_real_data
  def test_within_user_splits_each_user_stratified(self):
    task = wisdm.load(protocol='within_user')
    rows = wisdm.read(REAL)
    ids = [f'user_{u:02d}' for u in range(1, 37)]
    self.assertEqual(list(task.train.client_ids), ids)
    self.assertEqual(list(task.test.client_ids), ids)
    for user, client in enumerate(ids, 1):
      train = testing.client_arrays_of(task.train, client)['y']
      test = testing.client_arrays_of(task.test, client)['y']
      labels = rows['y'][rows['user'] == user]
      self.assertEqual(len(test), round(len(labels) * 0.25))
      counts = np.bincount(labels, minlength=6)
      np.testing.assert_array_equal(
          np.bincount(train, minlength=6) + np.bincount(test, minlength=6),
          counts)
      share = np.bincount(test, minlength=6)
      self.assertTrue(np.all(share >= np.floor(counts * 0.25)), client)
      self.assertTrue(np.all(share <= np.ceil(counts * 0.25)), client)

  @parameterized.parameters('heldout_users', 'within_user')
  @needs_real_data
  def test_seeds_are_deterministic_and_differ(self, protocol):
    def test_split(seed):
      task = wisdm.load(protocol=protocol, seed=seed)
      return list(task.test.client_ids), np.concatenate(
          [testing.client_arrays_of(task.test, c)['x'][:, 40]
           for c in task.test.client_ids])

    ids, x = test_split(0)
    again_ids, again_x = test_split(0)
    self.assertEqual(ids, again_ids)
    np.testing.assert_array_equal(x, again_x)
    other_ids, other_x = test_split(1)
    if protocol == 'heldout_users':
      self.assertNotEqual(ids, other_ids)
    else:
      self.assertEqual(ids, other_ids)
      self.assertFalse(np.array_equal(np.sort(x), np.sort(other_x)))

  @needs_real_data
  def test_model_runs_on_a_batch(self):
    task = wisdm.load()
    batch = next(task.train.create_tf_dataset_for_client(
        task.train.client_ids[0]).batch(16).as_numpy_iterator())
    model = task.model_fn()
    self.assertEqual([w.shape for w in model.initial_weights[0]],
                     [(43, 64), (64,), (64, 64), (64,), (64, 6), (6,)])
    output, loss = testing.output_and_loss(model, batch)
    self.assertEqual(output.shape, (16, 6))
    self.assertTrue(np.isfinite(loss))


class SmallFileTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.folder, self.cache = self.tempdir(), self.tempdir()

  def tempdir(self):
    folder = tempfile.TemporaryDirectory()
    self.addCleanup(folder.cleanup)
    return folder.name

  def load(self, **options):
    return wisdm.load(self.folder, cache_dir=self.cache, **options)

  def test_parses_crlf_blank_lines_and_quoted_class(self):
    rows = small_rows()
    rows[0][-1] = '"Walking"'
    header = HEADER[:1] + ['% a comment'] + HEADER[1:]
    path = write(self.folder, rows[:5] + [[]] + rows[5:], header)
    parsed = wisdm.read(path)
    self.assertEqual(parsed['x'].shape, (48, 43))
    np.testing.assert_array_equal(parsed['user'], np.repeat([1, 2, 3, 4], 12))
    np.testing.assert_array_equal(parsed['y'], np.tile(np.arange(12) % 6, 4))
    self.assertEqual(np.isnan(parsed['x']).sum(), 4)
    self.assertEqual(parsed['x'][0, 0], float(rows[0][2]))
    np.testing.assert_array_equal(
        wisdm.read(write(self.folder, rows, end='\n'))['x'], parsed['x'])

  def test_heldout_imputation_uses_training_users_only(self):
    write(self.folder, small_rows())
    task = self.load(heldout_fraction=0.25)
    (test_id,) = task.test.client_ids
    self.assertLen(task.train.client_ids, 3)
    user = int(test_id[-2:])
    raw = wisdm.read(f'{self.folder}/{wisdm.FILE}')['x'][:, XPEAK]
    train = np.repeat(np.arange(1, 5), 12) != user
    median = np.nanmedian(raw[train])
    imputed = np.where(np.isnan(raw), median, raw)
    expected = (median - imputed[train].mean()) / imputed[train].std()
    x = testing.client_arrays_of(task.test, test_id)['x'][:, XPEAK]
    np.testing.assert_allclose(x[user], expected, rtol=1e-5)

  def test_cache_is_used_until_the_file_changes(self):
    write(self.folder, small_rows())
    with mock.patch.object(wisdm, 'read', wraps=wisdm.read) as read:
      first = testing.client_sizes(self.load(protocol='within_user').test)
      self.load()
      self.assertEqual(read.call_count, 1)
      write(self.folder, small_rows()[:-6])
      changed = testing.client_sizes(self.load(protocol='within_user').test)
      self.assertEqual(read.call_count, 2)
    self.assertEqual(first, [3, 3, 3, 3])
    self.assertEqual(changed, [3, 3, 3, 2])

  @parameterized.named_parameters(
      ('fields', 3, lambda r: r[:-1], '45 fields, expected 46'),
      ('feature', 4, lambda r: r[:5] + ['abc'] + r[6:], "X3 'abc' is not a"),
      ('nan', 5, lambda r: r[:41] + ['nan'] + r[42:], "XSTANDDEV 'nan'"),
      ('class', 6, lambda r: r[:-1] + ['Running'], "class 'Running' is not"),
      ('user', 7, lambda r: r[:1] + ['3.5'] + r[2:], "user '3.5' is not a"),
      ('missing_user', 8, lambda r: r[:1] + ['?'] + r[2:], "user '\\?'"),
  )
  def test_malformed_row(self, index, corrupt, message):
    rows = small_rows()
    rows[index] = corrupt(rows[index])
    path = write(self.folder, rows)
    with self.assertRaisesRegex(DataError, re.escape(
        f'{path}: line {FIRST_ROW_LINE + index}: ') + message):
      self.load()

  @parameterized.named_parameters(
      ('count', HEADER[:-4] + HEADER[-3:], len(HEADER) - 1,
       '45 attributes, expected 46'),
      ('name', HEADER[:10] + ['@attribute "X9" numeric'] + HEADER[11:], 11,
       "attribute 'X9', expected 'X6'"),
      ('junk', HEADER[:5] + ['X3 numeric'] + HEADER[5:], 6,
       'expected @relation, @attribute or @data'),
  )
  def test_malformed_header(self, header, line, message):
    path = write(self.folder, small_rows(), header)
    with self.assertRaisesRegex(DataError, re.escape(
        f'{path}: line {line}: ') + message):
      self.load()

  def test_no_data(self):
    path = write(self.folder, [], HEADER[:-1])
    with self.assertRaisesRegex(DataError, re.escape(f'{path}: no @data')):
      self.load()
    write(self.folder, [])
    with self.assertRaisesRegex(DataError, 'no rows after @data'):
      self.load()
    os.remove(path)
    with self.assertRaisesRegex(DataError, 'transformed.arff: WISDM'):
      self.load()

  def test_feature_missing_on_every_training_row(self):
    rows = small_rows()
    for row in rows:
      row[2 + XPEAK] = '?'
    write(self.folder, rows)
    with self.assertRaisesRegex(DataError, 'XPEAK is \\? on every training'):
      self.load()

  @parameterized.named_parameters(
      ('protocol', {'protocol': 'users'}, 'protocol: must be one of'),
      ('heldout_zero', {'heldout_fraction': 0.0}, 'heldout_fraction: must'),
      ('heldout_all', {'heldout_fraction': 0.9}, 'heldout_fraction: 0.9 of 4'),
      ('test_one', {'test_fraction': 1.0}, 'test_fraction: must be in'),
      ('test_small', {'protocol': 'within_user', 'test_fraction': 0.01},
       'test_fraction: 0.01 leaves user_01 with no'),
  )
  def test_bad_options(self, options, message):
    write(self.folder, small_rows())
    with self.assertRaisesRegex(DataError, message):
      self.load(**options)


if __name__ == '__main__':
  absltest.main()
