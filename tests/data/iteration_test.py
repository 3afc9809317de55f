"""The iterator loops give what `Dataset.reduce` and plain iteration give,
eagerly and inside graphs, empty datasets included."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from fedmeta.data import iteration


def examples(n):
  return tf.data.Dataset.from_tensor_slices(
      {'x': np.arange(2 * n, dtype=np.float32).reshape(n, 2),
       'y': np.arange(n, dtype=np.int32)})


def step(state, batch):
  """A state of fixed shapes that depends on the order of the batches."""
  total, weighted, batches = state
  total = total * 0.5 + tf.reduce_sum(batch['x'], 0)
  weighted = weighted + tf.reduce_sum(tf.cast(batch['y'], tf.int64))
  return total, weighted * 3, batches + 1


INITIAL = (np.zeros([2], np.float32), np.int64(1), np.int32(0))


def in_graph(fn, *args):
  """`fn(*args)` built and run in a `tf.compat.v1` graph, as TFF runs it."""
  with tf.Graph().as_default():
    result = fn(*args)
    with tf.compat.v1.Session() as session:
      return session.run(result)


class IterationTest(parameterized.TestCase):

  @parameterized.product(n=[0, 1, 7, 20], batch=[1, 3, 20],
                         graph=[False, True])
  def test_reduce_equals_dataset_reduce(self, n, batch, graph):
    def both():
      dataset = examples(n).batch(batch)
      return (iteration.reduce(dataset, INITIAL, step),
              dataset.reduce(INITIAL, step))
    ours, theirs = in_graph(both) if graph else both()
    for a, b in zip(ours, theirs):
      np.testing.assert_array_equal(a, b)  # Bit for bit.

  @parameterized.product(n=[0, 1, 7], graph=[False, True])
  def test_count(self, n, graph):
    count = lambda: iteration.count(examples(n).batch(2))
    self.assertEqual(in_graph(count) if graph else count().numpy(),
                     (n + 1) // 2)

  @parameterized.product(n=[0, 1, 7, 20], batch=[1, 3, 20],
                         graph=[False, True])
  def test_concatenate_joins_batches_in_order(self, n, batch, graph):
    joined = lambda: iteration.concatenate(examples(n).batch(batch))
    result = in_graph(joined) if graph else tf.nest.map_structure(
        np.asarray, joined())
    np.testing.assert_array_equal(
        result['x'], np.arange(2 * n, dtype=np.float32).reshape(n, 2))
    np.testing.assert_array_equal(result['y'], np.arange(n))

  @parameterized.product(n=[0, 3], graph=[False, True])
  def test_first_or(self, n, graph):
    first = lambda: iteration.first_or(
        examples(n).batch(2),
        {'x': tf.zeros([0, 2]), 'y': tf.zeros([0], tf.int32)})
    result = in_graph(first) if graph else tf.nest.map_structure(
        np.asarray, first())
    expected = np.arange(min(n, 2)) if n else np.zeros([0])
    np.testing.assert_array_equal(result['y'], expected)
    self.assertEqual(result['x'].shape, (len(expected), 2))

  def test_count_in_eager_loops_traces_once(self):
    for n in range(5):
      iteration.count(examples(n))
    before = iteration.count.experimental_get_tracing_count()
    for n in range(5, 10):
      self.assertEqual(int(iteration.count(examples(n))), n)
    self.assertEqual(iteration.count.experimental_get_tracing_count(), before)


if __name__ == '__main__':
  absltest.main()
