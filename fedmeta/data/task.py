"""A federated task: client datasets plus the model that fits them."""

from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


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
  """
  name: str
  train: tff.simulation.datasets.ClientData
  test: tff.simulation.datasets.ClientData
  model_fn: Callable[[], tff.learning.models.FunctionalModel]


def client_data_from_arrays(
    x: np.ndarray, y: np.ndarray, parts: list[np.ndarray],
    prefix: str = 'client') -> tff.simulation.datasets.ClientData:
  """`ClientData` whose client `f'{prefix}_{i}'` holds `x[parts[i]]`."""
  ids = [f'{prefix}_{i:04d}' for i in range(len(parts))]
  by_id = dict(zip(ids, parts))

  def dataset_fn(client_id):
    idx = by_id[client_id]
    return tf.data.Dataset.from_tensor_slices(
        {'x': x[idx], 'y': y[idx]})

  return tff.simulation.datasets.ClientData.from_clients_and_tf_fn(
      ids, dataset_fn)


def batch_client_dataset(dataset: tf.data.Dataset, *, epochs: int,
                         batch_size: int, seed: int) -> tf.data.Dataset:
  """Shuffles (seeded, reshuffled each epoch), repeats and batches."""
  return (dataset.shuffle(1024, seed=seed, reshuffle_each_iteration=True)
          .repeat(epochs).batch(batch_size))
