"""Partitioners assign every example once, deterministically, with skew."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from fedmeta.data import partition

LABELS = np.random.default_rng(0).integers(0, 10, 2000)


def label_skew(parts) -> float:
  """Mean total-variation distance of client label histograms to global."""
  global_hist = np.bincount(LABELS, minlength=10) / len(LABELS)
  return float(np.mean([
      0.5 * np.abs(np.bincount(LABELS[p], minlength=10) / len(p)
                   - global_hist).sum() for p in parts]))


class PartitionTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('iid', lambda seed: partition.iid(LABELS, 20, seed)),
      ('dirichlet', lambda seed: partition.dirichlet(LABELS, 20, 0.3, seed)),
      ('shards', lambda seed: partition.shards(LABELS, 20, 2, seed)))
  def test_every_example_once_and_deterministic(self, fn):
    parts = fn(7)
    self.assertLen(parts, 20)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)),
                                  np.arange(len(LABELS)))
    for a, b in zip(parts, fn(7)):
      np.testing.assert_array_equal(a, b)
    self.assertFalse(all(np.array_equal(a, b) for a, b in zip(parts, fn(8))))

  def test_dirichlet_skew_grows_as_alpha_shrinks(self):
    skews = [label_skew(partition.dirichlet(LABELS, 20, alpha, 0))
             for alpha in (100.0, 1.0, 0.1)]
    self.assertLess(skews[0], skews[1])
    self.assertLess(skews[1], skews[2])
    self.assertLess(skews[0], label_skew(partition.shards(LABELS, 20, 2, 0)))

  def test_shards_give_few_labels_per_client(self):
    # A shard of sorted labels straddles at most two labels here (50 examples,
    # ~200 per label), so two shards hold at most four.
    for part in partition.shards(LABELS, 20, 2, 0):
      self.assertLessEqual(len(np.unique(LABELS[part])), 4)

  @parameterized.named_parameters(
      ('no_clients', lambda: partition.iid(LABELS, 0, 0), 'num_clients'),
      ('too_many', lambda: partition.iid(LABELS[:3], 5, 0), 'num_clients'),
      ('alpha', lambda: partition.dirichlet(LABELS, 5, 0.0, 0), 'alpha'),
      ('shards', lambda: partition.shards(LABELS, 20, 200, 0),
       'shards_per_client'))
  def test_bad_arguments(self, fn, field):
    with self.assertRaisesRegex(partition.PartitionError, field):
      fn()


if __name__ == '__main__':
  absltest.main()
