"""Open Smart Home radiator setpoints, one client per room."""

import os
import shutil
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from fedmeta import algorithms
from fedmeta import runtime
from fedmeta.data import DataError
from fedmeta.data import task as task_lib
from fedmeta.data import thermostat
from tests import testing

REAL = os.path.join(testing.data_dir(), thermostat.SUBDIR)
HOUR = 3600
MONDAY = 1489363200  # 2017-03-13 00:00 UTC.


def write_series(path, rows, newline='\n'):
  with open(path, 'w', newline='') as f:
    f.write(''.join(f'{t}\t{v}{newline}' for t, v in rows))


def write_flat(folder, setpoints, hours):
  """Every room: `setpoints` [(time, degC)], air temperature every 20 min
  from MONDAY - 300 s for `hours` h (18 + 0.1 per reading + room index),
  outdoor every 30 min from MONDAY - 900 s (5 + 0.2 per reading); Room2's
  outdoor file under the release's other name."""
  measurements = os.path.join(folder, 'Measurements')
  os.makedirs(measurements, exist_ok=True)
  for i, room in enumerate(thermostat.ROOMS):
    outdoor = ('OutdoorTemperature' if room == 'Room2'
               else 'Virtual_OutdoorTemperature')
    write_series(f'{measurements}/{room}_SetpointHistory.csv', setpoints)
    write_series(f'{measurements}/{room}_Temperature.csv',
                 [(MONDAY - 300 + 1200 * k, round(18 + 0.1 * k + i, 2))
                  for k in range(3 * hours + 1)])
    write_series(f'{measurements}/{room}_{outdoor}.csv',
                 [(MONDAY - 900 + 1800 * k, round(5 + 0.2 * k, 2))
                  for k in range(2 * hours + 2)])
  return measurements


# Grid MONDAY + 0..9 h; setpoint 16, 20 from 03:00, 18 from 06:00:01 and
# 16 again from the last reading at 09:00, on the grid's last point.
DAY = [(MONDAY - 600, 16.0), (MONDAY + 3 * HOUR, 20.0),
       (MONDAY + 6 * HOUR + 1, 18.0), (MONDAY + 9 * HOUR, 16.0)]


def pooled(client_data):
  arrays = [testing.client_arrays_of(client_data, c)
            for c in client_data.client_ids]
  return (np.concatenate([a['x'] for a in arrays]),
          np.concatenate([a['y'] for a in arrays]))


class SmallFilesTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    # Not create_tempdir: it reads absl flags, which pytest leaves unparsed.
    self.folder, self.cache = tempfile.mkdtemp(), tempfile.mkdtemp()
    for folder in (self.folder, self.cache):
      self.addCleanup(shutil.rmtree, folder)
    self.measurements = write_flat(self.folder, DAY, hours=10)

  def load(self, **kwargs):
    return thermostat.load(self.folder, **{
        'interval_minutes': 60, 'cache_dir': self.cache, **kwargs})

  def test_grid_targets_and_features(self):
    splits = thermostat.room_splits(self.folder, interval_minutes=60,
                                    cache_dir=self.cache)
    self.assertEqual(list(splits), list(thermostat.ROOMS))
    # Period 0..9 h: the cut at 6.75 h leaves 7 training and 3 test hours.
    (train_t, train_x, train_y), (test_t, test_x, test_y) = (
        splits['Room1']['train'], splits['Room1']['test'])
    np.testing.assert_array_equal(train_t, MONDAY + HOUR * np.arange(7))
    np.testing.assert_array_equal(test_t, MONDAY + HOUR * np.arange(7, 10))
    np.testing.assert_array_equal(train_y, [16, 16, 16, 20, 20, 20, 20])
    np.testing.assert_array_equal(test_y, [18, 18, 16])
    # Air reading k (MONDAY - 300 + 1200 k) is the last one before hour k/3;
    # outdoor reading 2h is the last one before hour h.
    hours = np.arange(10)
    x = np.concatenate([train_x, test_x])
    np.testing.assert_allclose(x[:, 4], 18 + 0.3 * hours + 2)  # Room1: i = 2.
    np.testing.assert_allclose(x[:, 5], 5 + 0.4 * hours)
    np.testing.assert_allclose(x[:, 0], np.sin(2 * np.pi * hours / 24),
                               atol=1e-12)
    np.testing.assert_allclose(x[:, 1], np.cos(2 * np.pi * hours / 24))
    np.testing.assert_allclose(x[:, 2:4], np.tile([0.0, 1.0], (10, 1)),
                               atol=1e-12)  # Monday.
    # A cut on a grid time (4.5 h of 0..9 h) puts that example in test.
    halves = self.load(interval_minutes=30, test_fraction=0.5)
    self.assertEqual(testing.client_sizes(halves.train), [9] * 6)
    self.assertEqual(testing.client_sizes(halves.test), [10] * 6)

  def test_time_features_of_known_dates(self):
    # Sunday 2017-03-19 18:30 UTC: day 6, hour 18.5.
    sunday = MONDAY + 6 * 24 * HOUR + 18.5 * HOUR
    np.testing.assert_allclose(
        thermostat.time_features(np.asarray([sunday]))[0],
        [np.sin(2 * np.pi * 18.5 / 24), np.cos(2 * np.pi * 18.5 / 24),
         np.sin(2 * np.pi * 6 / 7), np.cos(2 * np.pi * 6 / 7)], atol=1e-12)
    np.testing.assert_array_equal(
        thermostat.hour_of_week(np.asarray([MONDAY, MONDAY + 3599, sunday])),
        [0, 0, 6 * 24 + 18])

  def test_task_is_standardized_with_pooled_training_statistics(self):
    task = self.load()
    self.assertEqual(list(task.train.client_ids), list(thermostat.ROOMS))
    self.assertEqual(list(task.test.client_ids), list(thermostat.ROOMS))
    self.assertEqual(testing.client_sizes(task.train), [7] * 6)
    self.assertEqual(testing.client_sizes(task.test), [3] * 6)
    self.assertIsNone(task.examples_per_class)
    spec = task.train.element_type_structure
    self.assertEqual((spec['x'].shape, spec['y'].shape), ((6,), (1,)))
    self.assertEqual((spec['x'].dtype, spec['y'].dtype),
                     (tf.float32, tf.float32))
    x, y = pooled(task.train)
    np.testing.assert_allclose(x[:, 4:].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x[:, 4:].std(0), 1, atol=1e-5)
    np.testing.assert_array_equal(y[:7, 0], [16, 16, 16, 20, 20, 20, 20])
    # The test part uses the training statistics; air is 18 + 0.3 h + i.
    test_x = testing.client_arrays_of(task.test, 'Bathroom')['x']
    raw_train = np.concatenate(
        [18 + 0.3 * np.arange(7) + i for i in range(6)])
    np.testing.assert_allclose(
        test_x[:, 4], (18 + 0.3 * np.arange(7, 10) - raw_train.mean())
        / raw_train.std(), rtol=1e-5)
    np.testing.assert_allclose(x[:7, 1], np.cos(2 * np.pi * np.arange(7) / 24),
                               rtol=1e-6)

  def test_crlf_and_blank_lines_read_as_lf(self):
    path = f'{self.measurements}/Kitchen_Temperature.csv'
    lf = thermostat.read_series(path)
    with open(path) as f:
      lines = f.read().splitlines()
    with open(path, 'w', newline='') as f:
      f.write('\r\n' + '\r\n\r\n'.join(lines) + '\r\n\r\n')
    crlf = thermostat.read_series(path)
    for a, b in zip(lf, crlf):
      np.testing.assert_array_equal(a, b)

  @parameterized.named_parameters(
      ('not_a_number', 'abc\t19.5', 'could not convert'),
      ('three_fields', f'{MONDAY}\t19.5\t1', '3 TAB-separated fields'),
      ('space_separated', f'{MONDAY} 19.5', '1 TAB-separated fields'),
      ('not_finite', f'{MONDAY}\tnan', 'non-finite'),
      ('repeated_time', f'{MONDAY - 300}\t19.5', 'is not after'),
      ('earlier_time', f'{MONDAY - 301}\t19.5', 'is not after'))
  def test_malformed_line_names_file_and_line(self, bad, message):
    path = f'{self.measurements}/Kitchen_Temperature.csv'
    with open(path, 'w') as f:
      f.write(f'{MONDAY - 300}\t18\n\n{bad}\n{MONDAY + HOUR}\t18\n')
    with self.assertRaisesRegex(
        DataError,
        rf'^\S*Kitchen_Temperature\.csv: line 3: .*{message}') as caught:
      self.load()
    self.assertNotIn('\n', str(caught.exception))

  def test_missing_or_empty_files(self):
    kitchen = f'{self.measurements}/Kitchen_Temperature.csv'
    with open(kitchen, 'w') as f:
      f.write('\n\n')
    with self.assertRaisesRegex(
        DataError, r'Kitchen_Temperature\.csv: no measurements'):
      self.load()
    os.remove(kitchen)
    with self.assertRaisesRegex(
        DataError, r'Kitchen_Temperature\.csv: room temperature series not'):
      self.load()
    write_flat(self.folder, DAY, hours=10)
    os.remove(f'{self.measurements}/Room1_Virtual_OutdoorTemperature.csv')
    with self.assertRaisesRegex(
        DataError, r'Room1_Virtual_OutdoorTemperature\.csv: outdoor '
        r'temperature series \(nor Room1_OutdoorTemperature\.csv\) not found'):
      self.load()
    with self.assertRaisesRegex(DataError, 'does not exist'):
      thermostat.load(os.path.join(self.folder, 'nowhere'))

  def test_series_that_do_not_overlap(self):
    write_series(f'{self.measurements}/Toilet_SetpointHistory.csv',
                 [(MONDAY + 20 * HOUR, 16.0)])
    with self.assertRaisesRegex(
        DataError, r'Toilet_SetpointHistory\.csv: the room\'s series do not'):
      self.load()

  def test_bad_options(self):
    with self.assertRaisesRegex(DataError, 'interval_minutes: must be >= 1'):
      self.load(interval_minutes=0)
    for fraction in (0.0, 1.0):
      with self.assertRaisesRegex(DataError, 'test_fraction: must be in'):
        self.load(test_fraction=fraction)
    # One 10-h step: a single example, nothing to split.
    with self.assertRaisesRegex(DataError,
                                "test_fraction, interval_minutes: .*Bathroom"):
      self.load(interval_minutes=600)

  def test_cache_is_used_and_invalidated(self):
    with mock.patch.object(thermostat, 'read_series',
                           wraps=thermostat.read_series) as read:
      first = self.load()
      self.assertEqual(read.call_count, 18)
      again = self.load()
      self.assertEqual(read.call_count, 18)
      np.testing.assert_array_equal(pooled(first.train)[0],
                                    pooled(again.train)[0])
      self.load(interval_minutes=30)
      self.assertEqual(read.call_count, 36)  # A new decoding parameter.
      with open(f'{self.measurements}/Toilet_SetpointHistory.csv', 'a') as f:
        f.write(f'{MONDAY + 9 * HOUR + 60}\t17\n')
      changed = self.load()
      self.assertEqual(read.call_count, 54)
    self.assertEqual(testing.client_sizes(changed.train), [7] * 6)

  def test_baselines(self):
    # Four weeks of a daily schedule, 20 degC 06:00-22:00 else 16, but 24
    # degC at 12:00-13:00 on days 0 (training) and 26 (test).
    changes = [(MONDAY - 600, 16.0)]
    for day in range(28):
      start = MONDAY + day * 24 * HOUR
      changes.append((start + 6 * HOUR, 20.0))
      if day in (0, 26):
        changes += [(start + 12 * HOUR, 24.0), (start + 13 * HOUR, 20.0)]
      changes.append((start + 22 * HOUR, 16.0))
    write_flat(self.folder, changes, hours=28 * 24)
    maes = thermostat.baseline_mae(self.folder, interval_minutes=60,
                                   cache_dir=self.cache)
    splits = thermostat.room_splits(self.folder, interval_minutes=60,
                                    cache_dir=self.cache)
    _, _, train_y = splits['Kitchen']['train']
    _, _, test_y = splits['Kitchen']['test']
    self.assertEqual(set(maes), set(thermostat.ROOMS))
    # Grid 0..670 h (the last reading), test 503..670 h: each hour of the
    # week once. Monday 12:00 has training setpoints 24, 20, 20 (mean 21.33,
    # median 20) and 20 in test; day 26's 24 is off by 4 for both.
    self.assertLen(test_y, 168)
    self.assertAlmostEqual(maes['Kitchen']['hour_of_week'],
                           (4 / 3 + 4) / 168)
    self.assertAlmostEqual(maes['Kitchen']['hour_of_week_median'], 4 / 168)
    self.assertAlmostEqual(maes['Kitchen']['train_mean'],
                           np.abs(test_y - train_y.mean()).mean())
    self.assertGreater(maes['Kitchen']['train_mean'], 1)
    # One day of data: no test hour of the week occurs in training.
    write_flat(self.folder, DAY, hours=10)
    maes = thermostat.baseline_mae(self.folder, interval_minutes=60,
                                   cache_dir=self.cache)
    self.assertTrue(np.isnan(maes['Room3']['hour_of_week']))
    self.assertTrue(np.isnan(maes['Room3']['hour_of_week_median']))
    self.assertAlmostEqual(maes['Room3']['train_mean'],
                           (2 * (128 / 7 - 18) + (128 / 7 - 16)) / 3)

  def test_model_runs_on_the_tasks_batch(self):
    task = self.load()
    batch = next(task.train.create_tf_dataset_for_client('Kitchen').batch(5)
                 .as_numpy_iterator())
    model = task.model_fn()
    self.assertEqual([w.shape for w in model.initial_weights[0]],
                     [(6, 32), (32,), (32, 32), (32,), (32, 1), (1,)])
    output, loss = testing.output_and_loss(model, batch)
    self.assertEqual(output.shape, (5, 1))
    self.assertTrue(np.isfinite(loss))
    np.testing.assert_allclose(loss, np.mean((output - batch['y']) ** 2),
                               rtol=1e-5)

  def test_learning_process_reports_mean_absolute_error(self):
    task = self.load()
    runtime.set_local_context()
    process = algorithms.build_fed_avg(task.model_fn())
    output = process.next(process.initialize(), [
        task.train.create_tf_dataset_for_client(c).batch(4)
        for c in task.train.client_ids])
    train = output.metrics['client_work']['train']
    self.assertEqual(train['num_examples'], 42)
    self.assertTrue(np.isfinite(train['mean_absolute_error']))
    weights = process.get_model_weights(output.state)
    test = [task.test.create_tf_dataset_for_client(c).batch(2)
            for c in task.test.client_ids]
    metrics = algorithms.build_fed_eval(task.model_fn())(weights, test)
    keras_model = task_lib.mlp([6], [32, 32], 1)()
    keras_model.set_weights(list(weights.trainable))
    x, y = pooled(task.test)
    self.assertAlmostEqual(
        float(metrics['mean_absolute_error']),
        float(np.mean(np.abs(keras_model(x).numpy() - y))), places=4)


@absltest.skipUnless(os.path.isdir(REAL),
                     f'needs ../shared/data/{thermostat.SUBDIR}')
class RealDataTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.cache = tempfile.mkdtemp()
    cls.addClassCleanup(shutil.rmtree, cls.cache)
    cls.task = thermostat.load(cache_dir=cls.cache)

  def test_rooms_and_counts(self):
    self.assertEqual(list(self.task.train.client_ids), list(thermostat.ROOMS))
    # 30-min grid, 2017-03-09 00:30..06-05 21:30 UTC (by room), cut at
    # 2017-05-14 16:00-18:00.
    self.assertEqual(testing.client_sizes(self.task.train),
                     [3192, 3198, 3199, 3200, 3200, 3191])
    self.assertEqual(testing.client_sizes(self.task.test),
                     [1065, 1067, 1067, 1067, 1067, 1064])
    hourly = thermostat.load(interval_minutes=60, cache_dir=self.cache)
    self.assertEqual(testing.client_sizes(hourly.train),
                     [1596, 1599, 1599, 1599, 1599, 1595])

  def test_targets_and_features(self):
    x, y = pooled(self.task.train)
    self.assertEqual(x.shape, (19180, 6))
    self.assertEqual(set(np.unique(y)),
                     {14.5, 16, 17, 18, 20, 20.5, 21, 22, 25, 27, 27.5, 28})
    np.testing.assert_allclose(x[:, 4:].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(x[:, 4:].std(0), 1, atol=1e-4)
    np.testing.assert_allclose(x[:, 0] ** 2 + x[:, 1] ** 2, 1, rtol=1e-5)
    toilet = testing.client_arrays_of(self.task.test, 'Toilet')['y']
    self.assertEqual(set(np.unique(toilet)), {16, 17})

  def test_split_is_by_time_and_deterministic(self):
    splits = thermostat.room_splits(cache_dir=self.cache)
    for room, split in splits.items():
      self.assertLess(split['train'][0].max(), split['test'][0].min(), room)
      self.assertTrue(np.all(np.diff(split['train'][0]) == 1800), room)
    again = thermostat.load(cache_dir=self.cache)
    np.testing.assert_array_equal(pooled(again.test)[0],
                                  pooled(self.task.test)[0])

  def test_baselines(self):
    maes = thermostat.baseline_mae(cache_dir=self.cache)
    for room, train_mean in (('Bathroom', 2.060), ('Kitchen', 2.690),
                             ('Room1', 1.497), ('Room2', 2.096),
                             ('Room3', 1.609), ('Toilet', 0.504)):
      self.assertAlmostEqual(maes[room]['train_mean'], train_mean, places=3)
      self.assertLess(maes[room]['hour_of_week'], train_mean, room)
      self.assertLess(maes[room]['hour_of_week_median'],
                      maes[room]['hour_of_week'], room)


if __name__ == '__main__':
  absltest.main()
