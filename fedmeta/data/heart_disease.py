"""Fed-Heart-Disease: the four UCI hospitals as four clients, with FLamby's
preprocessing (Ogier du Terrail et al. 2022, "FLamby: Datasets and Benchmarks
for Cross-Silo Federated Learning in Realistic Healthcare Settings",
https://arxiv.org/abs/2210.04620).

From each hospital's `processed.<name>.data` (Janosi et al. 1988): drop the
mostly-missing columns slope, ca and thal; drop rows with any other value
missing (`?`); one-hot chest-pain type and resting ECG (first level dropped),
giving 13 features; target = diagnosis > 0. Each hospital is split 66/34
train/test, stratified, with FLamby's `random_state=43`. Features are then
standardized with training statistics of the federation (pooled) or of each
hospital. Elements: `x` float32 [13], `y` float32 [1].
"""

import numpy as np
import tensorflow as tf

from fedmeta.data import files
from fedmeta.data import task as task_lib

HOSPITALS = ('cleveland', 'hungarian', 'switzerland', 'va')
NUM_COLUMNS = 14
DROPPED_COLUMNS = (10, 11, 12)  # slope, ca, thal
ONE_HOT_COLUMNS = {2: (1, 2, 3, 4), 6: (0, 1, 2)}  # cp, restecg
NUM_FEATURES = 13
TRAIN_FRACTION = 0.66
SPLIT_SEED = 43  # FLamby's random_state.
STANDARDIZE = ('federated', 'client', 'none')


def read_hospital(path: str) -> np.ndarray:
  """The raw rows of one hospital file, `?` as NaN: [rows, 14] float64."""
  files.require(path, 'heart disease file')
  rows = []
  with open(path, encoding='latin-1') as f:
    for line_number, line in enumerate(f, 1):
      if not line.strip():
        continue
      fields = line.strip().split(',')
      try:
        if len(fields) != NUM_COLUMNS:
          raise ValueError(f'{len(fields)} fields, expected {NUM_COLUMNS}')
        rows.append([np.nan if v == '?' else float(v) for v in fields])
      except ValueError as e:
        raise task_lib.DataError(f'{path}: line {line_number}: {e}') from e
  if not rows:
    raise task_lib.DataError(f'{path}: no rows')
  return np.asarray(rows)


def features_and_labels(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """FLamby's column and row drops and one-hot encoding of one hospital."""
  kept = np.delete(raw, DROPPED_COLUMNS, axis=1)
  kept = kept[~np.isnan(kept).any(axis=1)]
  x, y = kept[:, :-1], kept[:, -1]
  # Column indices below are those of the raw file; none is >= 10.
  plain = [c for c in range(x.shape[1]) if c not in ONE_HOT_COLUMNS]
  one_hot = [(x[:, [c]] == np.asarray(levels[1:])).astype(np.float64)
             for c, levels in ONE_HOT_COLUMNS.items()]
  return (np.concatenate([x[:, plain]] + one_hot, axis=1),
          (y > 0).astype(np.float32)[:, None])


def model_fn():
  """Logistic regression on the 13 features."""
  return task_lib.binary_classifier(task_lib.mlp([NUM_FEATURES], [], 1),
                                    NUM_FEATURES)


def load(data_dir: str | None = None, *,
         standardize: str = 'federated',
         train_on: str = 'federated') -> task_lib.Task:
  """The four hospitals; test `ClientData` has one client per hospital.

  Args:
    data_dir: Folder with `processed.<hospital>.data` (or its parent with a
      `heart_disease/` folder); default `fedmeta.data.files.default_data_dir`.
    standardize: 'federated' (statistics of all hospitals' training rows),
      'client' (each hospital's own) or 'none'.
    train_on: The training clients: 'federated' (one per hospital, named as
      the test clients), 'pooled' (one client holding every hospital's
      training rows) or a hospital's name (that hospital alone): FLamby's
      federated, pooled and local baselines, tested on the same test sets.
  """
  # pylint: disable-next=g-import-not-at-top
  from sklearn import model_selection
  if standardize not in STANDARDIZE:
    raise task_lib.DataError(
        f'standardize: must be one of {STANDARDIZE}, got {standardize!r}')
  if train_on not in ('federated', 'pooled') + HOSPITALS:
    raise task_lib.DataError(
        f'train_on: must be federated, pooled or one of {HOSPITALS}, got '
        f'{train_on!r}')
  folder = files.resolve(data_dir, 'heart_disease')
  train, test = [], []
  for hospital in HOSPITALS:
    x, y = features_and_labels(read_hospital(
        f'{folder}/processed.{hospital}.data'))
    stratify = y[:, 0] if min(np.bincount(y[:, 0].astype(int),
                                          minlength=2)) > 2 else None
    train_idx, test_idx = model_selection.train_test_split(
        np.arange(len(y)), train_size=TRAIN_FRACTION,
        test_size=1 - TRAIN_FRACTION, random_state=SPLIT_SEED, shuffle=True,
        stratify=stratify)
    train.append((x[train_idx], y[train_idx]))
    test.append((x[test_idx], y[test_idx]))
  if standardize == 'federated':
    pooled = np.concatenate([x for x, _ in train])
    train = [(task_lib.standardize(pooled, x)[1], y) for x, y in train]
    test = [(task_lib.standardize(pooled, x)[1], y) for x, y in test]
  elif standardize == 'client':
    pairs = [task_lib.standardize(tx, vx) for (tx, _), (vx, _) in
             zip(train, test)]
    train = [(p[0], y) for p, (_, y) in zip(pairs, train)]
    test = [(p[1], y) for p, (_, y) in zip(pairs, test)]
  train_ids = HOSPITALS
  if train_on == 'pooled':
    train_ids = ('pooled',)
    train = [tuple(np.concatenate(parts) for parts in zip(*train))]
  elif train_on != 'federated':
    train_ids = (train_on,)
    train = [train[HOSPITALS.index(train_on)]]
  return task_lib.Task(
      name='heart_disease',
      train=task_lib.client_data_from_pairs(train, ids=train_ids),
      test=task_lib.client_data_from_pairs(test, ids=HOSPITALS),
      model_fn=model_fn)

