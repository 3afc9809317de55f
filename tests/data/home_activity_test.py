"""Ordóñez smart-home activities: slicing, labels, features, files, cache."""

import collections
import os
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from fedmeta.data import DataError
from fedmeta.data import files
from fedmeta.data import home_activity as ha
from tests import testing

REAL = os.path.join(files.default_data_dir() or '', 'smart_home',
                    'ordonez_adl')
HEADERS = {
    'Sensors': ('Start time          \tEnd time            \tLocation\tType'
                '\t\tPlace', '--------------------\t--------------------\t'
                '--------\t--------\t-----'),
    'ADLs': ('Start time          \tEnd time            \tActivity\t',
             '--------------------\t--------------------\t--------'),
}
# Home A: CRLF and trailing TABs. Slices of 60 s from 10:00:00: 0 is all
# Toileting; in 1 Toileting has 30 s, Showering 40 s; in 2 Showering and
# Grooming have 30 s each (Showering starts first; its row is after
# Grooming's); in 3 Grooming has 11 s. Bed is active before the period and
# into slice 0, Toilet across slices 0-2, Basin from slice 2's last second
# into 3, Fridge for 0 s in slice 3. The next day (test) has one Breakfast
# slice at 09:00 with Seat.
SMALL = {
    'A_ADLs': ['2011-11-28 10:00:00\t\t2011-11-28 10:01:29\t\tToileting\t\t',
               '2011-11-28 10:02:30\t\t2011-11-28 10:03:10\t\tGrooming\t',
               '2011-11-28 10:01:20\t\t2011-11-28 10:02:29\t\tShowering\t',
               '2011-11-29 09:00:00\t\t2011-11-29 09:00:59\t\tBreakfast'],
    'A_Sensors': [
        '2011-11-28 09:58:00\t\t2011-11-28 10:00:05\t\tBed\t\t\tPressure\t'
        'Bedroom',
        '2011-11-28 10:00:30\t\t2011-11-28 10:02:05\t\tToilet\t\tFlush\t\t'
        'Bathroom\t',
        '2011-11-28 10:02:59\t\t2011-11-28 10:03:00\t\tBasin\t\tPIR\t\t\t'
        'Bathroom',
        '2011-11-28 10:03:30\t\t2011-11-28 10:03:30\t\tFridge\t\tMagnetic\t'
        'Kitchen',
        '2011-11-29 09:00:10\t\t2011-11-29 09:00:20\t\tSeat\t\tPressure\t'
        'Living'],
    # Home B: LF, a stray ' ' field, a trailing space, no final newline.
    'B_ADLs': ['2012-11-11 21:00:00\t\t2012-11-11 21:01:59\t \tDinner',
               '2012-11-12 08:00:00 \t2012-11-12 08:00:59\t\tBreakfast'],
    'B_Sensors': [
        '2012-11-11 21:00:10\t\t2012-11-11 21:00:15\t\tDoor\t\tPIR\t\t\t'
        'Kitchen',
        '2012-11-11 21:01:30\t\t2012-11-11 21:01:40\t\tDoor\t\tPIR\t\t\t'
        'Living',
        '2012-11-12 08:00:05\t\t2012-11-12 08:00:07\t\tFridge\t\tMagnetic\t'
        'Kitchen'],
}


def write_home_files(folder, rows=None):
  rows = {**SMALL, **(rows or {})}
  for name, lines in rows.items():
    home, kind = name.split('_')
    end = '\r\n' if home == 'A' else '\n'
    with open(f'{folder}/Ordonez{home}_{kind}.txt', 'w', newline='') as f:
      f.write(end.join(HEADERS[kind] + tuple(lines)))
      if home == 'A':
        f.write(end)


def temp_dir(test_case) -> str:
  # Not `create_tempdir`: under pytest, absl's flags are never parsed.
  folder = tempfile.TemporaryDirectory()
  test_case.addCleanup(folder.cleanup)
  return folder.name


def sensor_row(*active):
  row = np.zeros(len(ha.SENSORS), np.float32)
  for sensor in active:
    row[ha.SENSORS.index(sensor)] = 1.0
  return row


def features(hh_mm, *active):
  hours, minutes = hh_mm
  angle = 2 * np.pi * (hours * 3600 + minutes * 60) / 86400
  return np.concatenate([sensor_row(*active), [np.sin(angle), np.cos(angle)]])


def labels(*names):
  return [ha.ACTIVITIES.index(n) for n in names]


BED = ('Bed', 'Bedroom')
TOILET = ('Toilet', 'Bathroom')
BASIN = ('Basin', 'Bathroom')
SEAT = ('Seat', 'Living')
FRIDGE = ('Fridge', 'Kitchen')


class SmallFilesTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.folder = temp_dir(self)
    self.cache = temp_dir(self)
    write_home_files(self.folder)

  def load(self, **kwargs):
    return ha.load(self.folder, cache_dir=self.cache, **kwargs)

  def test_raw_features_and_labels_by_hand(self):
    task = self.load()
    self.assertEqual(list(task.train.client_ids), ['home_A', 'home_B'])
    self.assertEqual(list(task.test.client_ids), ['home_A', 'home_B'])
    a = testing.client_arrays_of(task.train, 'home_A')
    np.testing.assert_array_equal(
        a['y'], labels('Toileting', 'Showering', 'Showering', 'Grooming'))
    np.testing.assert_allclose(a['x'], [
        features((10, 0), BED, TOILET), features((10, 1), TOILET),
        features((10, 2), TOILET, BASIN), features((10, 3), BASIN, FRIDGE)],
        atol=1e-6)
    a_test = testing.client_arrays_of(task.test, 'home_A')
    np.testing.assert_array_equal(a_test['y'], labels('Breakfast'))
    np.testing.assert_allclose(a_test['x'], [features((9, 0), SEAT)],
                               atol=1e-6)
    b = testing.client_arrays_of(task.train, 'home_B')
    np.testing.assert_array_equal(b['y'], labels('Dinner', 'Dinner'))
    np.testing.assert_allclose(b['x'], [
        features((21, 0), ('Door', 'Kitchen')),
        features((21, 1), ('Door', 'Living'))], atol=1e-6)
    b_test = testing.client_arrays_of(task.test, 'home_B')
    np.testing.assert_array_equal(b_test['y'], labels('Breakfast'))
    np.testing.assert_allclose(
        b_test['x'], [features((8, 0), ('Fridge', 'Kitchen'))], atol=1e-6)
    self.assertEqual(task.train.element_type_structure['y'].dtype, tf.int32)
    self.assertEqual(task.train.element_type_structure['y'].shape, ())
    self.assertIsNone(task.examples_per_class)

  @parameterized.parameters(
      # Bed ends in slice 0 and Toilet starts there; Toilet ends in slice 2.
      ('changepoint', [(BED, TOILET), (), (TOILET, BASIN), (BASIN, FRIDGE)]),
      # Bed's end is before Toilet's start in slice 0.
      ('last', [(TOILET,), (TOILET,), (BASIN,), (FRIDGE,)]))
  def test_other_representations_by_hand(self, representation, active):
    x = testing.client_arrays_of(
        self.load(representation=representation).train, 'home_A')['x']
    np.testing.assert_array_equal(x[:, :len(ha.SENSORS)],
                                  [sensor_row(*s) for s in active])

  def test_idle_slices(self):
    task = self.load(unlabelled='idle')
    idle = len(ha.ACTIVITIES)
    a = testing.client_arrays_of(task.train, 'home_A')['y']
    # 10:00 to midnight is 840 slices, 4 with an activity.
    self.assertLen(a, 840)
    np.testing.assert_array_equal(a[:5], labels(
        'Toileting', 'Showering', 'Showering', 'Grooming') + [idle])
    self.assertEqual(int((a == idle).sum()), 836)
    # Midnight to the Breakfast slice at 09:00: 541 slices.
    a_test = testing.client_arrays_of(task.test, 'home_A')['y']
    self.assertLen(a_test, 541)
    self.assertEqual(a_test[-1], labels('Breakfast')[0])
    b = testing.client_arrays_of(task.train, 'home_B')['y']
    self.assertLen(b, 180)  # 21:00 to midnight.

  def test_slice_seconds(self):
    y = testing.client_arrays_of(self.load(slice_seconds=120).train,
                                 'home_A')['y']
    # 10:00-10:01: Toileting 90 s; 10:02-10:03: Grooming 41 s.
    np.testing.assert_array_equal(y, labels('Toileting', 'Grooming'))

  @parameterized.named_parameters(
      ('fields', 'A_ADLs', 1, '2011-11-28 10:02:30\t2011-11-28 10:03:10',
       r'OrdonezA_ADLs.txt: line 4: 2 fields, expected 3'),
      ('time', 'A_ADLs', 1, '2011-11-28 10:02:30\t2011-11-28 25:03:10\tLunch',
       r'OrdonezA_ADLs.txt: line 4: bad time'),
      ('order', 'A_ADLs', 2, '2011-11-28 10:02:30\t2011-11-28 10:02:10\tLunch',
       r'OrdonezA_ADLs.txt: line 5: ends \(2011-11-28 10:02:10\) before'),
      ('activity', 'A_ADLs', 0, '2011-11-28 10:00:00\t2011-11-28 10:01:00\t'
       'Cooking', r'OrdonezA_ADLs.txt: line 3: unknown Activity Cooking'),
      ('sensor', 'B_Sensors', 2, '2012-11-12 08:00:05\t2012-11-12 08:00:07\t'
       'Door\tPIR\tHall',
       r'OrdonezB_Sensors.txt: line 5: unknown Location/Place Door/Hall'))
  def test_malformed_row(self, name, index, row, message):
    lines = list(SMALL[name])
    lines[index] = row
    write_home_files(self.folder, {name: lines})
    with self.assertRaisesRegex(DataError, message) as raised:
      self.load()
    self.assertNotIn('\n', str(raised.exception))
    self.assertIn(self.folder, str(raised.exception))

  def test_bad_header_and_missing_file(self):
    with open(f'{self.folder}/OrdonezB_ADLs.txt', 'w') as f:
      f.write('\n'.join(SMALL['B_ADLs']))
    with self.assertRaisesRegex(DataError, r'OrdonezB_ADLs.txt: line 1: '
                                'expected the header'):
      self.load()
    os.remove(f'{self.folder}/OrdonezB_ADLs.txt')
    with self.assertRaisesRegex(DataError, r'OrdonezB_ADLs.txt: Ordonez data '
                                'file not found'):
      self.load()

  def test_known_bad_rows_are_dropped_in_their_file_only(self):
    bad = '\t\t'.join(sorted(ha.KNOWN_BAD_ROWS['OrdonezA_ADLs.txt'])[0])
    write_home_files(self.folder, {'A_ADLs': SMALL['A_ADLs'] + [bad]})
    self.assertEqual(testing.client_sizes(self.load().train), [4, 2])
    write_home_files(self.folder, {'B_ADLs': SMALL['B_ADLs'] + [bad]})
    with self.assertRaisesRegex(DataError,
                                r'OrdonezB_ADLs.txt: line 5: ends'):
      self.load()

  @parameterized.parameters(
      ({'slice_seconds': 0}, 'slice_seconds: must be'),
      ({'representation': 'counts'}, 'representation: must be'),
      ({'unlabelled': 'other'}, 'unlabelled: must be'),
      ({'test_fraction': 1.0}, 'test_fraction: must be'),
      # Two days each: 0.8 rounds to both.
      ({'test_fraction': 0.8}, 'test_fraction: 0.8 leaves home A no'))
  def test_bad_options(self, kwargs, message):
    with self.assertRaisesRegex(DataError, message):
      self.load(**kwargs)

  def test_cache_is_used_and_a_changed_file_is_read_again(self):
    first = testing.client_sizes(self.load().train)
    with mock.patch.object(ha, '_decode',
                           side_effect=AssertionError('parsed again')):
      self.assertEqual(testing.client_sizes(self.load().train), first)
      write_home_files(self.folder, {'B_ADLs': [
          '2012-11-11 21:00:00\t2012-11-11 21:00:59\tDinner',
          SMALL['B_ADLs'][1]]})
      with self.assertRaisesRegex(AssertionError, 'parsed again'):
        self.load()
    self.assertEqual(testing.client_sizes(self.load().train), [4, 1])

  @parameterized.parameters(('drop', 10), ('idle', 11))
  def test_model_runs_on_a_batch(self, unlabelled, classes):
    task = self.load(unlabelled=unlabelled)
    batch = next(task.train.create_tf_dataset_for_client('home_A').batch(4)
                 .as_numpy_iterator())
    model = task.model_fn()
    output, loss = testing.output_and_loss(model, batch)
    self.assertEqual(output.shape, (4, classes))
    self.assertTrue(np.isfinite(loss))


@absltest.skipUnless(os.path.isdir(REAL), 'needs ../shared/data/smart_home/'
                     'ordonez_adl')
class RealDataTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.events = {h: ha.read_home(REAL, h) for h in ha.HOMES}
    cls.slices = {h: ha.slice_home(e, slice_seconds=60, representation='raw')
                  for h, e in cls.events.items()}

  def test_rows_and_sensors(self):
    # A has 248 ADL rows, 3 of them `KNOWN_BAD_ROWS`.
    self.assertEqual({h: (len(e['sensor']), len(e['adl']))
                      for h, e in self.events.items()},
                     {'A': (409, 245), 'B': (2334, 493)})
    used = {h: {ha.SENSORS[i] for i in e['sensor']}
            for h, e in self.events.items()}
    self.assertLen(used['A'], 12)
    self.assertLen(used['B'], 12)
    self.assertEqual(used['A'] | used['B'], set(ha.SENSORS))
    self.assertEqual(used['A'] - used['B'], {('Cabinet', 'Bathroom'),
                                             ('Cooktop', 'Kitchen'),
                                             ('Toaster', 'Kitchen')})

  def test_slices_per_home_and_activity(self):
    counts = {h: collections.Counter(
        ha.ACTIVITIES[k] if k >= 0 else None for k in y.tolist())
              for h, (_, y, _) in self.slices.items()}
    self.assertEqual(counts['A'], {
        None: 846, 'Leaving': 1678, 'Toileting': 160, 'Showering': 109,
        'Sleeping': 7877, 'Breakfast': 124, 'Lunch': 324, 'Snack': 10,
        'Spare_Time/TV': 8615, 'Grooming': 131})
    self.assertEqual(counts['B'], {
        None: 3549, 'Leaving': 5269, 'Toileting': 172, 'Showering': 75,
        'Sleeping': 10761, 'Breakfast': 309, 'Lunch': 396, 'Dinner': 118,
        'Snack': 404, 'Spare_Time/TV': 8991, 'Grooming': 426})
    self.assertEqual([len(np.unique(d)) for _, _, d in self.slices.values()],
                     [14, 23])

  def test_clients_split_by_day(self):
    task = ha.load(REAL, cache_dir=temp_dir(self))
    self.assertEqual(task.train.element_type_structure['x'].shape, (17,))
    sizes = testing.client_sizes(task.train), testing.client_sizes(task.test)
    self.assertEqual(sizes, ([13586, 19654], [5442, 7267]))
    # Test days: round(0.3 * 14) = 4 of A's, round(0.3 * 23) = 7 of B's.
    for i, ((_, y, day), test_days) in enumerate(
        zip(self.slices.values(), (4, 7))):
      is_test = day >= np.unique(day)[-test_days]
      self.assertEqual(sizes[1][i], int((is_test & (y >= 0)).sum()))
      self.assertEqual(sizes[0][i], int((~is_test & (y >= 0)).sum()))
    again = ha.load(REAL, cache_dir=temp_dir(self))
    np.testing.assert_array_equal(
        testing.client_arrays_of(again.test, 'home_B')['x'],
        testing.client_arrays_of(task.test, 'home_B')['x'])
    idle = ha.load(REAL, unlabelled='idle', test_fraction=0.5,
                   cache_dir=temp_dir(self))
    self.assertEqual(
        sum(testing.client_sizes(idle.train) + testing.client_sizes(idle.test)),
        19874 + 30470)

  def test_representations_agree(self):
    for home, events in self.events.items():
      raw = self.slices[home][0]
      changes, _, _ = ha.slice_home(events, slice_seconds=60,
                                    representation='changepoint')
      last, _, _ = ha.slice_home(events, slice_seconds=60,
                                 representation='last')
      # A sensor that changes in a slice is active in it.
      self.assertTrue(np.all(changes <= raw))
      # Each home's first sensor event is in its first slice.
      np.testing.assert_array_equal(last[:, :len(ha.SENSORS)].sum(1), 1)


if __name__ == '__main__':
  absltest.main()
