"""TFF's federated EMNIST (`tff.simulation.datasets.emnist.load_data`;
Caldas et al. 2018, LEAF), one client per writer, for users who are online.

TFF downloads `emnist_all.sqlite.lzma` into its cache dir once and reads the
SQLite file from there afterwards; this loader passes `data_dir` as that
cache dir, so a folder that already holds `emnist_all.sqlite` loads without
network. With `download=False` a missing file is an error instead of a
download. Elements: `x` float32 [28, 28, 1] (ink = 1; TFF stores
background = 1), `y` int32; 10 classes with `only_digits`, else 62.
"""

import os

import tensorflow as tf
import tensorflow_federated as tff

from fedmeta.data import femnist
from fedmeta.data import files
from fedmeta.data import task as task_lib

FILE = 'emnist_all.sqlite'


def _to_xy(element):
  return {'x': 1.0 - tf.expand_dims(element['pixels'], -1),
          'y': element['label']}


def load(data_dir: str | None = None, *, only_digits: bool = True,
         download: bool = True) -> task_lib.Task:
  """Writers as clients; train and test share the writers.

  Args:
    data_dir: TFF's cache dir for the file: a folder with (or to receive)
      `emnist_all.sqlite`; default `<data dir>/emnist` or `~/.tff`.
    only_digits: The 10-digit subset (3,383 writers) or all 62 classes.
    download: Whether TFF may download the file when it is missing.
  """
  if data_dir is None:
    shared = files.default_data_dir()
    data_dir = os.path.join(shared, 'emnist') if shared else os.path.join(
        os.path.expanduser('~'), '.tff')
  path = os.path.join(data_dir, FILE)
  if not download:
    files.require(path, 'EMNIST database (download=False)')
  try:
    train, test = tff.simulation.datasets.emnist.load_data(
        only_digits=only_digits, cache_dir=data_dir)
  except Exception as e:  # Network, LZMA and SQLite errors alike.
    raise task_lib.DataError(
        f'{path}: cannot load TFF federated EMNIST ({type(e).__name__}: '
        f'{str(e).splitlines()[0] if str(e) else ""})') from e
  num_classes = 10 if only_digits else femnist.NUM_CLASSES
  return task_lib.Task(
      name='emnist',
      train=train.preprocess(lambda ds: ds.map(_to_xy)),
      test=test.preprocess(lambda ds: ds.map(_to_xy)),
      model_fn=lambda: femnist.cnn_model_fn(num_classes))
