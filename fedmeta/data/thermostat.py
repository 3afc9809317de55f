"""Radiator setpoint regression on the Open Smart Home Data Set, one client
per room (Schneider, Rasmussen, Bonsma, Oraskari & Pauwels 2018, "Linked
building data for modular building information modelling of a smart home",
ECPPM 2018, pp. 407-414; data copyright Fraunhofer IBP, CC BY-SA 4.0,
https://github.com/TechnicalBuildingSystems/OpenSmartHomeData).

One flat, 6 rooms (`ROOMS`, also the client ids), 2017-03-08..06-06. Each
series `Measurements/<Room>_<Quantity>.csv` is `unix_time<TAB>value` lines
(no header; CRLF and blank lines accepted; times strictly increasing). Per
room three series are read: `SetpointHistory` (the controller's scheduled
setpoint, degC), `Temperature` (room air, degC) and the outdoor temperature of
a virtual weather service, `<Room>_Virtual_OutdoorTemperature.csv`, or
`<Room>_OutdoorTemperature.csv` where only that exists (Room2 in the
release; the six files are byte-identical). Each reading holds until the
next: a series' value at t is its last reading at or before t, however old
(three setpoint files have gaps of up to 8.6 days, 2017-04-04..12).
The gridded series are cached (`fedmeta.data.files.cached`), keyed on the
files and `interval_minutes`.

Examples lie on a grid every `interval_minutes`, at multiples of the interval
since the epoch (so rooms share grid times), from the first grid time at or
after the latest first reading of the room's three series to the earliest
last reading. At each grid time t:
  x[0:2]: sin, cos of 2 pi * (hour of day, fractional) / 24;
  x[2:4]: sin, cos of 2 pi * (day of week, Monday 0) / 7;
  x[4]: the room air temperature;
  x[5]: the outdoor temperature;
  y: the setpoint in effect, degC, unstandardized.
Times are UTC: the schedule's changes fall at the same UTC times (07:30,
21:30) before and after the 26 March switch to summer time, so the
controller's clock does not follow it. Humidity is not used.

Each room is split by time: examples at or after `1 - test_fraction` of the
room's grid period are its test examples, the earlier ones its training
examples. x[4:6] are standardized with the mean and std of all rooms'
training examples pooled; the sin/cos features are left as they are.
Elements: `x` float32 [6], `y` float32 [1]. `baseline_mae` scores trivial
predictors on the same test examples, for reading the model's error.
"""

import math
import os

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import models
from fedmeta.data import files
from fedmeta.data import task as task_lib

SUBDIR = 'smart_home/open_smart_home'
ROOMS = ('Bathroom', 'Kitchen', 'Room1', 'Room2', 'Room3', 'Toilet')
FEATURES = ('hour_sin', 'hour_cos', 'weekday_sin', 'weekday_cos',
            'room_temperature', 'outdoor_temperature')
NUM_FEATURES = len(FEATURES)
STANDARDIZED = slice(4, 6)
_DAY = 86_400
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0.


def read_series(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(times, values) of one `unix_time<TAB>value` file, float64."""
  files.require(path, 'measurement series')
  times, values = [], []
  with open(path, encoding='utf-8') as f:
    for line_number, line in enumerate(f, 1):
      if not line.strip():
        continue
      fields = line.strip().split('\t')
      try:
        if len(fields) != 2:
          raise ValueError(f'{len(fields)} TAB-separated fields, expected 2')
        t, v = float(fields[0]), float(fields[1])
        if not (math.isfinite(t) and math.isfinite(v)):
          raise ValueError(f'non-finite number in {line.strip()!r}')
        if times and t <= times[-1]:
          raise ValueError(
              f"time {fields[0]} is not after the previous reading's")
      except ValueError as e:
        raise task_lib.DataError(f'{path}: line {line_number}: {e}') from e
      times.append(t)
      values.append(v)
  if not times:
    raise task_lib.DataError(f'{path}: no measurements')
  return np.asarray(times), np.asarray(values)


def _room_paths(folder: str, room: str) -> tuple[str, str, str]:
  """Paths of the room's setpoint, air and outdoor temperature series."""
  outdoor = f'{folder}/{room}_Virtual_OutdoorTemperature.csv'
  plain = f'{folder}/{room}_OutdoorTemperature.csv'
  if not os.path.isfile(outdoor) and os.path.isfile(plain):
    outdoor = plain
  return (files.require(f'{folder}/{room}_SetpointHistory.csv',
                        'setpoint series'),
          files.require(f'{folder}/{room}_Temperature.csv',
                        'room temperature series'),
          files.require(outdoor, 'outdoor temperature series (nor '
                        f'{room}_OutdoorTemperature.csv)'))


def _value_at(times: np.ndarray, values: np.ndarray,
              at: np.ndarray) -> np.ndarray:
  """The last reading at or before each of `at` (all >= times[0])."""
  return values[np.searchsorted(times, at, side='right') - 1]


def _decode(paths: dict[str, tuple[str, str, str]],
            interval_minutes: int) -> dict[str, np.ndarray]:
  step = 60 * interval_minutes
  grids, columns = [], []
  for room, room_paths in paths.items():
    series = [read_series(p) for p in room_paths]
    start = math.ceil(max(t[0] for t, _ in series) / step) * step
    end = min(t[-1] for t, _ in series)
    if end < start:
      raise task_lib.DataError(
          f'{room_paths[0]}: the room\'s series do not overlap in time')
    grid = start + step * np.arange(int((end - start) // step) + 1)
    grids.append(grid)
    columns.append(np.stack([_value_at(t, v, grid) for t, v in series], 1))
  return {'times': np.concatenate(grids),
          'ends': np.cumsum([len(g) for g in grids]),
          'values': np.concatenate(columns)}


def time_features(times: np.ndarray) -> np.ndarray:
  """sin/cos of the UTC hour of day and of the day of week: [n, 4]."""
  hour = np.mod(times, _DAY) / 3600
  weekday = np.mod(np.floor_divide(times, _DAY) + _EPOCH_WEEKDAY, 7)
  return np.stack([np.sin(2 * np.pi * hour / 24),
                   np.cos(2 * np.pi * hour / 24),
                   np.sin(2 * np.pi * weekday / 7),
                   np.cos(2 * np.pi * weekday / 7)], 1)


def hour_of_week(times: np.ndarray) -> np.ndarray:
  """The UTC hour of the week, 0 (Monday 00:00-01:00) to 167."""
  days = np.floor_divide(times, _DAY)
  return (np.mod(days + _EPOCH_WEEKDAY, 7) * 24
          + np.floor_divide(np.mod(times, _DAY), 3600)).astype(int)


def room_splits(data_dir: str | None = None, *, interval_minutes: int = 30,
          test_fraction: float = 0.25, cache_dir: str | None = None
          ) -> dict[str, dict[str, tuple[np.ndarray, ...]]]:
  """Each room's unstandardized examples, split by time; arguments as for
  `load`.

  Returns:
    `{room: {'train': (times, x, y), 'test': (times, x, y)}}`: unix times
    [n], features [n, 6] (temperatures in degC) and setpoints [n], float64.
  """
  if interval_minutes < 1:
    raise task_lib.DataError(
        f'interval_minutes: must be >= 1, got {interval_minutes}')
  if not 0 < test_fraction < 1:
    raise task_lib.DataError(
        f'test_fraction: must be in (0, 1), got {test_fraction}')
  folder = files.resolve(data_dir, SUBDIR)
  if os.path.isdir(f'{folder}/Measurements'):
    folder = f'{folder}/Measurements'
  paths = {room: _room_paths(folder, room) for room in ROOMS}
  arrays = files.cached(
      'thermostat', [p for room_paths in paths.values() for p in room_paths],
      {'rooms': ROOMS, 'interval_minutes': interval_minutes},
      lambda: _decode(paths, interval_minutes), cache_dir=cache_dir)
  splits = {}
  for room, times, values in zip(
      ROOMS, np.split(arrays['times'], arrays['ends'][:-1]),
      np.split(arrays['values'], arrays['ends'][:-1])):
    x = np.concatenate([time_features(times), values[:, 1:]], 1)
    cut = times[0] + (1 - test_fraction) * (times[-1] - times[0])
    train, test = times < cut, times >= cut
    if not train.any() or not test.any():
      raise task_lib.DataError(
          f'test_fraction, interval_minutes: {test_fraction} of {room}\'s '
          f'{len(times)} examples leaves no training or no test example')
    splits[room] = {'train': (times[train], x[train], values[train, 0]),
                    'test': (times[test], x[test], values[test, 0])}
  return splits


def model_fn() -> tff.learning.models.FunctionalModel:
  """A 6-32-32-1 ReLU MLP, mean squared error; reports mean absolute error."""
  return models.from_keras(
      task_lib.mlp([NUM_FEATURES], [32, 32], 1),
      loss=tf.keras.losses.MeanSquaredError(),
      input_spec={'x': tf.TensorSpec([None, NUM_FEATURES], tf.float32),
                  'y': tf.TensorSpec([None, 1], tf.float32)},
      metrics=[tf.keras.metrics.MeanAbsoluteError])


def load(data_dir: str | None = None, *, interval_minutes: int = 30,
         test_fraction: float = 0.25,
         cache_dir: str | None = None) -> task_lib.Task:
  """The six rooms; test clients are the same rooms' later examples.

  Args:
    data_dir: Folder with `Measurements/` (or the Measurements folder, or a
      parent with `smart_home/open_smart_home/`); default
      `fedmeta.data.files.default_data_dir`.
    interval_minutes: Minutes between consecutive examples.
    test_fraction: Share of each room's period (its end) for testing.
    cache_dir: Cache of the gridded series; see `fedmeta.data.files.cached`.
  """
  splits = room_splits(data_dir, interval_minutes=interval_minutes,
                       test_fraction=test_fraction, cache_dir=cache_dir)
  pooled = np.concatenate([s['train'][1][:, STANDARDIZED]
                           for s in splits.values()])

  def pairs(part):
    out = []
    for s in splits.values():
      _, x, y = s[part]
      x = x.astype(np.float32)
      x[:, STANDARDIZED] = task_lib.standardize(pooled, x[:, STANDARDIZED])[1]
      out.append((x, y.astype(np.float32)[:, None]))
    return out

  return task_lib.Task(
      name='thermostat',
      train=task_lib.client_data_from_pairs(pairs('train'), ids=ROOMS),
      test=task_lib.client_data_from_pairs(pairs('test'), ids=ROOMS),
      model_fn=model_fn,
      examples_per_class=None)


def baseline_mae(data_dir: str | None = None, *, interval_minutes: int = 30,
                 test_fraction: float = 0.25,
                 cache_dir: str | None = None) -> dict[str, dict[str, float]]:
  """Each room's test mean absolute error of trivial predictors, in degC.

  'train_mean': the room's mean training setpoint. 'hour_of_week' and
  'hour_of_week_median': the mean and the median of the room's training
  setpoints in the same UTC hour of the week (the median minimizes the
  absolute error; an MSE-trained model aims at the mean), scored on the test
  examples whose hour occurs in training (NaN if none does). Arguments are
  as for `load`.
  """
  maes = {}
  for room, split in room_splits(data_dir, interval_minutes=interval_minutes,
                                 test_fraction=test_fraction,
                                 cache_dir=cache_dir).items():
    (train_t, _, train_y), (test_t, _, test_y) = split['train'], split['test']
    train_hours, test_hours = hour_of_week(train_t), hour_of_week(test_t)
    seen = np.isin(test_hours, train_hours)
    by_hour = [train_y[train_hours == h] for h in test_hours[seen]]
    maes[room] = {'train_mean': float(np.mean(np.abs(test_y - train_y.mean())))}
    for name, statistic in (('hour_of_week', np.mean),
                            ('hour_of_week_median', np.median)):
      predicted = np.asarray([statistic(ys) for ys in by_hour])
      maes[room][name] = (float(np.mean(np.abs(test_y[seen] - predicted)))
                          if seen.any() else float('nan'))
  return maes
