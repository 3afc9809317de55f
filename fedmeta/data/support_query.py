"""Support/query splits of client datasets, for meta-learning.

A split adds a boolean `support` to every element of a client's dataset, so
each example lands in exactly one of the two sets by construction; meta-
learning client work reads the support set with `support(ds)` and the query
set with `query(ds)`. The split is pure TensorFlow (usable inside TFF
computations) and a deterministic function of the client's data and seed.
"""

from typing import Optional

import tensorflow as tf
import tensorflow_federated as tff

from fedmeta.data import iteration
from fedmeta.data import task as task_lib

SUPPORT_KEY = 'support'


def _check(support_fraction: Optional[float], shots: Optional[int]) -> None:
  if (support_fraction is None) == (shots is None):
    raise task_lib.DataError(
        'support_fraction, shots: give exactly one, got '
        f'support_fraction={support_fraction}, shots={shots}')
  if support_fraction is not None and not 0 < support_fraction < 1:
    raise task_lib.DataError(
        f'support_fraction: must be in (0, 1), got {support_fraction}')
  if shots is not None and shots < 1:
    raise task_lib.DataError(f'shots: must be >= 1, got {shots}')


def support_mask(labels: tf.Tensor, *, support_fraction: Optional[float],
                 shots: Optional[int], seed: tf.Tensor) -> tf.Tensor:
  """Which examples are support, after a seeded shuffle.

  Args:
    labels: [n] class labels (used with `shots`), or any [n, ...] tensor.
    support_fraction: Fraction of the examples in the support set, rounded,
      with at least one example in each set when n >= 2.
    shots: Support examples per class (K-shot); classes with K or fewer
      examples keep one for the query set when they have two or more.
    seed: Shape [2] int64 seed of the stateless shuffle.

  Returns:
    [n] bool.
  """
  _check(support_fraction, shots)
  n = tf.shape(labels, out_type=tf.int64)[0]
  order = tf.random.experimental.stateless_shuffle(tf.range(n), seed)
  if support_fraction is not None:
    k = tf.cast(tf.round(support_fraction * tf.cast(n, tf.float64)), tf.int64)
    k = tf.clip_by_value(k, tf.minimum(n, 1), tf.maximum(n - 1, 1))
    return tf.math.invert_permutation(order) < k
  # Rank of each example within its class in the shuffled order: a stable
  # sort by label keeps the shuffle's order inside each class.
  shuffled = tf.gather(tf.reshape(labels, [n, -1])[:, 0], order)
  by_class = tf.argsort(shuffled, stable=True)
  sorted_labels = tf.gather(shuffled, by_class)
  class_id = tf.cumsum(tf.cast(tf.concat(
      [tf.ones([tf.minimum(n, 1)], tf.bool),
       sorted_labels[1:] != sorted_labels[:-1]], 0), tf.int64)) - 1
  position = tf.range(n)
  rank_in_class = position - tf.gather(
      tf.math.segment_min(position, class_id), class_id)
  class_size = tf.gather(
      tf.math.segment_sum(tf.ones_like(position), class_id), class_id)
  k = tf.minimum(tf.constant(shots, tf.int64), tf.maximum(class_size - 1, 1))
  in_support = tf.gather(rank_in_class < k,
                         tf.math.invert_permutation(by_class))
  return tf.gather(in_support, tf.math.invert_permutation(order))


def split(dataset: tf.data.Dataset, *, support_fraction: Optional[float] = None,
          shots: Optional[int] = None, seed) -> tf.data.Dataset:
  """Adds `support` (bool) to each element of an unbatched dataset.

  Args:
    dataset: Finite dataset of dicts with a label `y`.
    support_fraction, shots: Exactly one; see `support_mask`.
    seed: Shape [2] integer seed.

  Returns:
    The same examples in the same order, each with a `support` flag.
  """
  _check(support_fraction, shots)
  seed = tf.cast(seed, tf.int64)

  def add_flag(elements):
    elements = dict(elements)
    elements[SUPPORT_KEY] = support_mask(
        elements['y'], support_fraction=support_fraction, shots=shots,
        seed=seed)
    # Keys in sorted order: TFF refuses dict elements in any other order.
    return tf.data.Dataset.from_tensor_slices(dict(sorted(elements.items())))

  # One batch holds the whole client (an empty client yields none). Its
  # size is counted first because tf.data's map-and-batch fusion allocates
  # the full batch size up front.
  return dataset.batch(tf.maximum(iteration.count(dataset), 1)).flat_map(
      add_flag)


def with_training_support(
    train: tff.simulation.datasets.ClientData,
    test: tff.simulation.datasets.ClientData,
) -> tff.simulation.datasets.ClientData:
  """`test`'s clients, each with its own training data as support set.

  For tasks whose test clients are training clients with later or other
  data (a room's last weeks, a user's held-out windows): a client adapts on
  what it trained on and is scored on its test data, as personalization is
  measured in cross-silo and time-split settings. Each client's dataset is
  its training examples flagged support, then its test examples flagged
  query.

  Raises:
    DataError: If a test client is not a training client.
  """
  known = set(train.client_ids)
  strangers = [c for c in test.client_ids if c not in known]
  if strangers:
    raise task_lib.DataError(
        f'test clients {strangers[:3]} (of {len(strangers)}) have no '
        'training data to adapt on')
  train_fn = train.serializable_dataset_fn
  test_fn = test.serializable_dataset_fn

  def flagged(value):
    def add_flag(elements):
      return dict(sorted({**elements, SUPPORT_KEY: tf.constant(value)}.items()))
    return add_flag

  def dataset_fn(client_id):
    return train_fn(client_id).map(flagged(True)).concatenate(
        test_fn(client_id).map(flagged(False)))

  return task_lib.LazyClientData(test.client_ids, dataset_fn)


def support(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """The support examples of a split dataset, without the flag."""
  return dataset.filter(lambda e: e[SUPPORT_KEY]).map(_drop_flag)


def query(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """The query examples of a split dataset, without the flag."""
  return dataset.filter(lambda e: tf.logical_not(e[SUPPORT_KEY])).map(
      _drop_flag)


def support_and_query_arrays(batch) -> tuple[dict, dict]:
  """(support, query) of one support-flagged batch of numpy arrays, without
  the flag: `fedmeta.algorithms.meta_tf.support_and_query` outside TF."""
  mask = batch[SUPPORT_KEY]
  return tuple({k: v[m] for k, v in batch.items() if k != SUPPORT_KEY}
               for m in (mask, ~mask))


def _drop_flag(element):
  return {k: v for k, v in element.items() if k != SUPPORT_KEY}


def split_client_data(client_data: tff.simulation.datasets.ClientData, *,
                      support_fraction: Optional[float] = None,
                      shots: Optional[int] = None, seed: int = 0,
                      round_num: Optional[int] = None,
                      ) -> tff.simulation.datasets.ClientData:
  """`split` applied to every client, seeded by `seed` and the client id,
  and by `round_num` where given: a split drawn afresh each round, as
  FedMeta (Chen et al. 2018) samples support and query sets."""
  _check(support_fraction, shots)
  base_fn = client_data.serializable_dataset_fn

  def dataset_fn(client_id):
    key = client_id if round_num is None else tf.strings.join(
        [client_id, f'@round{round_num}'])
    client_seed = tf.stack([tf.constant(seed, tf.int64),
                            tf.strings.to_hash_bucket_fast(key, 1 << 62)])
    return split(base_fn(client_id), support_fraction=support_fraction,
                 shots=shots, seed=client_seed)

  return task_lib.LazyClientData(client_data.client_ids, dataset_fn)
