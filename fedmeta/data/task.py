"""A federated task: client datasets plus the model that fits them."""

import collections
import functools
from typing import Callable, NamedTuple, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import models


class DataError(ValueError):
  """A dataset file or argument is missing or malformed."""


class Task(NamedTuple):
  """A federated learning task.

  Attributes:
    name: Registry name, e.g. 'digits'.
    train: `tff.simulation.datasets.ClientData` of training clients; elements
      are `OrderedDict(x=..., y=...)`.
    test: `ClientData` of held-out clients (or held-out data of the same
      clients, per task).
    model_fn: No-arg function returning a fresh
      `tff.learning.models.FunctionalModel` for the task.
    examples_per_class: Fewest examples of one class on one training client
      that the task guarantees (`None`: no guarantee); meta-learning with
      K shots per class needs more than K.
    episodic: Clients are class pools whose labels exceed the model's
      outputs: they are for episodes (`fedmeta.data.episodes`) only.
    embedding_fn: Like `model_fn`, the same network without its output
      layer: predictions are embeddings, for metric-based meta-learning
      (`fedmeta.algorithms.build_fed_protonet`); None where the task has
      none.
  """
  name: str
  train: tff.simulation.datasets.ClientData
  test: tff.simulation.datasets.ClientData
  model_fn: Callable[[], tff.learning.models.FunctionalModel]
  examples_per_class: int | None = None
  episodic: bool = False
  embedding_fn: Callable[[], tff.learning.models.FunctionalModel] | None = None


def classifier(keras_model_fn: Callable[[], tf.keras.Model],
               x_spec: tf.TensorSpec) -> tff.learning.models.FunctionalModel:
  """Softmax cross-entropy on integer labels `y`, with accuracy."""
  return models.from_keras(
      keras_model_fn,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec={'x': x_spec, 'y': tf.TensorSpec([None], tf.int32)},
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy])


def binary_classifier(keras_model_fn: Callable[[], tf.keras.Model],
                      num_features: int) -> tff.learning.models.FunctionalModel:
  """Sigmoid cross-entropy on one logit; `y` is float 0/1 of shape [1].

  Metrics: accuracy at probability 0.5 and ROC AUC.
  """
  return models.from_keras(
      keras_model_fn,
      loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
      input_spec={'x': tf.TensorSpec([None, num_features], tf.float32),
                  'y': tf.TensorSpec([None, 1], tf.float32)},
      # Explicit names: Keras numbers repeated AUCs ('auc_1'), and the
      # evaluation model is built after the training one.
      metrics=[functools.partial(tf.keras.metrics.BinaryAccuracy,
                                 name='binary_accuracy', threshold=0.0),
               functools.partial(tf.keras.metrics.AUC, name='auc',
                                 from_logits=True)])


def mlp(input_shape: list[int], hidden: list[int],
        outputs: int) -> Callable[[], tf.keras.Model]:
  """A ReLU MLP builder (no hidden layers: a linear model)."""
  def build():
    layers = [tf.keras.layers.Input(input_shape)]
    layers += [tf.keras.layers.Dense(h, activation='relu') for h in hidden]
    layers.append(tf.keras.layers.Dense(outputs))
    return tf.keras.Sequential(layers)
  return build


def split_rows(parts: list[np.ndarray], test_fraction: float,
               seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Splits each client's row indices into (train, test) at random, seeded."""
  rng = np.random.default_rng(seed)
  train_parts, test_parts = [], []
  for part in parts:
    part = rng.permutation(part)
    n_test = int(round(len(part) * test_fraction))
    test_parts.append(np.sort(part[:n_test]))
    train_parts.append(np.sort(part[n_test:]))
  return train_parts, test_parts


class ClientIds(collections.abc.Sequence):
  """The ids `f'{prefix}_{i:06d}'`, i < count, never held in memory at once."""

  def __init__(self, prefix: str, count: int):
    self.prefix = prefix
    self.count = count

  def __len__(self) -> int:
    return self.count

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(self.count))]
    if not -self.count <= i < self.count:
      raise IndexError(i)
    return f'{self.prefix}_{i % self.count:06d}'

  def __contains__(self, client_id) -> bool:
    return self.position(client_id) is not None

  def index(self, client_id, *unused) -> int:  # pylint: disable=W0221
    i = self.position(client_id)
    if i is None:
      raise ValueError(f'{client_id!r} is not a client id')
    return i

  def position(self, client_id) -> int | None:
    """The index of `client_id`, or None: O(1), unlike a search."""
    head, _, number = str(client_id).rpartition('_')
    if head != self.prefix or not number.isdigit() or len(number) != 6:
      return None
    i = int(number)
    return i if i < self.count else None


class LazyClientData(tff.simulation.datasets.ClientData):
  """`ClientData` over any id sequence and a TF-traceable dataset function.

  Unlike `ClientData.from_clients_and_tf_fn`, the ids are not copied into a
  list, so a `ClientIds` of 100,000 clients costs nothing up front.
  """

  def __init__(self, client_ids: Sequence[str],
               dataset_fn: Callable[[tf.Tensor], tf.data.Dataset]):
    super().__init__()
    if not len(client_ids):  # pylint: disable=g-explicit-length-test
      raise DataError('client_ids: a ClientData needs at least one client')
    self._client_ids = client_ids
    self._dataset_fn = dataset_fn
    self._element_spec = dataset_fn(client_ids[0]).element_spec

  @property
  def client_ids(self) -> Sequence[str]:
    return self._client_ids

  @property
  def serializable_dataset_fn(self):
    return self._dataset_fn

  @property
  def element_type_structure(self):
    return self._element_spec


def client_data_from_arrays(
    x: np.ndarray, y: np.ndarray, parts: list[np.ndarray],
    prefix: str = 'client',
    ids: Sequence[str] | None = None) -> tff.simulation.datasets.ClientData:
  """`ClientData` whose client `ids[i]` holds `x[parts[i]]`, `y[parts[i]]`.

  `ids` defaults to `f'{prefix}_{i:04d}'`.
  """
  ids = list(ids or (f'{prefix}_{i:04d}' for i in range(len(parts))))
  by_id = dict(zip(ids, parts))

  def dataset_fn(client_id):
    idx = by_id[client_id]
    return tf.data.Dataset.from_tensor_slices(
        {'x': x[idx], 'y': y[idx]})

  return tff.simulation.datasets.ClientData.from_clients_and_tf_fn(
      ids, dataset_fn)


def client_data_from_pairs(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], prefix: str = 'client',
    ids: Sequence[str] | None = None) -> tff.simulation.datasets.ClientData:
  """`ClientData` whose i-th client holds `pairs[i] = (x, y)`."""
  x = np.concatenate([x for x, _ in pairs])
  y = np.concatenate([y for _, y in pairs])
  ends = np.cumsum([len(y) for _, y in pairs])
  parts = [np.arange(end - len(y), end) for end, (_, y) in zip(ends, pairs)]
  return client_data_from_arrays(x, y, parts, prefix, ids)


def batch_client_dataset(dataset: tf.data.Dataset, *, epochs: int,
                         batch_size: int, seed: int) -> tf.data.Dataset:
  """Shuffles (seeded, reshuffled each epoch), repeats and batches."""
  return (dataset.shuffle(1024, seed=seed, reshuffle_each_iteration=True)
          .repeat(epochs).batch(batch_size))


def standardize(train: np.ndarray, *others: np.ndarray):
  """Standardizes arrays with `train`'s column mean and std (std 0 -> 1)."""
  mean = train.mean(axis=0)
  std = train.std(axis=0)
  std[std == 0] = 1.0
  return tuple(((a - mean) / std).astype(np.float32) for a in (train,) + others)
