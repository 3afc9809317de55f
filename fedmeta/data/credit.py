"""Default of credit-card clients (Yeh & Lien 2009, UCI; Taiwan, 2005):
30,000 card holders, 23 features, binary target (default next month).

The file has no institution column, so clients come from a partitioner:
naturally by EDUCATION or MARRIAGE, or `fedmeta.data.partition`'s Dirichlet
over the label or IID. Each client's rows are split 80/20 train/test at
random (seeded); features are standardized with the pooled training rows.
Elements: `x` float32 [23], `y` float32 [1]; metrics include ROC AUC.
"""

import csv

import numpy as np

from fedmeta.data import files
from fedmeta.data import partition
from fedmeta.data import task as task_lib

FILE = 'UCI_Credit_Card.csv'
TARGET = 'default.payment.next.month'
NUM_FEATURES = 23
TEST_FRACTION = 0.2
# Natural partitions: column -> (client id, codes) per client. Codes outside
# the documented ones (EDUCATION 0, 5, 6; MARRIAGE 0) are "unknown" and join
# the documented "others".
NATURAL = {
    'education': ('EDUCATION', (('graduate_school', (1,)),
                                ('university', (2,)),
                                ('high_school', (3,)),
                                ('other', (0, 4, 5, 6)))),
    'marriage': ('MARRIAGE', (('married', (1,)), ('single', (2,)),
                              ('other', (0, 3)))),
}
PARTITIONS = tuple(NATURAL) + ('dirichlet', 'iid')


def read(path: str) -> tuple[list[str], np.ndarray]:
  """(header, rows as float64) of the CSV, ID column included."""
  files.require(path, 'credit CSV')
  with open(path, newline='', encoding='utf-8') as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if not header or header[-1] != TARGET or len(header) != NUM_FEATURES + 2:
      raise task_lib.DataError(
          f'{path}: expected {NUM_FEATURES + 2} columns ending in {TARGET!r}, '
          f'got header {header}')
    try:
      rows = np.asarray([[float(v) for v in row] for row in reader])
    except ValueError as e:
      raise task_lib.DataError(
          f'{path}: line {reader.line_num}: {e}') from e
  if rows.ndim != 2 or rows.shape[1] != len(header):
    raise task_lib.DataError(f'{path}: rows of unequal length or no rows')
  return header, rows


def model_fn():
  """A 23-32-1 ReLU MLP with a sigmoid output."""
  return task_lib.binary_classifier(
      task_lib.mlp([NUM_FEATURES], [32], 1), NUM_FEATURES)


def load(data_dir: str | None = None, *, partition_by: str = 'education',
         num_clients: int = 10, alpha: float = 0.5,
         seed: int = 0) -> task_lib.Task:
  """Credit default clients.

  Args:
    data_dir: Folder with `UCI_Credit_Card.csv` (or its parent with
      `credit/`); default `fedmeta.data.files.default_data_dir`.
    partition_by: 'education' or 'marriage' (natural clients, named), or
      'dirichlet' / 'iid' over `num_clients` clients.
    num_clients, alpha: For 'dirichlet' and 'iid'.
    seed: Seed of the partition and of the train/test split.
  """
  if partition_by not in PARTITIONS:
    raise task_lib.DataError(
        f'partition_by: must be one of {PARTITIONS}, got {partition_by!r}')
  path = f'{files.resolve(data_dir, "credit")}/{FILE}'
  header, rows = read(path)
  x, y = rows[:, 1:-1], rows[:, -1:].astype(np.float32)
  labels = y[:, 0].astype(int)
  if partition_by in NATURAL:
    column, clients = NATURAL[partition_by]
    values = rows[:, header.index(column)]
    ids = [name for name, _ in clients]
    parts = [np.flatnonzero(np.isin(values, codes)) for _, codes in clients]
  else:
    ids = None
    try:
      parts = (partition.dirichlet(labels, num_clients, alpha, seed)
               if partition_by == 'dirichlet'
               else partition.iid(labels, num_clients, seed))
    except partition.PartitionError as e:
      raise task_lib.DataError(str(e)) from e
  train_parts, test_parts = task_lib.split_rows(parts, TEST_FRACTION, seed)
  x_train_all = x[np.concatenate(train_parts)]
  (x,) = task_lib.standardize(x_train_all, x)[1:]
  return task_lib.Task(
      name='credit',
      train=task_lib.client_data_from_arrays(x, y, train_parts, ids=ids),
      test=task_lib.client_data_from_arrays(x, y, test_parts, ids=ids),
      model_fn=model_fn)
