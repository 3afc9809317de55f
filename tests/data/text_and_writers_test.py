"""Shakespeare roles and FEMNIST writers from the real files."""

import os
import tempfile

from absl.testing import absltest
import numpy as np

from fedmeta import algorithms
from fedmeta import runtime
from fedmeta.data import DataError
from fedmeta.data import femnist
from fedmeta.data import shakespeare
from fedmeta.data import support_query
from tests import testing

DATA = testing.data_dir()


def write(text: str) -> str:
  folder = tempfile.mkdtemp()
  with open(os.path.join(folder, shakespeare.FILE), 'w') as f:
    f.write(text)
  return folder


class ShakespeareTest(absltest.TestCase):

  def test_roles_and_windows(self):
    task = shakespeare.load(DATA, source='tiny')
    self.assertLen(task.train.client_ids, 192)
    self.assertEqual(list(task.train.client_ids), list(task.test.client_ids))
    self.assertIn('MENENIUS', task.train.client_ids)
    spec = task.train.element_type_structure
    self.assertEqual((spec['x'].shape, spec['y'].shape), ((80,), ()))
    first = next(iter(task.train.create_tf_dataset_for_client('MENENIUS')))
    text = ''.join(shakespeare.VOCABULARY[i] for i in first['x'].numpy())
    self.assertEqual(text[:28], "What work's, my countrymen, ")
    self.assertEqual(shakespeare.VOCABULARY[int(first['y'])], 'r')

  def test_train_and_test_text_do_not_overlap(self):
    text = ('\n\nA:\n' + 'x' * 90 + '\n\nB:\n' + 'y' * 600 + '\n'
            + '\n\nA:\n' + 'z' * 500 + '\n')
    task = shakespeare.load(write(text), source='tiny', min_lines=1)
    self.assertEqual(list(task.train.client_ids), ['A', 'B'])
    a_train = testing.client_arrays_of(task.train, 'A')
    a_test = testing.client_arrays_of(task.test, 'A')
    # Role A's text: 90 x, newline, 500 z = 591 chars, cut at 473.
    self.assertLen(a_train['y'], 473 - 80)
    self.assertLen(a_test['y'], 591 - 473 - 80)
    self.assertTrue(np.all(a_test['x'] == shakespeare.VOCABULARY.index('z')))

  def test_stride_keeps_every_strideth_window(self):
    every = testing.client_arrays_of(
        shakespeare.load(DATA, source='tiny').train, 'MENENIUS')
    apart = testing.client_arrays_of(
        shakespeare.load(DATA, source='tiny', stride=81).train, 'MENENIUS')
    self.assertLen(apart['y'], (len(every['y']) - 1) // 81 + 1)
    np.testing.assert_array_equal(apart['x'], every['x'][::81])
    np.testing.assert_array_equal(apart['y'], every['y'][::81])
    # Non-overlapping: the windows and their targets tile the role's text.
    text = np.concatenate([every['x'][0], every['y']])
    tiles = np.concatenate([apart['x'], apart['y'][:, None]], axis=1)
    np.testing.assert_array_equal(tiles.ravel(), text[:tiles.size])
    with self.assertRaisesRegex(DataError, 'stride: must be >= 1, got 0'):
      shakespeare.load(DATA, source='tiny', stride=0)

  def test_heldout_roles_are_disjoint(self):
    task = shakespeare.load(DATA, source='tiny', heldout_roles=0.1, seed=1)
    self.assertEmpty(set(task.train.client_ids) & set(task.test.client_ids))
    self.assertLen(task.test.client_ids, 20)

  def test_model_equals_keras_lstm(self):
    model = shakespeare.model_fn()
    keras_model = shakespeare.keras_model()
    keras_model.set_weights(list(model.initial_weights[0]))
    x = np.random.default_rng(0).integers(
        0, shakespeare.VOCABULARY_SIZE, (5, shakespeare.SEQUENCE_LENGTH))
    np.testing.assert_allclose(
        model.predict_on_batch(model.initial_weights, x.astype(np.int32)),
        keras_model(x), atol=1e-6)

  def test_model_trains_federated_and_meta_learns(self):
    # TFF's functional_model_from_keras cannot differentiate through the
    # LSTM's while loop ("You must feed a value for placeholder tensor").
    task = shakespeare.load(DATA)
    clients = [task.train.create_tf_dataset_for_client(c).take(6)
               for c in task.train.client_ids[:2]]
    runtime.set_local_context()
    process = algorithms.build_fed_avg(task.model_fn())
    output = process.next(process.initialize(), [c.batch(3) for c in clients])
    self.assertEqual(output.metrics['client_work']['train']['num_examples'],
                     12)
    self.assertTrue(np.isfinite(output.metrics['client_work']['train']['loss']))
    meta = algorithms.build_fed_maml(task.model_fn(), inner_learning_rate=0.1)
    split = [support_query.split(c, support_fraction=0.5, seed=[0, i]).batch(6)
             for i, c in enumerate(clients)]
    output = meta.next(meta.initialize(), split)
    self.assertTrue(np.isfinite(output.metrics['client_work']['train']['loss']))

  def test_vocabulary(self):
    self.assertLen(shakespeare.VOCABULARY, 80)
    np.testing.assert_array_equal(shakespeare.encode('Ab$\n'), [25, 54, 80, 0])

  def test_text_without_speakers_is_an_error(self):
    with self.assertRaisesRegex(DataError, 'tinyshakespeare.txt: no speaker'):
      shakespeare.load(write('just some prose\nwithout names\n'), source='tiny')
    with self.assertRaisesRegex(DataError,
                                'tinyshakespeare.txt: Shakespeare text not'):
      shakespeare.load(tempfile.mkdtemp(), source='tiny')


class FemnistTest(absltest.TestCase):

  def test_writers(self):
    task = femnist.load(DATA)
    self.assertLen(task.train.client_ids, 105)
    self.assertLen(task.test.client_ids, 184)
    self.assertLen(set(task.test.client_ids) - set(task.train.client_ids), 79)
    self.assertEqual(sum(testing.client_sizes(task.train)), 14_708)
    client = testing.client_arrays_of(task.train, task.train.client_ids[0])
    self.assertEqual(client['x'].shape[1:], (28, 28, 1))
    # Ink is 1 and the background 0: most pixels are background.
    self.assertLess(np.median(client['x']), 0.05)
    self.assertTrue(np.all((client['y'] >= 0) & (client['y'] < 62)))

  def test_test_writers_seen_and_unseen_split_all(self):
    train_ids = set(femnist.load(DATA).train.client_ids)
    seen = femnist.load(DATA, test_writers='seen').test.client_ids
    unseen = femnist.load(DATA, test_writers='unseen').test.client_ids
    self.assertEqual(set(seen), train_ids)
    self.assertLen(unseen, 79)
    self.assertEmpty(set(unseen) & train_ids)
    self.assertEqual(sorted([*seen, *unseen]),
                     sorted(femnist.load(DATA).test.client_ids))
    with self.assertRaisesRegex(DataError, '^test_writers: must be one of'):
      femnist.load(DATA, test_writers='new')

  def test_lenet_is_pfedhns_target_size(self):
    model = femnist.load(DATA, model='lenet').model_fn()
    self.assertEqual(sum(int(np.prod(w.shape))
                         for w in model.initial_weights[0]), 90_242)
    with self.assertRaisesRegex(DataError, '^model: must be one of'):
      femnist.load(DATA, model='resnet')

  def test_malformed_file(self):
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, femnist.FILE)
    np.savez(path, x=np.zeros([3, 28, 28], np.uint8), y=np.zeros(3))
    with self.assertRaisesRegex(DataError, "missing arrays \\['user', 'split'"):
      femnist.load(folder)
    with open(path, 'wb') as f:
      f.write(b'PK\x03\x04 truncated')
    with self.assertRaisesRegex(DataError, 'femnist_leaf_subset.npz: not a'):
      femnist.load(folder)


if __name__ == '__main__':
  absltest.main()
