"""Episodic clients: a fresh N-way K-shot task each time a client is sampled.

MAML (Finn et al. 2017, https://arxiv.org/abs/1703.03400), Reptile, Meta-SGD
and Prototypical Networks meta-train on episodes: each step draws N classes,
gives them labels 0..N-1 in a random order, and K support and Q query
examples of each, all fresh. Federated, a client holds a pool of classes (its
own examples grouped by label) and draws its episodes from that pool alone.

An episode is a deterministic function of (seed, round, client, index): a run
that resumes from a checkpoint draws the episodes an uninterrupted one would.
Episodes are support-flagged datasets (`fedmeta.data.support_query`), so every
meta-learning algorithm takes them unchanged.
"""

import collections
import zlib
from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta.data import support_query
from fedmeta.data import task as task_lib

# Where evaluation episodes are drawn, apart from any training round's.
EVALUATION_ROUND = -1


def _client_key(client_id: str) -> int:
  """A stable integer for a client id (Python's hash() is salted)."""
  return zlib.crc32(str(client_id).encode())


class EpisodeSampler:
  """Draws N-way K-shot episodes from each client's own classes.

  Args:
    client_data: `tff.simulation.datasets.ClientData` whose elements have an
      integer class label `y`; a client's pool is its classes. A client's
      examples are read once, when it first draws an episode.
    ways: N, classes per episode.
    shots: K, support examples per class.
    query_shots: Q, query examples per class.
    seed: With the round, the client and the episode index, fixes the draw.
  """

  def __init__(self, client_data: tff.simulation.datasets.ClientData, *,
               ways: int, shots: int, query_shots: int, seed: int = 0):
    for name, value in (('ways', ways), ('shots', shots),
                        ('query_shots', query_shots)):
      if value < 1:
        raise task_lib.DataError(f'{name}: must be >= 1, got {value}')
    self.client_data = client_data
    self.ways = ways
    self.shots = shots
    self.query_shots = query_shots
    self.seed = seed
    self._pools: dict[str, tuple[dict, list[np.ndarray]]] = {}

  @property
  def client_ids(self) -> Sequence[str]:
    return self.client_data.client_ids

  def pool(self, client_id: str) -> tuple[dict, list[np.ndarray]]:
    """(the client's examples as arrays, one index array per class, classes
    in increasing label order).

    Raises:
      DataError: If the client has fewer than `ways` classes with
        `shots + query_shots` examples each.
    """
    if client_id not in self._pools:
      dataset = self.client_data.create_tf_dataset_for_client(client_id)
      batches = list(dataset.batch(4096).as_numpy_iterator())
      examples = {k: np.concatenate([b[k] for b in batches])
                  for k in batches[0]} if batches else {}
      labels = examples.get('y', np.zeros([0], np.int32)).reshape(-1)
      if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise task_lib.DataError(
            f'client {client_id}: episodes need integer class labels y, got '
            f'{labels.dtype}')
      need = self.shots + self.query_shots
      classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
      classes = [idx for idx in classes if len(idx) >= need]
      if len(classes) < self.ways:
        raise task_lib.DataError(
            f'client {client_id}: has {len(classes)} classes with '
            f'shots + query_shots = {need} examples, a {self.ways}-way '
            'episode needs that many')
      self._pools[client_id] = (examples, classes)
    return self._pools[client_id]

  def episode(self, client_id: str, round_num: int,
              index: int = 0) -> collections.OrderedDict:
    """Episode `index` of `client_id` in round `round_num`, as arrays.

    The N classes are drawn without replacement and labelled 0..N-1 in the
    order drawn (a uniformly random labelling); each class gives `shots`
    support and `query_shots` query examples, distinct and drawn without
    replacement. Support examples come first, class by class.

    Returns:
      `OrderedDict(support=bool [n], x=..., y=int32 [n])`, with keys sorted
      as TFF needs, n = ways * (shots + query_shots).
    """
    examples, classes = self.pool(client_id)
    rng = np.random.default_rng(
        [self.seed, round_num - EVALUATION_ROUND, _client_key(client_id),
         index])
    chosen = rng.choice(len(classes), self.ways, replace=False)
    need = self.shots + self.query_shots
    picks = np.stack([rng.choice(classes[c], need, replace=False)
                      for c in chosen])  # [ways, shots + query_shots]
    order = np.concatenate([picks[:, :self.shots].reshape(-1),
                            picks[:, self.shots:].reshape(-1)])
    labels = np.concatenate([np.repeat(np.arange(self.ways), self.shots),
                             np.repeat(np.arange(self.ways),
                                       self.query_shots)]).astype(np.int32)
    episode = {k: v[order] for k, v in examples.items() if k != 'y'}
    episode['y'] = labels.reshape((-1,) + examples['y'].shape[1:])
    episode[support_query.SUPPORT_KEY] = np.arange(len(order)) < (
        self.ways * self.shots)
    return collections.OrderedDict(sorted(episode.items()))

  def dataset(self, client_id: str, round_num: int,
              index: int = 0) -> tf.data.Dataset:
    """`episode` as an unbatched, support-flagged `tf.data.Dataset`."""
    return tf.data.Dataset.from_tensor_slices(
        self.episode(client_id, round_num, index))


def evaluation_datasets(sampler: EpisodeSampler, num_episodes: int,
                        client_ids: Sequence[str] | None = None
                        ) -> list[tf.data.Dataset]:
  """`num_episodes` held-out episodes, the same at every evaluation.

  Episode e comes from client `client_ids[e % len(client_ids)]` (default the
  sampler's clients), drawn apart from every training round's episodes.
  """
  ids = list(sampler.client_ids if client_ids is None else client_ids)
  if num_episodes < 1:
    raise task_lib.DataError(
        f'num_episodes: must be >= 1, got {num_episodes}')
  return [sampler.dataset(ids[e % len(ids)], EVALUATION_ROUND, e)
          for e in range(num_episodes)]


def confidence_95(values: Sequence[float]) -> float:
  """Half-width of the normal 95% confidence interval of the mean, as the
  few-shot papers report it: 1.96 * sample std / sqrt(n); 0 for n < 2."""
  values = np.asarray(values, np.float64)
  if len(values) < 2:
    return 0.0
  return float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def class_pools(labels: np.ndarray, pool_size: int,
                seed: int) -> list[np.ndarray]:
  """Disjoint pools of `pool_size` classes, assigned at random (IID): the
  class ids `unique(labels)` shuffled and cut; a remainder is dropped."""
  classes = np.random.default_rng(seed).permutation(np.unique(labels))
  count = len(classes) // pool_size
  if count < 1:
    raise task_lib.DataError(
        f'pool_size: {pool_size} is more than the {len(classes)} classes')
  return [np.sort(p) for p in np.split(classes[:count * pool_size], count)]


def pooled_client_data(x: np.ndarray, labels: np.ndarray,
                       pools: Sequence[np.ndarray], prefix: str,
                       ) -> tff.simulation.datasets.ClientData:
  """`ClientData` whose client i holds every example of the classes
  `pools[i]`, with their global labels."""
  order = np.argsort(labels, kind='stable')
  classes, starts = np.unique(labels[order], return_index=True)
  by_class = dict(zip(classes, np.split(order, starts[1:])))
  parts = [np.concatenate([by_class[c] for c in pool]) for pool in pools]
  return task_lib.client_data_from_arrays(x, labels, parts, prefix=prefix)

