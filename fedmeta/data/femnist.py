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


def lenet_model_fn(num_classes: int = NUM_CLASSES):
  """pFedHN's target network (Shamsian et al. 2021, their CNNTarget): 5x5
  conv (16, 32, no padding) + 2x2 max-pool blocks, dense 120 and 84, softmax
  over `num_classes`; 90,242 weights for 62 classes, against the LEAF CNN's
  6.6 million, so that a hypernetwork can generate it."""
  def keras_model():
    return tf.keras.Sequential([
        tf.keras.layers.Input(IMAGE_SHAPE),
        tf.keras.layers.Conv2D(16, 5, activation='relu'),
        tf.keras.layers.MaxPool2D(2),
        tf.keras.layers.Conv2D(32, 5, activation='relu'),
        tf.keras.layers.MaxPool2D(2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(120, activation='relu'),
        tf.keras.layers.Dense(84, activation='relu'),
        tf.keras.layers.Dense(num_classes),
    ])
  return task_lib.classifier(
      keras_model, tf.TensorSpec((None,) + IMAGE_SHAPE, tf.float32))


def model_fn():
  return cnn_model_fn(NUM_CLASSES)


MODELS = {'cnn': cnn_model_fn, 'lenet': lenet_model_fn}
# Test clients: every writer's test data, the training writers' only (each
# scored as a participating client), or the writers never in training.
TEST_WRITERS = ('all', 'seen', 'unseen')


def load(data_dir: str | None = None, *, model: str = 'cnn',
         test_writers: str = 'all') -> task_lib.Task:
  """Writers as clients.

  Args:
    data_dir: Folder with `femnist_leaf_subset.npz` (or its parent with
      `femnist/`); default `fedmeta.data.files.default_data_dir`.
    model: 'cnn' (LEAF's) or 'lenet' (pFedHN's target network), `MODELS`.
    test_writers: One of `TEST_WRITERS`: the test clients are all writers'
      test data (184), the 105 training writers' only, or the 79 writers'
      with no training data.
  """
  if model not in MODELS:
    raise task_lib.DataError(
        f'model: must be one of {tuple(MODELS)}, got {model!r}')
  if test_writers not in TEST_WRITERS:
    raise task_lib.DataError(
        f'test_writers: must be one of {TEST_WRITERS}, got {test_writers!r}')
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
  seen = set(np.unique(users[splits == 'train']).tolist())

  def by_writer(split, keep=lambda writer: True):
    writers = [w for w in np.unique(users[splits == split]) if keep(w)]
    if not writers:
      raise task_lib.DataError(f'{path}: no {split!r} examples'
                               + ('' if split == 'train' else
                                  f' of test_writers={test_writers}'))
    parts = [np.flatnonzero((users == w) & (splits == split))
             for w in writers]
    return task_lib.client_data_from_arrays(x, y, parts, ids=list(writers))

  keep = {'all': lambda w: True, 'seen': lambda w: w in seen,
          'unseen': lambda w: w not in seen}[test_writers]
  return task_lib.Task(
      name='femnist', train=by_writer('train'),
      test=by_writer('test', keep),
      model_fn=lambda: MODELS[model](NUM_CLASSES))
