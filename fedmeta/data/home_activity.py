"""Activities of daily living in two smart homes, one client per home
(Ordóñez, de Toledo & Sanchis 2013, "Activity Recognition Using Hybrid
Generative/Discriminative Models on Home Environments Using Binary Sensors",
Sensors 13(5):5460-5477; UCI "ADLs Recognition Using Binary Sensors").

Reads `Ordonez{A,B}_Sensors.txt` (rows: start, end, Location, Type, Place)
and `Ordonez{A,B}_ADLs.txt` (rows: start, end, activity). Each file has 2
header lines; fields are separated by runs of TABs, each is stripped and
empty ones are dropped (9 Dinner rows of home B carry a stray ' ' field);
CRLF line ends and trailing TABs are accepted. Times are
'YYYY-MM-DD HH:MM:SS' and an interval covers its start through its end
second inclusive (B's ends at :59 close whole minutes; a zero-length
activation still counts). Three rows of `OrdonezA_ADLs.txt` end before they
start (lines 72, 81 and 83: a Toileting, a Grooming and a Breakfast of
2011-12-01/02, whose ends are typos); they are dropped (`KNOWN_BAD_ROWS`),
and any other such row is an error.

As in the paper and van Kasteren et al. 2008 ("Accurate Activity
Recognition in a Home Setting", UbiComp): each home's labelled period (first
activity start to last activity end) is cut into slices of `slice_seconds`
from the first start. A slice's label is the activity whose interval
overlaps it the most (ties: the earlier-starting one); slices no activity
overlaps are dropped or, with `unlabelled='idle'`, labelled Idle, the last
class. Labels index `ACTIVITIES`, the authors' order of their description
files (A has no Dinner). Features (`x` float32 [17]): one per sensor of
`SENSORS`, the 15 (Location, Place) pairs of both homes sorted (B's three
'Door' PIRs differ only by Place; a sensor a home lacks is always 0), then
sin and cos of 2 pi (slice start's seconds since midnight) / 86400. The
sensor value is van Kasteren's `representation`: 'raw' 1 if the sensor's
activation overlaps the slice; 'changepoint' 1 if an activation starts or
ends in the slice; 'last' 1 for the sensor whose start or end is the latest
at or before the slice's end (it stays 1 until another sensor changes; ties:
the later row, a row's end after its start). No standardization (binary
features and sin/cos).

Split by day: a slice's day is the calendar date of its start; of a home's
dates in its labelled period, the last `int(round(test_fraction * days))`
(at least 1) are its test data, the earlier ones its training data. Train
and test clients are the same two homes, 'home_A' and 'home_B'.
"""

import datetime
import functools
import os

import numpy as np
import tensorflow as tf

from fedmeta.data import files
from fedmeta.data import task as task_lib

HOMES = ('A', 'B')
CLIENT_IDS = tuple(f'home_{h}' for h in HOMES)
SENSORS = (
    ('Basin', 'Bathroom'), ('Bed', 'Bedroom'), ('Cabinet', 'Bathroom'),
    ('Cooktop', 'Kitchen'), ('Cupboard', 'Kitchen'), ('Door', 'Bedroom'),
    ('Door', 'Kitchen'), ('Door', 'Living'), ('Fridge', 'Kitchen'),
    ('Maindoor', 'Entrance'), ('Microwave', 'Kitchen'), ('Seat', 'Living'),
    ('Shower', 'Bathroom'), ('Toaster', 'Kitchen'), ('Toilet', 'Bathroom'))
ACTIVITIES = ('Leaving', 'Toileting', 'Showering', 'Sleeping', 'Breakfast',
              'Lunch', 'Dinner', 'Snack', 'Spare_Time/TV', 'Grooming')
NUM_FEATURES = len(SENSORS) + 2
REPRESENTATIONS = ('raw', 'changepoint', 'last')
UNLABELLED = ('drop', 'idle')
TIME_FORMAT = '%Y-%m-%d %H:%M:%S'
# Rows (fields after stripping) that end before they start in the published
# file; which of their digits are wrong cannot be told, so they are dropped.
KNOWN_BAD_ROWS = {
    'OrdonezA_ADLs.txt': frozenset({
        ('2011-12-01 19:28:51', '2011-12-01 16:29:59', 'Toileting'),
        ('2011-12-02 12:20:41', '2011-12-01 10:20:59', 'Grooming'),
        ('2011-12-02 12:27:47', '2011-12-01 11:35:49', 'Breakfast')}),
}
_SENSOR_INDEX = {s: i for i, s in enumerate(SENSORS)}
_ACTIVITY_INDEX = {(a,): i for i, a in enumerate(ACTIVITIES)}
_EPOCH = datetime.datetime(1970, 1, 1)
_DAY = 86400


def _seconds(text: str) -> int:
  """'YYYY-MM-DD HH:MM:SS' as seconds since 1970 (no time zone)."""
  try:
    moment = datetime.datetime.strptime(text, TIME_FORMAT)
  except ValueError as e:
    raise ValueError(f'bad time {text!r}, expected YYYY-MM-DD HH:MM:SS') from e
  return (moment - _EPOCH) // datetime.timedelta(seconds=1)


def read_rows(path: str, columns: tuple[str, ...], key: tuple[str, ...],
              index: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(start, end, index) arrays of one file's rows, times in seconds.

  Args:
    path: A sensor or ADL file.
    columns: Names of the fields after the two times.
    key: The columns that name a row's sensor or activity.
    index: Maps the tuple of the `key` fields to the sensor or activity.
  """
  positions = [2 + columns.index(c) for c in key]
  files.require(path, 'Ordonez data file')
  bad_rows = KNOWN_BAD_ROWS.get(os.path.basename(path), frozenset())
  starts, ends, kinds = [], [], []
  with open(path, encoding='latin-1') as f:
    for line_number, line in enumerate(f, 1):
      fields = tuple(v.strip() for v in line.split('\t') if v.strip())
      try:
        if line_number == 1:
          if fields[:1] != ('Start time',):
            raise ValueError('expected the header "Start time ..."')
          continue
        if line_number == 2:
          if not fields or any(set(v) != {'-'} for v in fields):
            raise ValueError('expected the header rule "----..."')
          continue
        if not fields or fields in bad_rows:
          continue
        if len(fields) != 2 + len(columns):
          raise ValueError(f'{len(fields)} fields, expected '
                           f'{2 + len(columns)} (start, end, '
                           f'{", ".join(columns)})')
        start, end = _seconds(fields[0]), _seconds(fields[1])
        if end < start:
          raise ValueError(f'ends ({fields[1]}) before it starts')
        name = tuple(fields[i] for i in positions)
        kind = index.get(name)
        if kind is None:
          raise ValueError(f'unknown {"/".join(key)} {"/".join(name)}')
      except ValueError as e:
        raise task_lib.DataError(f'{path}: line {line_number}: {e}') from e
      starts.append(start)
      ends.append(end)
      kinds.append(kind)
  if not starts:
    raise task_lib.DataError(f'{path}: no rows')
  return (np.asarray(starts, np.int64), np.asarray(ends, np.int64),
          np.asarray(kinds, np.int64))


def read_home(folder: str, home: str) -> dict[str, np.ndarray]:
  """One home's sensor activations and activities, times in seconds."""
  # Type is left out: (Location, Place) already names a sensor.
  sensor = read_rows(f'{folder}/Ordonez{home}_Sensors.txt',
                     ('Location', 'Type', 'Place'), ('Location', 'Place'),
                     _SENSOR_INDEX)
  adl = read_rows(f'{folder}/Ordonez{home}_ADLs.txt', ('Activity',),
                  ('Activity',), _ACTIVITY_INDEX)
  return dict(zip(('sensor_start', 'sensor_end', 'sensor',
                   'adl_start', 'adl_end', 'adl'), sensor + adl))


def _decode(folder: str) -> dict[str, np.ndarray]:
  return {f'{home}_{k}': v for home in HOMES
          for k, v in read_home(folder, home).items()}


def slice_home(events: dict[str, np.ndarray], *, slice_seconds: int,
               representation: str) -> tuple[np.ndarray, ...]:
  """A home's slices: (x float32 [n, 17], y int32 [n], -1 where no activity
  overlaps, day int64 [n] as days since 1970)."""
  first = int(events['adl_start'].min())
  n = (int(events['adl_end'].max()) - first) // slice_seconds + 1
  slice_start = first + slice_seconds * np.arange(n, dtype=np.int64)

  def slice_of(t):
    return (t - first) // slice_seconds

  sensors = np.zeros([n, len(SENSORS)], np.float32)
  sensor = events['sensor']
  if representation == 'raw':
    k0, k1 = slice_of(events['sensor_start']), slice_of(events['sensor_end'])
    inside = (k1 >= 0) & (k0 < n)
    # +1 over each activation's slices, then a running sum per sensor.
    steps = np.zeros([n + 1, len(SENSORS)], np.int64)
    np.add.at(steps, (np.clip(k0[inside], 0, n - 1), sensor[inside]), 1)
    np.add.at(steps, (np.clip(k1[inside], 0, n - 1) + 1, sensor[inside]), -1)
    sensors[np.cumsum(steps, axis=0)[:n] > 0] = 1.0
  elif representation == 'changepoint':
    for times in (events['sensor_start'], events['sensor_end']):
      k = slice_of(times)
      inside = (k >= 0) & (k < n)
      sensors[k[inside], sensor[inside]] = 1.0
  else:
    # Each row's start then its end, in time order (stable: file order).
    times = np.stack([events['sensor_start'], events['sensor_end']], 1)
    times = times.reshape(-1)
    order = np.argsort(times, kind='stable')
    times, fired = times[order], np.repeat(sensor, 2)[order]
    last = np.searchsorted(times, slice_start + slice_seconds - 1,
                           side='right') - 1
    sensors[np.flatnonzero(last >= 0), fired[last[last >= 0]]] = 1.0

  labels = np.full(n, -1, np.int32)
  best = np.zeros(n, np.int64)
  # In order of start, replacing only on a strictly larger overlap, so ties
  # go to the earlier-starting activity.
  for i in np.argsort(events['adl_start'], kind='stable'):
    start, end = events['adl_start'][i], events['adl_end'][i]
    k = np.arange(slice_of(start), slice_of(end) + 1)
    overlap = (np.minimum(end, slice_start[k] + slice_seconds - 1)
               - np.maximum(start, slice_start[k]) + 1)
    better = overlap > best[k]
    best[k[better]] = overlap[better]
    labels[k[better]] = events['adl'][i]

  angle = 2 * np.pi * (slice_start % _DAY) / _DAY
  x = np.concatenate([sensors, np.stack([np.sin(angle), np.cos(angle)], 1)],
                     axis=1).astype(np.float32)
  return x, labels, slice_start // _DAY


def model_fn(num_classes: int = len(ACTIVITIES)):
  """A 17-64-`num_classes` ReLU MLP, softmax cross-entropy."""
  return task_lib.classifier(
      task_lib.mlp([NUM_FEATURES], [64], num_classes),
      tf.TensorSpec([None, NUM_FEATURES], tf.float32))


def load(data_dir: str | None = None, *, slice_seconds: int = 60,
         representation: str = 'raw', unlabelled: str = 'drop',
         test_fraction: float = 0.3,
         cache_dir: str | None = None) -> task_lib.Task:
  """Homes A and B as clients; each one's last days are its test data.

  Args:
    data_dir: Folder with the `Ordonez{A,B}_{Sensors,ADLs}.txt` files (or
      its parent with `smart_home/ordonez_adl/`); default
      `fedmeta.data.files.default_data_dir`.
    slice_seconds: Length of a time slice.
    representation: Sensor features: 'raw', 'changepoint' or 'last'.
    unlabelled: Slices no activity overlaps: 'drop', or 'idle' (labelled
      Idle, class `len(ACTIVITIES)`).
    test_fraction: Share of each home's days (its last) for testing.
    cache_dir: Cache of the parsed files; see `fedmeta.data.files.cached`.
  """
  if slice_seconds < 1:
    raise task_lib.DataError(
        f'slice_seconds: must be >= 1, got {slice_seconds}')
  if representation not in REPRESENTATIONS:
    raise task_lib.DataError(f'representation: must be one of '
                             f'{REPRESENTATIONS}, got {representation!r}')
  if unlabelled not in UNLABELLED:
    raise task_lib.DataError(
        f'unlabelled: must be one of {UNLABELLED}, got {unlabelled!r}')
  if not 0 < test_fraction < 1:
    raise task_lib.DataError(
        f'test_fraction: must be in (0, 1), got {test_fraction}')
  folder = files.resolve(data_dir, os.path.join('smart_home', 'ordonez_adl'))
  sources = [files.require(f'{folder}/Ordonez{home}_{kind}.txt',
                           'Ordonez data file')
             for home in HOMES for kind in ('Sensors', 'ADLs')]
  arrays = files.cached(
      'home_activity', sources,
      {'sensors': SENSORS, 'activities': ACTIVITIES,
       'dropped': sorted((name, *row) for name, rows in KNOWN_BAD_ROWS.items()
                         for row in rows)},
      lambda: _decode(folder), cache_dir=cache_dir)
  train, test = [], []
  for home in HOMES:
    events = {k[len(home) + 1:]: v for k, v in arrays.items()
              if k.startswith(f'{home}_')}
    x, y, day = slice_home(events, slice_seconds=slice_seconds,
                           representation=representation)
    days = np.unique(day)
    n_test = max(1, int(round(test_fraction * len(days))))
    if n_test >= len(days):
      raise task_lib.DataError(
          f'test_fraction: {test_fraction} leaves home {home} no training '
          f'day of {len(days)}')
    is_test = day >= days[-n_test]
    if unlabelled == 'idle':
      y = np.where(y < 0, len(ACTIVITIES), y).astype(np.int32)
    kept = y >= 0
    train.append((x[kept & ~is_test], y[kept & ~is_test]))
    test.append((x[kept & is_test], y[kept & is_test]))
  num_classes = len(ACTIVITIES) + (unlabelled == 'idle')
  return task_lib.Task(
      name='home_activity',
      train=task_lib.client_data_from_pairs(train, ids=CLIENT_IDS),
      test=task_lib.client_data_from_pairs(test, ids=CLIENT_IDS),
      model_fn=functools.partial(model_fn, num_classes),
      examples_per_class=None)
