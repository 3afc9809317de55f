"""Heart disease (four hospitals, FLamby's preprocessing) and credit default."""

import os
import shutil
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from fedmeta.data import credit
from fedmeta.data import DataError
from fedmeta.data import heart_disease
from tests import testing

DATA = testing.data_dir()
HEART = os.path.join(DATA, 'heart_disease')


def pooled(client_data):
  arrays = [testing.client_arrays_of(client_data, c)
            for c in client_data.client_ids]
  return (np.concatenate([a['x'] for a in arrays]),
          np.concatenate([a['y'] for a in arrays]))


class HeartDiseaseTest(parameterized.TestCase):

  def test_raw_rows_and_flamby_counts(self):
    raw = [len(heart_disease.read_hospital(
        f'{HEART}/processed.{h}.data')) for h in heart_disease.HOSPITALS]
    self.assertEqual(raw, [303, 294, 123, 200])
    task = heart_disease.load(DATA)
    self.assertEqual(list(task.train.client_ids), list(heart_disease.HOSPITALS))
    # FLamby's Fed-Heart-Disease: 740 rows, train 199/172/30/85,
    # test 104/89/16/45.
    self.assertEqual(testing.client_sizes(task.train), [199, 172, 30, 85])
    self.assertEqual(testing.client_sizes(task.test), [104, 89, 16, 45])
    self.assertEqual(task.train.element_type_structure['x'].shape, (13,))

  def test_features(self):
    x, y = heart_disease.features_and_labels(np.asarray(
        [[63, 1, 1, 145, 233, 1, 2, 150, 0, 2.3, 3, 0, 6, 0],
         [67, 1, 4, 160, 286, 0, 2, 108, 1, 1.5, 2, 3, 3, 2],
         [67, 1, 4, np.nan, 286, 0, 2, 108, 1, 1.5, 2, 3, 3, 2],
         [41, 0, 2, 130, 204, 0, 0, 172, 0, 1.4, np.nan, np.nan, np.nan, 0]]))
    # Row 3 has a missing kept value; row 4 only misses dropped columns.
    np.testing.assert_array_equal(y[:, 0], [0, 1, 0])
    np.testing.assert_array_equal(
        x[0], [63, 1, 145, 233, 1, 150, 0, 2.3, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(
        x[2], [41, 0, 130, 204, 0, 172, 0, 1.4, 1, 0, 0, 0, 0])

  @parameterized.parameters('federated', 'client')
  def test_standardization(self, how):
    task = heart_disease.load(DATA, standardize=how)
    if how == 'federated':
      x, _ = pooled(task.train)
      np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
      np.testing.assert_allclose(x.std(0)[x.std(0) > 0], 1, atol=1e-4)
    else:
      for c in task.train.client_ids:
        x = testing.client_arrays_of(task.train, c)['x']
        np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)

  def test_pooled_and_local_training_clients(self):
    federated = heart_disease.load(DATA)
    pooled_task = heart_disease.load(DATA, train_on='pooled')
    self.assertEqual(list(pooled_task.train.client_ids), ['pooled'])
    np.testing.assert_array_equal(
        testing.client_arrays_of(pooled_task.train, 'pooled')['x'],
        pooled(federated.train)[0])
    local = heart_disease.load(DATA, train_on='va')
    self.assertEqual(list(local.train.client_ids), ['va'])
    np.testing.assert_array_equal(
        testing.client_arrays_of(local.train, 'va')['x'],
        testing.client_arrays_of(federated.train, 'va')['x'])
    for task in (pooled_task, local):  # Tested where the federated run is.
      self.assertEqual(testing.client_sizes(task.test), [104, 89, 16, 45])
    with self.assertRaisesRegex(DataError, 'train_on: must be'):
      heart_disease.load(DATA, train_on='mayo')

  def test_bad_file(self):
    folder = tempfile.mkdtemp()
    for h in heart_disease.HOSPITALS:
      shutil.copy(f'{HEART}/processed.{h}.data', folder)
    with open(f'{folder}/processed.va.data', 'a') as f:
      f.write('1,2,3\n')
    with self.assertRaisesRegex(DataError,
                                r'processed.va.data: line 201: 3 fields'):
      heart_disease.load(folder)
    os.remove(f'{folder}/processed.hungarian.data')
    with self.assertRaisesRegex(DataError, 'processed.hungarian.data: heart'):
      heart_disease.load(folder)


class CreditTest(parameterized.TestCase):

  def test_education_clients_cover_every_row(self):
    task = credit.load(DATA)
    self.assertEqual(list(task.train.client_ids),
                     ['graduate_school', 'university', 'high_school', 'other'])
    sizes = np.add(testing.client_sizes(task.train),
                   testing.client_sizes(task.test))
    # EDUCATION 1: 10,585; 2: 14,030; 3: 4,917; 0/4/5/6: 468.
    np.testing.assert_array_equal(sizes, [10585, 14030, 4917, 468])
    x, y = pooled(task.train)
    self.assertEqual(x.shape, (24000, 23))
    self.assertAlmostEqual(float(y.mean()), 0.221, delta=0.01)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)

  @parameterized.parameters('marriage', 'dirichlet', 'iid')
  def test_other_partitions(self, how):
    task = credit.load(DATA, partition_by=how, num_clients=7, alpha=0.3)
    sizes = np.add(testing.client_sizes(task.train),
                   testing.client_sizes(task.test))
    self.assertEqual(sizes.sum(), 30000)
    self.assertLen(sizes, 3 if how == 'marriage' else 7)

  def test_bad_input(self):
    folder = tempfile.mkdtemp()
    with open(f'{folder}/{credit.FILE}', 'w') as f:
      f.write('"ID","LIMIT_BAL"\n1,2\n')
    with self.assertRaisesRegex(DataError, 'UCI_Credit_Card.csv: expected 25'):
      credit.load(folder)
    with self.assertRaisesRegex(DataError, 'partition_by'):
      credit.load(DATA, partition_by='age')


if __name__ == '__main__':
  absltest.main()
