"""Support/query splits: every example in exactly one set, K shots per class."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from fedmeta.data import support_query
from fedmeta.data import task as task_lib

LABELS = np.repeat(np.arange(5, dtype=np.int32), [7, 3, 2, 1, 10])


def split_arrays(seed=(1, 2), labels=LABELS, **kwargs):
  ds = tf.data.Dataset.from_tensor_slices(
      {'x': np.arange(len(labels), dtype=np.float32), 'y': labels})
  out = next(support_query.split(ds, seed=seed, **kwargs)
             .batch(1000).as_numpy_iterator())
  return out['x'], out['y'], out['support']


class SupportQueryTest(parameterized.TestCase):

  @parameterized.parameters(dict(shots=1), dict(shots=2), dict(shots=5),
                            dict(support_fraction=0.2),
                            dict(support_fraction=0.8))
  def test_each_example_once_in_original_order(self, **kwargs):
    x, y, mask = split_arrays(**kwargs)
    np.testing.assert_array_equal(x, np.arange(len(LABELS)))
    np.testing.assert_array_equal(y, LABELS)
    ds = tf.data.Dataset.from_tensor_slices({'x': x, 'y': y, 'support': mask})
    sx = [e['x'] for e in support_query.support(ds).as_numpy_iterator()]
    qx = [e['x'] for e in support_query.query(ds).as_numpy_iterator()]
    self.assertEmpty(set(sx) & set(qx))
    self.assertCountEqual(sx + qx, x)
    self.assertNotIn('support', support_query.query(ds).element_spec)

  @parameterized.parameters(1, 2, 5)
  def test_shots_per_class(self, shots):
    _, y, mask = split_arrays(shots=shots)
    for c, size in enumerate(np.bincount(LABELS)):
      expected = min(shots, max(size - 1, 1))
      self.assertEqual(mask[y == c].sum(), expected, f'class {c}')

  def test_fraction_rounds_and_keeps_both_sets(self):
    self.assertEqual(split_arrays(support_fraction=0.2)[2].sum(), 5)  # 4.6
    self.assertEqual(split_arrays(support_fraction=0.01)[2].sum(), 1)
    self.assertEqual(split_arrays(support_fraction=0.99)[2].sum(), 22)

  def test_deterministic_for_a_seed_and_shuffled_across_seeds(self):
    a = split_arrays(seed=(3, 4), shots=3)[2]
    np.testing.assert_array_equal(a, split_arrays(seed=(3, 4), shots=3)[2])
    masks = {split_arrays(seed=(s, 0), shots=3)[2].tobytes()
             for s in range(10)}
    self.assertGreater(len(masks), 5)

  def test_empty_dataset_gives_empty_split(self):
    ds = tf.data.Dataset.from_tensor_slices(
        {'x': np.zeros([0], np.float32), 'y': np.zeros([0], np.int32)})
    self.assertEmpty(list(support_query.split(ds, shots=1, seed=[0, 0])))

  def test_client_data_seeds_differ_by_client(self):
    parts = [np.arange(0, 100), np.arange(100, 200)]
    y = np.zeros(200, np.int32)
    cd = task_lib.client_data_from_arrays(
        np.arange(200, dtype=np.float32) % 100, y, parts)
    split = support_query.split_client_data(cd, support_fraction=0.5, seed=7)
    masks = [next(split.create_tf_dataset_for_client(c).batch(100)
                  .as_numpy_iterator())['support'] for c in cd.client_ids]
    self.assertEqual(masks[0].sum(), 50)
    self.assertFalse(np.array_equal(masks[0], masks[1]))
    again = support_query.split_client_data(cd, support_fraction=0.5, seed=7)
    np.testing.assert_array_equal(
        masks[0], next(again.create_tf_dataset_for_client(cd.client_ids[0])
                       .batch(100).as_numpy_iterator())['support'])

  def test_client_data_split_drawn_afresh_each_round(self):
    parts = [np.arange(0, 60)]
    cd = task_lib.client_data_from_arrays(
        np.arange(60, dtype=np.float32),
        np.repeat(np.arange(3, dtype=np.int32), 20), parts)

    def mask(**kwargs):
      split = support_query.split_client_data(cd, shots=2, seed=7, **kwargs)
      return next(split.create_tf_dataset_for_client(cd.client_ids[0])
                  .batch(100).as_numpy_iterator())['support']

    by_round = {r: mask(round_num=r) for r in range(1, 6)}
    for r, m in by_round.items():
      np.testing.assert_array_equal(m, mask(round_num=r))  # Seeded.
      self.assertEqual(m.sum(), 6)  # Still 2 shots of each of 3 classes.
    self.assertLen({tuple(m) for m in by_round.values()}, 5)
    # Without a round: the one fixed split, as before rounds were known.
    self.assertFalse(np.array_equal(mask(), by_round[1]))
    np.testing.assert_array_equal(mask(), mask())

  def test_arrays_split_by_the_flag_without_it(self):
    support, query = support_query.support_and_query_arrays({
        'support': np.array([True, False, True]), 'x': np.arange(3.0),
        'y': np.array([5, 6, 7])})
    np.testing.assert_array_equal(support['x'], [0.0, 2.0])
    np.testing.assert_array_equal(support['y'], [5, 7])
    self.assertEqual(list(query), ['x', 'y'])
    np.testing.assert_array_equal(query['y'], [6])

  def test_training_support_then_test_query(self):
    train = task_lib.client_data_from_pairs(
        [(np.float32([[1], [2]]), np.int32([0, 1])),
         (np.float32([[3]]), np.int32([1]))], ids=['a', 'b'])
    test = task_lib.client_data_from_pairs(
        [(np.float32([[4], [5], [6]]), np.int32([1, 0, 0]))], ids=['a'])
    both = support_query.with_training_support(train, test)
    self.assertEqual(list(both.client_ids), ['a'])
    out = next(both.create_tf_dataset_for_client('a').batch(10)
               .as_numpy_iterator())
    np.testing.assert_array_equal(out['x'][:, 0], [1, 2, 4, 5, 6])
    np.testing.assert_array_equal(out['y'], [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(out['support'], [1, 1, 0, 0, 0])
    with self.assertRaisesRegex(
        task_lib.DataError, r"test clients \['b'\] \(of 1\) have no "
        'training data'):
      support_query.with_training_support(test, train)

  @parameterized.parameters(dict(), dict(shots=1, support_fraction=0.5),
                            dict(shots=0), dict(support_fraction=1.0))
  def test_bad_arguments(self, **kwargs):
    with self.assertRaisesRegex(task_lib.DataError, 'shots|support_fraction'):
      split_arrays(**kwargs)


if __name__ == '__main__':
  absltest.main()
