"""Episodes: fresh N-way K-shot draws from each client's own classes."""

from absl.testing import absltest
import numpy as np

from fedmeta.data import DataError
from fedmeta.data import episodes
from fedmeta.data import task as task_lib

# Client c holds classes 10c..10c+5 (6 classes), 8 examples each; x encodes
# (class, example) so that every draw can be traced back.
CLASSES_PER_CLIENT = 6
EXAMPLES_PER_CLASS = 8


def _client_data():
  pairs = []
  for c in range(3):
    labels = np.repeat(10 * c + np.arange(CLASSES_PER_CLIENT),
                       EXAMPLES_PER_CLASS).astype(np.int32)
    x = (labels * 100 + np.tile(np.arange(EXAMPLES_PER_CLASS),
                                CLASSES_PER_CLIENT)).astype(np.float32)
    pairs.append((x[:, None], labels))
  return task_lib.client_data_from_pairs(pairs)


def _sampler(**kwargs):
  kwargs = dict(dict(ways=5, shots=2, query_shots=3, seed=7), **kwargs)
  return episodes.EpisodeSampler(_client_data(), **kwargs)


def _classes(x):
  """Original class and example index of each drawn x."""
  return (x[:, 0] // 100).astype(int), (x[:, 0] % 100).astype(int)


class EpisodeSamplerTest(absltest.TestCase):

  def test_episode_shape_and_support_flags(self):
    episode = _sampler().episode('client_0001', round_num=3)
    self.assertEqual(list(episode), ['support', 'x', 'y'])
    self.assertEqual(episode['x'].shape, (25, 1))
    self.assertEqual(episode['y'].dtype, np.int32)
    np.testing.assert_array_equal(episode['support'],
                                  np.arange(25) < 10)
    # Each label has 2 support and 3 query examples.
    for support in (True, False):
      counts = np.bincount(episode['y'][episode['support'] == support],
                           minlength=5)
      np.testing.assert_array_equal(counts, [2 if support else 3] * 5)

  def test_classes_come_from_the_clients_pool_one_class_per_label(self):
    sampler = _sampler()
    for client in range(3):
      for round_num in range(1, 20):
        episode = sampler.episode(f'client_{client:04d}', round_num)
        original, example = _classes(episode['x'])
        self.assertTrue(np.all(original // 10 == client))
        # A label means one class, and the 5 labels 5 distinct classes.
        mapping = {}
        for label, cls in zip(episode['y'], original):
          self.assertEqual(mapping.setdefault(label, cls), cls)
        self.assertLen(set(mapping.values()), 5)
        # No example twice in an episode (support and query are disjoint).
        self.assertLen(set(zip(original, example)), 25)

  def test_labels_are_permuted_and_episodes_fresh_each_round(self):
    sampler = _sampler()
    labellings, draws = set(), set()
    for round_num in range(1, 41):
      episode = sampler.episode('client_0000', round_num)
      original, example = _classes(episode['x'])
      labellings.add(tuple(original[episode['y'] == k][0] for k in range(5)))
      draws.add(tuple(zip(original, example)))
    # 6 classes, 5 ways: 720 labellings; 40 rounds give many distinct ones.
    self.assertGreater(len(labellings), 30)
    self.assertLen(draws, 40)
    # Every class shows up under every label at some point.
    for label in range(5):
      self.assertLen({lab[label] for lab in labellings}, CLASSES_PER_CLIENT)

  def test_seed_round_client_and_index_determine_the_episode(self):
    a, b = _sampler(), _sampler()
    first = a.episode('client_0002', 5, index=1)
    for key, value in b.episode('client_0002', 5, index=1).items():
      np.testing.assert_array_equal(first[key], value)
    # Drawing other episodes first changes nothing (no shared RNG state).
    a.episode('client_0000', 9)
    np.testing.assert_array_equal(a.episode('client_0002', 5, index=1)['x'],
                                  first['x'])
    for other in (a.episode('client_0002', 6, 1), a.episode('client_0002', 5, 0),
                  _sampler(seed=8).episode('client_0002', 5, 1)):
      self.assertFalse(np.array_equal(other['x'], first['x']))

  def test_dataset_matches_episode(self):
    sampler = _sampler()
    elements = list(sampler.dataset('client_0001', 2).batch(100)
                    .as_numpy_iterator())[0]
    episode = sampler.episode('client_0001', 2)
    for key in episode:
      np.testing.assert_array_equal(elements[key], episode[key])

  def test_evaluation_episodes_are_fixed_and_cycle_over_clients(self):
    sampler = _sampler()
    first = episodes.evaluation_datasets(sampler, 5, ['client_0001',
                                                      'client_0002'])
    again = episodes.evaluation_datasets(sampler, 5, ['client_0001',
                                                      'client_0002'])
    self.assertLen(first, 5)
    for i, (d, e) in enumerate(zip(first, again)):
      x = np.stack([el['x'] for el in d.as_numpy_iterator()])
      self.assertTrue(np.all(_classes(x)[0] // 10 == 1 + i % 2))
      np.testing.assert_array_equal(
          x, np.stack([el['x'] for el in e.as_numpy_iterator()]))
    # Not any training round's episode.
    train = sampler.episode('client_0001', 1, 0)['x']
    self.assertFalse(np.array_equal(
        np.stack([el['x'] for el in first[0].as_numpy_iterator()]), train))

  def test_too_small_pool_is_a_one_line_error(self):
    with self.assertRaisesRegex(
        DataError, r'^client client_0000: has 6 classes with shots \+ '
        r'query_shots = 5 examples, a 7-way episode needs that many$'):
      _sampler(ways=7).episode('client_0000', 1)
    with self.assertRaisesRegex(DataError, 'has 0 classes with shots'):
      _sampler(shots=5, query_shots=4).episode('client_0000', 1)
    with self.assertRaisesRegex(DataError, '^query_shots: must be >= 1'):
      _sampler(query_shots=0)

  def test_confidence_interval(self):
    values = [0.5, 0.7, 0.9, 1.0]
    expected = 1.96 * np.std(values, ddof=1) / 2
    self.assertAlmostEqual(episodes.confidence_95(values), expected)
    self.assertEqual(episodes.confidence_95([0.3]), 0.0)

  def test_class_pools_are_disjoint_and_seeded(self):
    labels = np.repeat(np.arange(23), 2)
    pools = episodes.class_pools(labels, 5, seed=1)
    self.assertLen(pools, 4)
    flat = np.concatenate(pools)
    self.assertLen(set(flat), 20)
    self.assertTrue(set(flat) <= set(range(23)))
    self.assertEqual([list(p) for p in pools],
                     [list(p) for p in episodes.class_pools(labels, 5, 1)])
    self.assertNotEqual([list(p) for p in pools],
                        [list(p) for p in episodes.class_pools(labels, 5, 2)])
    with self.assertRaisesRegex(DataError, '^pool_size: 30 is more than'):
      episodes.class_pools(labels, 30, 0)


if __name__ == '__main__':
  absltest.main()
