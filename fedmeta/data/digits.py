"""scikit-learn's handwritten digits (1,797 8x8 images) split across clients.

The data ships inside scikit-learn, so this task needs no download: it is the
default data of `make demo`.
"""

import numpy as np
import tensorflow as tf

from fedmeta.data import partition
from fedmeta.data import task as task_lib

NUM_CLASSES = 10
TEST_FRACTION = 0.2


def model_fn():
  """A 64-32-10 MLP with softmax cross-entropy and accuracy."""
  return task_lib.classifier(task_lib.mlp([64], [32], NUM_CLASSES),
                             tf.TensorSpec([None, 64], tf.float32))


def load(*, num_clients: int = 20, alpha: float = 0.5,
         seed: int = 0) -> task_lib.Task:
  """Dirichlet(alpha) label-skewed clients, each with an 80/20 train/test split.

  Args:
    num_clients: Number of clients.
    alpha: Dirichlet concentration (`fedmeta.data.partition.dirichlet`).
    seed: Seed of the partition and of the train/test split.

  Returns:
    A `Task` whose train and test `ClientData` have the same client ids.
  """
  # pylint: disable-next=g-import-not-at-top
  from sklearn import datasets
  digits = datasets.load_digits()
  x = (digits.data / 16.0).astype(np.float32)
  y = digits.target.astype(np.int32)
  parts = partition.dirichlet(y, num_clients, alpha, seed)
  train_parts, test_parts = task_lib.split_rows(
      parts, TEST_FRACTION, seed + 1)
  return task_lib.Task(
      name='digits',
      train=task_lib.client_data_from_arrays(x, y, train_parts),
      test=task_lib.client_data_from_arrays(x, y, test_parts),
      model_fn=model_fn)
