"""Data poisoning: label flipping, pixel-pattern backdoors, attacker sets."""

import collections

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from fedmeta.data import poisoning
from fedmeta.data import task as task_lib

# The brief's trigger on 0/1 images: high (1) at the patch's top-left.
TRIGGER = poisoning.Trigger(low=0.0, high=1.0)


def dataset(x, y, **extra):
  return tf.data.Dataset.from_tensor_slices(
      {'x': np.asarray(x), 'y': np.asarray(y, np.int32), **extra})


def arrays(ds):
  """The whole dataset as one dict of numpy arrays."""
  return next(ds.batch(100_000).as_numpy_iterator())


def images(n, shape=(8, 8), seed=0):
  """n images of values strictly inside (0, 1), so a trigger pixel shows."""
  rng = np.random.default_rng(seed)
  return rng.uniform(0.2, 0.8, (n,) + shape).astype(np.float32)


class TriggerTest(parameterized.TestCase):

  def test_patch_on_a_5x5x1_image(self):
    x = np.full([5, 5, 1], 0.5, np.float32)
    h, o = 1.0, 0.0
    expected = np.array([[.5, .5, .5, .5, .5],
                         [.5, .5, .5, .5, .5],
                         [.5, .5, h, o, h],
                         [.5, .5, o, h, o],
                         [.5, .5, h, o, h]], np.float32)[..., None]
    np.testing.assert_array_equal(
        poisoning.apply_trigger(tf.constant(x), TRIGGER), expected)

  def test_patch_on_a_flat_image_with_image_shape(self):
    x = np.arange(16, dtype=np.float32)
    trigger = poisoning.Trigger(low=-1.0, high=20.0, size=2)
    expected = np.array([0, 1, 2, 3,
                         4, 5, 6, 7,
                         8, 9, 20, -1,
                         12, 13, -1, 20], np.float32)
    np.testing.assert_array_equal(
        poisoning.apply_trigger(tf.constant(x), trigger, image_shape=(4, 4)),
        expected)

  def test_patch_on_every_channel_of_a_3_channel_image(self):
    x = np.stack([np.full([4, 4], v, np.float32) for v in (0.1, 0.2, 0.3)],
                 axis=-1)
    trigger = poisoning.Trigger(low=0.0, high=1.0, size=2)
    out = poisoning.apply_trigger(tf.constant(x), trigger).numpy()
    for c, v in enumerate((0.1, 0.2, 0.3)):
      expected = np.array([[v, v, v, v],
                           [v, v, v, v],
                           [v, v, 1, 0],
                           [v, v, 0, 1]], np.float32)
      np.testing.assert_array_equal(out[..., c], expected, f'channel {c}')

  def test_patch_on_a_2d_uint8_image(self):
    x = np.full([3, 4], 7, np.uint8)
    trigger = poisoning.Trigger(low=0, high=255, size=3)
    expected = np.array([[7, 255, 0, 255],
                         [7, 0, 255, 0],
                         [7, 255, 0, 255]], np.uint8)
    out = poisoning.apply_trigger(tf.constant(x), trigger, image_shape=(3, 4))
    self.assertEqual(out.dtype, tf.uint8)
    np.testing.assert_array_equal(out, expected)

  def test_works_inside_dataset_map(self):
    x = images(3, (16,))
    out = dataset(x, [0, 1, 2]).map(lambda e: poisoning.apply_trigger(
        e['x'], TRIGGER, image_shape=(4, 4)))
    expected = np.stack([poisoning.apply_trigger(tf.constant(v), TRIGGER,
                                                 image_shape=(4, 4))
                         for v in x])
    np.testing.assert_array_equal(np.stack(list(out.as_numpy_iterator())),
                                  expected)

  @parameterized.named_parameters(
      ('flat_without_image_shape', [16], None, r'\(16,\) is not an image'),
      ('flat_of_another_shape', [16], (4, 5), r'\(16,\) is not a flat'),
      ('image_shape_mismatch', [4, 4, 3], (4, 5), r'\(4, 4, 3\) does not'),
      ('smaller_than_trigger', [2, 5, 1], None, r'\(2, 5, 1\) is smaller'),
      ('rank_4', [1, 4, 4, 1], None, r'\(1, 4, 4, 1\) is not an image'),
      ('scalar', [], None, r'\(\) is not an image'))
  def test_shape_errors_name_the_shape(self, shape, image_shape, message):
    x = tf.zeros(shape)
    with self.assertRaisesRegex(task_lib.DataError,
                                '^x: shape ' + message) as ctx:
      poisoning.apply_trigger(x, TRIGGER, image_shape=image_shape)
    self.assertNotIn('\n', str(ctx.exception))

  def test_unknown_dimensions_are_refused(self):
    ds = tf.data.Dataset.from_generator(
        lambda: iter([]), output_signature={
            'x': tf.TensorSpec([None, None, 1], tf.float32),
            'y': tf.TensorSpec([], tf.int32)})
    with self.assertRaisesRegex(task_lib.DataError,
                                r'^x: shape \(None, None, 1\) is not an'):
      poisoning.triggered_test_set(ds, TRIGGER, target=0)

  @parameterized.parameters(0, -1, 2.0, True)
  def test_bad_size(self, size):
    with self.assertRaisesRegex(task_lib.DataError,
                                r'^size: must be an integer >= 1'):
      poisoning.Trigger(low=0.0, high=1.0, size=size)

  def test_trigger_is_frozen(self):
    with self.assertRaises(AttributeError):
      TRIGGER.size = 5


class ImageShapeOfTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('hwc', [28, 28, 1], (28, 28)),
      ('hw', [5, 7], (5, 7)),
      ('digits', [64], (8, 8)),
      ('smallest_square', [16], (4, 4)),
      ('small_square', [9], None),
      ('not_square', [13], None),
      ('unknown', [None], None),
      ('unknown_hw', [None, None, 3], None),
      ('rank_4', [2, 4, 4, 1], None),
      ('scalar', [], None))
  def test_image_shape_of(self, shape, expected):
    spec = {'x': tf.TensorSpec(shape, tf.float32),
            'y': tf.TensorSpec([], tf.int32)}
    self.assertEqual(poisoning.image_shape_of(spec), expected)


class FlipLabelsTest(parameterized.TestCase):

  def test_flips_every_label_and_keeps_the_rest(self):
    x = np.arange(6, dtype=np.float32)
    support = np.array([1, 0, 1, 0, 1, 0], bool)
    out = arrays(poisoning.flip_labels(
        dataset(x, [0, 1, 2, 3, 4, 2], support=support), 5))
    np.testing.assert_array_equal(out['y'], [4, 3, 2, 1, 0, 2])
    self.assertEqual(out['y'].dtype, np.int32)
    np.testing.assert_array_equal(out['x'], x)
    np.testing.assert_array_equal(out['support'], support)

  def test_twice_is_the_identity(self):
    y = np.array([0, 9, 3, 5], np.int32)
    out = poisoning.flip_labels(poisoning.flip_labels(
        dataset(np.zeros(4, np.float32), y), 10), 10)
    np.testing.assert_array_equal(arrays(out)['y'], y)

  @parameterized.parameters(1, 0, -3)
  def test_bad_num_classes(self, num_classes):
    with self.assertRaisesRegex(task_lib.DataError, r'^num_classes: must be'):
      poisoning.flip_labels(dataset([0.0], [0]), num_classes)


class BackdoorTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.x = images(400)
    self.y = np.arange(400, dtype=np.int32) % 10
    self.triggered = np.stack([
        poisoning.apply_trigger(tf.constant(v), TRIGGER).numpy()
        for v in self.x])

  def poison(self, fraction, seed=0, **extra):
    return arrays(poisoning.backdoor(
        dataset(self.x, self.y, **extra), TRIGGER, target=3,
        poison_fraction=fraction, seed=seed))

  def poisoned_mask(self, out):
    """Which examples carry the trigger (the images never hold 0 or 1)."""
    return np.all(out['x'][:, -3:, -3:] == self.triggered[:, -3:, -3:],
                  axis=(1, 2))

  def test_fraction_one_poisons_every_example(self):
    out = self.poison(1.0)
    np.testing.assert_array_equal(out['x'], self.triggered)
    np.testing.assert_array_equal(out['y'], np.full(400, 3))

  def test_half_poisons_about_half_and_leaves_the_rest_exactly(self):
    out = self.poison(0.5)
    poisoned = self.poisoned_mask(out)
    # Binomial(400, 0.5): 200 +- 10 (one sd); 150..250 is 5 sd.
    self.assertBetween(poisoned.sum(), 150, 250)
    np.testing.assert_array_equal(out['x'][poisoned], self.triggered[poisoned])
    np.testing.assert_array_equal(out['y'][poisoned], 3)
    np.testing.assert_array_equal(out['x'][~poisoned], self.x[~poisoned])
    np.testing.assert_array_equal(out['y'][~poisoned], self.y[~poisoned])

  def test_small_fraction(self):
    poisoned = self.poisoned_mask(self.poison(0.05))
    self.assertBetween(poisoned.sum(), 5, 40)  # 20 expected.

  def test_deterministic_for_a_seed_and_across_passes(self):
    ds = poisoning.backdoor(dataset(self.x, self.y), TRIGGER, target=3,
                            poison_fraction=0.5, seed=4)
    first, second = arrays(ds), arrays(ds)
    np.testing.assert_array_equal(first['x'], second['x'])
    np.testing.assert_array_equal(
        self.poisoned_mask(first), self.poisoned_mask(self.poison(0.5, 4)))

  def test_seeds_poison_different_examples(self):
    masks = {self.poisoned_mask(self.poison(0.5, seed)).tobytes()
             for seed in range(5)}
    self.assertLen(masks, 5)

  def test_tensor_seed_equals_int_seed(self):
    out = arrays(poisoning.backdoor(
        dataset(self.x, self.y), TRIGGER, target=3, poison_fraction=0.5,
        seed=tf.constant(7)))
    np.testing.assert_array_equal(out['x'], self.poison(0.5, 7)['x'])

  def test_extra_keys_pass_through(self):
    support = np.arange(400) % 3 == 0
    ids = np.arange(400, dtype=np.int64)
    out = self.poison(1.0, support=support, id=ids)
    self.assertCountEqual(out, ['x', 'y', 'support', 'id'])
    np.testing.assert_array_equal(out['support'], support)
    np.testing.assert_array_equal(out['id'], ids)

  def test_keeps_an_ordered_dict_element_type(self):
    ds = tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
        y=self.y, x=self.x))
    out = poisoning.backdoor(ds, TRIGGER, target=0, poison_fraction=1.0,
                             seed=0)
    self.assertIsInstance(out.element_spec, collections.OrderedDict)
    self.assertEqual(list(out.element_spec), ['y', 'x'])

  def test_flat_digits_like_images(self):
    x = images(50, (64,))
    spec = dataset(x, np.zeros(50)).element_spec
    image_shape = poisoning.image_shape_of(spec)
    out = arrays(poisoning.backdoor(
        dataset(x, np.zeros(50)), TRIGGER, target=1, poison_fraction=1.0,
        seed=0, image_shape=image_shape))
    corner = out['x'].reshape(50, 8, 8)[:, -3:, -3:]
    np.testing.assert_array_equal(
        corner, np.broadcast_to([[1, 0, 1], [0, 1, 0], [1, 0, 1]], [50, 3, 3]))
    np.testing.assert_array_equal(out['x'].reshape(50, 8, 8)[:, :5],
                                  x.reshape(50, 8, 8)[:, :5])

  @parameterized.parameters(0.0, -0.1, 1.5)
  def test_bad_poison_fraction(self, fraction):
    with self.assertRaisesRegex(task_lib.DataError,
                                r'^poison_fraction: must be in \(0, 1\]'):
      self.poison(fraction)

  @parameterized.parameters(-1, 1.0, None)
  def test_bad_target(self, target):
    with self.assertRaisesRegex(task_lib.DataError, r'^target: must be'):
      poisoning.backdoor(dataset(self.x, self.y), TRIGGER, target=target,
                         poison_fraction=0.5, seed=0)

  def test_refuses_non_images(self):
    with self.assertRaisesRegex(task_lib.DataError, r'^x: shape \(13,\)'):
      poisoning.backdoor(dataset(np.zeros([4, 13], np.float32), [0] * 4),
                         TRIGGER, target=0, poison_fraction=0.5, seed=0)


class TriggeredTestSetTest(absltest.TestCase):

  def test_drops_target_examples_and_relabels_the_rest(self):
    x = images(6, (4, 4, 1))
    y = [0, 1, 2, 1, 0, 2]
    support = np.array([1, 1, 0, 0, 1, 0], bool)
    out = arrays(poisoning.triggered_test_set(
        dataset(x, y, support=support), TRIGGER, target=1))
    kept = [0, 2, 4, 5]
    np.testing.assert_array_equal(out['y'], [1, 1, 1, 1])
    np.testing.assert_array_equal(out['support'], support[kept])
    expected = np.stack([poisoning.apply_trigger(tf.constant(x[i]), TRIGGER)
                         for i in kept])
    np.testing.assert_array_equal(out['x'], expected)
    self.assertFalse(np.array_equal(out['x'], x[kept]))

  def test_accuracy_on_it_is_the_attack_success_rate(self):
    x = images(20, (4, 4, 1))
    y = np.arange(20, dtype=np.int32) % 4
    out = arrays(poisoning.triggered_test_set(dataset(x, y), TRIGGER,
                                              target=2))
    # A model that predicts 2 exactly on triggered inputs scores 1; one that
    # ignores the trigger and predicts the true class scores 0.
    backdoored = np.where(out['x'][:, -1, -1, 0] == 1.0, 2, -1)
    self.assertEqual(np.mean(backdoored == out['y']), 1.0)
    self.assertEqual(np.mean(y[y != 2] == out['y']), 0.0)

  def test_bad_target(self):
    with self.assertRaisesRegex(task_lib.DataError, r'^target: must be'):
      poisoning.triggered_test_set(dataset(images(2), [0, 1]), TRIGGER,
                                   target=-2)


class AttackersTest(parameterized.TestCase):

  IDS = [f'client_{i:04d}' for i in range(10)]

  @parameterized.parameters((0.0, 0), (0.3, 3), (0.25, 2), (0.75, 8),
                            (1.0, 10))
  def test_count_is_rounded(self, fraction, count):
    chosen = poisoning.attackers(self.IDS, fraction, seed=0)
    self.assertIsInstance(chosen, frozenset)
    self.assertLen(chosen, count)
    self.assertContainsSubset(chosen, self.IDS)

  def test_deterministic_and_independent_of_order(self):
    chosen = poisoning.attackers(self.IDS, 0.4, seed=3)
    self.assertEqual(chosen, poisoning.attackers(self.IDS, 0.4, seed=3))
    self.assertEqual(chosen,
                     poisoning.attackers(self.IDS[::-1], 0.4, seed=3))

  def test_seeds_give_different_sets(self):
    sets = {poisoning.attackers(self.IDS, 0.3, seed=s) for s in range(10)}
    self.assertGreater(len(sets), 5)

  def test_lazy_client_ids(self):
    ids = task_lib.ClientIds('user', 1000)
    chosen = poisoning.attackers(ids, 0.1, seed=0)
    self.assertLen(chosen, 100)
    self.assertTrue(all(c in ids for c in chosen))

  @parameterized.parameters(-0.1, 1.01)
  def test_bad_fraction(self, fraction):
    with self.assertRaisesRegex(task_lib.DataError,
                                r'^fraction: must be in \[0, 1\], got'):
      poisoning.attackers(self.IDS, fraction, seed=0)


if __name__ == '__main__':
  absltest.main()
