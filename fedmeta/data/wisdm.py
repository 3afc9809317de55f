"""WISDM v1.1 activity recognition, one client per user (Kwapisz, Weiss &
Moore 2010, "Activity Recognition using Cell Phone Accelerometers", SensorKDD
at KDD-10, https://www.cis.fordham.edu/wisdm/public_files/sensorKDD-2010.pdf).

Reads `WISDM_ar_v1.1_transformed.arff`: one row per 10-s window of a phone's
20 Hz accelerometer. `scipy.io.arff` rejects its header (`class{` lacks a
space), so the `@attribute` names are read here and must be UNIQUE_ID, user,
the 43 features of `FEATURES` and class; the rows after `@data` are CSV (CRLF,
blank and `%` comment lines accepted). UNIQUE_ID is dropped (it repeats).
Labels are `CLASSES`' indices: Walking 0, Jogging 1, Upstairs 2, Downstairs 3,
Sitting 4, Standing 5.

`?` (in the file only in XPEAK/YPEAK/ZPEAK: no peak time was found) is
imputed with that feature's median over the training rows only; nothing else
is added (no missing-value indicator). All 43 features are then standardized
with the pooled training rows' mean and std. Kept as the file has them: XAVG
is 0 in every row (standardized to 0) and ZSTANDDEV equals XSTANDDEV.

Protocols: 'heldout_users' (meta-learning): a seeded share of the users
(rounded, at least 1) are the test clients with all their windows, the
others train with all theirs.
'within_user' (the federated HAR baseline): each user's windows are split at
random into train and test, stratified by class: each class gets
floor(n_class * test_fraction) test windows, and the user's remaining
round(n * test_fraction) - sum are given to the classes with the largest
fractional remainders (ties in seeded random order). Client ids are
`user_01`..`user_36`. Elements: `x` float32 [43], `y` int32 [].
"""

import csv
import re

import numpy as np
import tensorflow as tf

from fedmeta.data import files
from fedmeta.data import task as task_lib

SUBDIR = 'smart_home/wisdm_v1.1'
FILE = 'WISDM_ar_v1.1_transformed.arff'
CLASSES = ('Walking', 'Jogging', 'Upstairs', 'Downstairs', 'Sitting',
           'Standing')
FEATURES = tuple(f'{axis}{i}' for axis in 'XYZ' for i in range(10)) + tuple(
    f'{axis}{stat}' for stat in ('AVG', 'PEAK', 'ABSOLDEV', 'STANDDEV')
    for axis in 'XYZ') + ('RESULTANT',)
ATTRIBUTES = ('UNIQUE_ID', 'user') + FEATURES + ('class',)
NUM_FEATURES = len(FEATURES)
NUM_CLASSES = len(CLASSES)
PROTOCOLS = ('heldout_users', 'within_user')
_ATTRIBUTE = re.compile(r"""@attribute\s+("[^"]*"|'[^']*'|[^\s{]+)""",
                        re.IGNORECASE)
_USER = re.compile(r'[0-9]+')


def _read_header(lines, path: str) -> None:
  """Consumes `(number, line)` pairs to `@data`; checks the attribute names."""
  names = []
  for line_number, line in lines:
    text = line.strip()
    if not text or text.startswith('%') or text.lower().startswith(
        '@relation'):
      continue
    if text.lower() == '@data':
      if len(names) != len(ATTRIBUTES):
        raise task_lib.DataError(
            f'{path}: line {line_number}: {len(names)} attributes, expected '
            f'{len(ATTRIBUTES)} (UNIQUE_ID, user, {NUM_FEATURES} features, '
            'class)')
      for (name, number), expected in zip(names, ATTRIBUTES):
        if name != expected:
          raise task_lib.DataError(
              f'{path}: line {number}: attribute {name!r}, expected '
              f'{expected!r}')
      return
    match = _ATTRIBUTE.match(text)
    if not match:
      raise task_lib.DataError(
          f'{path}: line {line_number}: expected @relation, @attribute or '
          f'@data, got {text[:40]!r}')
    names.append((match.group(1).strip('"\''), line_number))
  raise task_lib.DataError(f'{path}: no @data line')


def _number(name: str, value: str) -> float:
  if value == '?':
    return np.nan
  try:
    number = float(value)
  except ValueError:
    number = np.nan
  if not np.isfinite(number):
    raise ValueError(f'{name} {value!r} is not a finite number or ?')
  return number


def _row(fields: list[str]) -> tuple[int, list[float], int]:
  """(user, features with `?` as NaN, label) of one data row's fields."""
  if len(fields) != len(ATTRIBUTES):
    raise ValueError(f'{len(fields)} fields, expected {len(ATTRIBUTES)}')
  user = fields[1]
  if not _USER.fullmatch(user) or int(user) < 1:
    raise ValueError(f'user {user!r} is not a positive integer')
  if fields[-1] not in CLASSES:
    raise ValueError(f'class {fields[-1]!r} is not one of {CLASSES}')
  return (int(user), [_number(n, v) for n, v in zip(FEATURES, fields[2:-1])],
          CLASSES.index(fields[-1]))


def read(path: str) -> dict[str, np.ndarray]:
  """The rows: `user` int32 [n], `x` float64 [n, 43] (`?` as NaN), `y`."""
  files.require(path, 'WISDM transformed ARFF')
  users, x, y = [], [], []
  with open(path, encoding='utf-8') as f:
    lines = enumerate(f, 1)
    _read_header(lines, path)
    for line_number, line in lines:
      text = line.strip()
      if not text or text.startswith('%'):
        continue
      fields = next(csv.reader([text], skipinitialspace=True))
      try:
        user, features, label = _row([v.strip() for v in fields])
      except ValueError as e:
        raise task_lib.DataError(f'{path}: line {line_number}: {e}') from e
      users.append(user)
      x.append(features)
      y.append(label)
  if not y:
    raise task_lib.DataError(f'{path}: no rows after @data')
  return {'user': np.asarray(users, np.int32), 'x': np.asarray(x, np.float64),
          'y': np.asarray(y, np.int32)}


def model_fn():
  """A 43-64-64-6 ReLU MLP, softmax cross-entropy."""
  return task_lib.classifier(
      task_lib.mlp([NUM_FEATURES], [64, 64], NUM_CLASSES),
      tf.TensorSpec([None, NUM_FEATURES], tf.float32))


def stratified_split(labels: np.ndarray, rows: np.ndarray,
                     test_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Splits one user's `rows` into sorted (train, test), stratified by label.

  The test part has round(len(rows) * test_fraction) rows: each class its
  floor share, then one more for the classes with the largest remainders.
  """
  by_class = [rows[labels[rows] == c] for c in np.unique(labels[rows])]
  quota = np.asarray([len(c) for c in by_class]) * test_fraction
  n_test = np.floor(quota).astype(int)
  extra = int(round(len(rows) * test_fraction)) - n_test.sum()
  # lexsort's last key is the primary one: largest remainder first.
  n_test[np.lexsort((rng.random(len(by_class)), n_test - quota))[:extra]] += 1
  test = np.concatenate([rng.permutation(c)[:k]
                         for c, k in zip(by_class, n_test)])
  return np.setdiff1d(rows, test), np.sort(test)


def impute(x: np.ndarray, train_rows: np.ndarray, path: str) -> np.ndarray:
  """`x` with NaN replaced by its feature's median over `train_rows`."""
  x = x.copy()
  missing = np.isnan(x)
  for column in np.flatnonzero(missing.any(axis=0)):
    known = x[train_rows, column]
    known = known[~np.isnan(known)]
    if not known.size:
      raise task_lib.DataError(f'{path}: {FEATURES[column]} is ? on every '
                               'training row')
    x[missing[:, column], column] = np.median(known)
  return x


def load(data_dir: str | None = None, *, protocol: str = 'heldout_users',
         heldout_fraction: float = 0.25, test_fraction: float = 0.25,
         seed: int = 0, cache_dir: str | None = None) -> task_lib.Task:
  """The 36 users as clients.

  Args:
    data_dir: Folder with `WISDM_ar_v1.1_transformed.arff` (or a parent with
      `smart_home/wisdm_v1.1/`); default `fedmeta.data.files.default_data_dir`.
    protocol: 'heldout_users' (test clients are held-out users) or
      'within_user' (test clients are the training users' held-out windows).
    heldout_fraction: Share of users held out ('heldout_users'), rounded, at
      least 1.
    test_fraction: Share of each user's windows for testing ('within_user').
    seed: Seed of the held-out users or of the within-user splits.
    cache_dir: Cache of the parsed file; see `fedmeta.data.files.cached`.
  """
  if protocol not in PROTOCOLS:
    raise task_lib.DataError(
        f'protocol: must be one of {PROTOCOLS}, got {protocol!r}')
  for name, value in (('heldout_fraction', heldout_fraction),
                      ('test_fraction', test_fraction)):
    if not 0 < value < 1:
      raise task_lib.DataError(f'{name}: must be in (0, 1), got {value}')
  path = files.require(f'{files.resolve(data_dir, SUBDIR)}/{FILE}',
                       'WISDM transformed ARFF')
  arrays = files.cached(
      'wisdm', [path], {'attributes': ATTRIBUTES, 'classes': CLASSES},
      lambda: read(path), cache_dir=cache_dir)
  users = np.unique(arrays['user'])
  ids = [f'user_{u:02d}' for u in users]
  rows = [np.flatnonzero(arrays['user'] == u) for u in users]
  rng = np.random.default_rng(seed)
  if protocol == 'heldout_users':
    n_test = max(1, int(round(heldout_fraction * len(users))))
    if n_test >= len(users):
      raise task_lib.DataError(
          f'heldout_fraction: {heldout_fraction} of {len(users)} users '
          'leaves none to train on')
    held_out = set(rng.permutation(len(users))[:n_test].tolist())
    train = [i for i in range(len(users)) if i not in held_out]
    test = sorted(held_out)
    train_parts, test_parts = [rows[i] for i in train], [rows[i] for i in test]
    train_ids, test_ids = [ids[i] for i in train], [ids[i] for i in test]
  else:
    train_parts, test_parts = zip(*(
        stratified_split(arrays['y'], r, test_fraction, rng) for r in rows))
    empty = [i for i, t, v in zip(ids, train_parts, test_parts)
             if not t.size or not v.size]
    if empty:
      raise task_lib.DataError(
          f'test_fraction: {test_fraction} leaves {empty[0]} with no train or '
          'no test window')
    train_ids = test_ids = ids
  train_rows = np.concatenate(train_parts)
  x = impute(arrays['x'], train_rows, path)
  (x,) = task_lib.standardize(x[train_rows], x)[1:]
  return task_lib.Task(
      name='wisdm',
      train=task_lib.client_data_from_arrays(x, arrays['y'], list(train_parts),
                                             ids=train_ids),
      test=task_lib.client_data_from_arrays(x, arrays['y'], list(test_parts),
                                            ids=test_ids),
      model_fn=model_fn, examples_per_class=None)
