"""TFF's federated EMNIST path, on a small SQLite file in TFF's format."""

import os
import sqlite3
import tempfile

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from fedmeta.data import DataError
from fedmeta.data import emnist
from tests import testing


def write_database(folder: str, clients: dict[str, int]) -> None:
  """`emnist_all.sqlite` as TFF's download holds it, `n` digits per client."""
  connection = sqlite3.connect(os.path.join(folder, emnist.FILE))
  connection.execute('CREATE TABLE examples (split_name TEXT, client_id TEXT, '
                     'serialized_example_proto BLOB)')
  connection.execute('CREATE TABLE client_metadata (client_id TEXT, '
                     'split_name TEXT, num_examples INTEGER)')
  for split in ('digits_only_train', 'digits_only_test'):
    for client, n in clients.items():
      for i in range(n):
        pixels = np.ones(784, np.float32)  # TFF: background = 1.
        pixels[i] = 0.0
        proto = tf.train.Example(features=tf.train.Features(feature={
            'pixels': tf.train.Feature(
                float_list=tf.train.FloatList(value=pixels)),
            'label': tf.train.Feature(int64_list=tf.train.Int64List(
                value=[i % 10]))}))
        connection.execute('INSERT INTO examples VALUES (?, ?, ?)',
                           (split, client, proto.SerializeToString()))
      connection.execute('INSERT INTO client_metadata VALUES (?, ?, ?)',
                         (client, split, n))
  connection.commit()
  connection.close()


class EmnistTest(absltest.TestCase):

  def test_loads_tffs_file_without_download(self):
    folder = tempfile.mkdtemp()
    write_database(folder, {'f0000_14': 3, 'f0001_41': 5})
    task = emnist.load(folder, download=False)
    self.assertEqual(sorted(task.train.client_ids), ['f0000_14', 'f0001_41'])
    self.assertEqual(testing.client_sizes(task.train), [3, 5])
    client = testing.client_arrays_of(task.test, 'f0001_41')
    self.assertEqual(client['x'].shape, (5, 28, 28, 1))
    # Inverted to ink = 1: example i has ink at pixel i only.
    np.testing.assert_array_equal(client['x'].reshape(5, -1).sum(1), 1.0)
    self.assertEqual(client['x'][2].reshape(-1)[2], 1.0)
    np.testing.assert_array_equal(client['y'], [0, 1, 2, 3, 4])
    self.assertIsNotNone(task.model_fn())

  def test_missing_file_without_download(self):
    with self.assertRaisesRegex(DataError,
                                'emnist_all.sqlite: EMNIST database'):
      emnist.load(tempfile.mkdtemp(), download=False)

  def test_malformed_file(self):
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, emnist.FILE), 'wb') as f:
      f.write(b'not sqlite')
    with self.assertRaisesRegex(DataError, 'emnist_all.sqlite: cannot load'):
      emnist.load(folder, download=False)


if __name__ == '__main__':
  absltest.main()
