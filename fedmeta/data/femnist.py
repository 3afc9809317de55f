"""FEMNIST by writer, LEAF's federated EMNIST (Caldas et al. 2018, "LEAF: A
Benchmark for Federated Settings", https://arxiv.org/abs/1812.01097), the
natural non-IID image benchmark of FedMeta (Chen et al. 2018).

Reads `femnist_leaf_subset.npz` (a 5% sample of LEAF's writer-partitioned
data: `x` uint8 [n, 28, 28] with 255 = background, `y` in 0..61, `user`,
`split`). One client per writer: `train` holds the writers with training data,
`test` every writer's test data (writers absent from `train` are unseen).
Elements: `x` float32 [28, 28, 1] with ink = 1, background = 0; `y` int32.
"""

import numpy as np
import tensorflow as tf

from fedmeta.data import files
from fedmeta.data import task as task_lib

FILE = 'femnist_leaf_subset.npz'
NUM_CLASSES = 62
IMAGE_SHAPE = (28, 28, 1)


def cnn_model_fn(num_classes: int = NUM_CLASSES):
  """LEAF's / FedAvg's CNN: two 5x5 conv (32, 64) + 2x2 max-pool blocks,
  a 2048-unit dense layer, softmax over `num_classes`."""
  def keras_model():
    return tf.keras.Sequential([
        tf.keras.layers.Input(IMAGE_SHAPE),
        tf.keras.layers.Conv2D(32, 5, padding='same', activation='relu'),
        tf.keras.layers.MaxPool2D(2),
        tf.keras.layers.Conv2D(64, 5, padding='same', activation='relu'),
        tf.keras.layers.MaxPool2D(2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(2048, activation='relu'),
        tf.keras.layers.Dense(num_classes),
    ])
  return task_lib.classifier(
      keras_model, tf.TensorSpec((None,) + IMAGE_SHAPE, tf.float32))


def model_fn():
  return cnn_model_fn(NUM_CLASSES)


def load(data_dir: str | None = None) -> task_lib.Task:
  """Writers as clients.

  Args:
    data_dir: Folder with `femnist_leaf_subset.npz` (or its parent with
      `femnist/`); default `fedmeta.data.files.default_data_dir`.
  """
  path = f'{files.resolve(data_dir, "femnist")}/{FILE}'
  arrays = files.load_npz(path, ('x', 'y', 'user', 'split'))
  x, y, users, splits = (arrays[k] for k in ('x', 'y', 'user', 'split'))
  if x.shape[1:] != IMAGE_SHAPE[:2] or not len(x) == len(y) == len(users):
    raise task_lib.DataError(
        f'{path}: expected x [n, 28, 28] and n labels and users, got '
        f'{x.shape}, {y.shape}, {users.shape}')
  if y.min() < 0 or y.max() >= NUM_CLASSES:
    raise task_lib.DataError(f'{path}: labels outside 0..{NUM_CLASSES - 1}')
  x = (1.0 - x.astype(np.float32) / 255.0)[..., None]
  y = y.astype(np.int32)

  def by_writer(split):
    writers = np.unique(users[splits == split])
    if not len(writers):  # pylint: disable=g-explicit-length-test
      raise task_lib.DataError(f'{path}: no {split!r} examples')
    parts = [np.flatnonzero((users == w) & (splits == split))
             for w in writers]
    return task_lib.client_data_from_arrays(x, y, parts, ids=list(writers))

  return task_lib.Task(name='femnist', train=by_writer('train'),
                       test=by_writer('test'), model_fn=model_fn)
