"""The task registry, `describe`, data-dir resolution and the decode cache."""

import os
import tempfile

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from fedmeta import data
from fedmeta.data import files

# The runner's --task values (issue #8): exactly these names.
TASK_NAMES = ['sinusoid', 'synthetic', 'omniglot', 'femnist', 'shakespeare',
              'heart_disease', 'credit', 'digits', 'emnist',
              'home_activity', 'thermostat', 'wisdm']


class RegistryTest(absltest.TestCase):

  def test_names(self):
    self.assertEqual(list(data.TASKS), TASK_NAMES)
    self.assertEqual(list(data.LOADERS), TASK_NAMES)

  def test_unknown_task(self):
    with self.assertRaisesRegex(data.DataError, "task: unknown 'mnist'; one "
                                'of sinusoid, synthetic.* or tfds:<dataset>'):
      data.load('mnist')
    with self.assertRaisesRegex(data.DataError, "task: 'tfds:' names no "
                                'dataset; e.g. tfds:mnist'):
      data.load('tfds:')
    self.assertTrue(data.is_task_name('tfds:mnist'))
    self.assertFalse(data.is_task_name('tfds:'))
    self.assertFalse(data.is_task_name('mnist'))

  def test_tfds_names_reach_the_tfds_loader(self):
    with self.assertRaisesRegex(data.DataError,
                                "name: no TFDS dataset 'no_such_dataset_xyz'"):
      data.load('tfds:no_such_dataset_xyz')

  def test_describe(self):
    text = data.describe(data.load('heart_disease'))
    self.assertEqual(text.splitlines()[1],
                     '  train: 4 clients, 486 examples, per client min 30 / '
                     'median 128.5 / max 199, 2 labels, label skew 0.235')
    self.assertIn('elements: x float32 [13], y float32 [1]', text)
    text = data.describe(data.load('sinusoid', num_clients=5000),
                         max_clients=20)
    self.assertIn('train: 5000 clients (20 sampled), 400 examples', text)
    self.assertNotIn('label skew', text)
    # Setpoints are whole degrees, but not classes.
    self.assertNotIn('labels', data.describe(data.load('thermostat')))

  def test_describe_skew_grows_as_alpha_shrinks(self):
    def skew(alpha):
      line = data.describe(data.load('digits', alpha=alpha)).splitlines()[1]
      return float(line.rsplit(' ', 1)[1])
    self.assertLess(skew(100.0), 0.15)
    self.assertGreater(skew(0.1), skew(1.0))
    self.assertGreater(skew(1.0), skew(100.0))

  def test_data_dir_errors(self):
    with self.assertRaisesRegex(data.DataError,
                                'data_dir: /nonexistent does not exist'):
      data.load('femnist', data_dir='/nonexistent')


class CacheTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.folder = tempfile.mkdtemp()
    self.source = os.path.join(self.folder, 'source.txt')
    self.write('abc')
    self.calls = 0

  def write(self, text):
    with open(self.source, 'w') as f:
      f.write(text)

  def build(self):
    self.calls += 1
    with open(self.source) as f:
      return {'n': np.asarray(len(f.read())), 'names': np.asarray(['a', 'b'])}

  def cached(self, cache_dir, **params):
    return files.cached('t', [self.source], params, self.build,
                        cache_dir=cache_dir)

  def test_reused_until_the_source_or_parameters_change(self):
    cache = os.path.join(self.folder, 'cache')
    self.assertEqual(int(self.cached(cache)['n']), 3)
    self.assertEqual(list(self.cached(cache)['names']), ['a', 'b'])
    self.assertEqual(self.calls, 1)
    self.cached(cache, size=28)
    self.assertEqual(self.calls, 2)
    self.write('abcd')
    self.assertEqual(int(self.cached(cache)['n']), 4)
    self.assertEqual(self.calls, 3)
    self.assertEmpty([f for f in os.listdir(cache) if f.endswith('.tmp')])

  def test_corrupt_cache_file_is_rebuilt(self):
    cache = os.path.join(self.folder, 'cache')
    self.cached(cache)
    (name,) = os.listdir(cache)
    with open(os.path.join(cache, name), 'wb') as f:
      f.write(b'PK\x03\x04 torn')
    self.assertEqual(int(self.cached(cache)['n']), 3)
    self.assertEqual(self.calls, 2)
    self.cached(cache)
    self.assertEqual(self.calls, 2)

  def test_unwritable_cache_only_costs_decoding(self):
    self.assertEqual(int(self.cached(self.source)['n']), 3)  # A file.
    self.assertEqual(int(self.cached(self.source)['n']), 3)
    self.assertEqual(self.calls, 2)


if __name__ == '__main__':
  absltest.main()


class ModelsFitElementsTest(absltest.TestCase):

  def test_each_tasks_model_takes_its_elements(self):
    for name in TASK_NAMES:
      if name == 'emnist':  # Needs TFF's file; emnist_test covers it.
        continue
      with self.subTest(name):
        task = data.load(name)
        batch = next(task.train.create_tf_dataset_for_client(
            task.train.client_ids[0]).batch(2).as_numpy_iterator())
        model = task.model_fn()
        # Keras-backed functional models run only in graphs.
        with tf.Graph().as_default() as graph:
          output = model.predict_on_batch(
              model.initial_weights, batch['x'], training=False)
          loss = model.loss(output, batch['y'])
          with tf.compat.v1.Session(graph=graph) as session:
            output, loss = session.run([output, loss])
        self.assertEqual(output.shape[0], 2)
        self.assertTrue(np.isfinite(loss))

  def test_metric_names_are_stable_across_builds(self):
    # Keras numbers repeated AUC metrics ('auc_1'); the evaluation model is
    # built after the training one and must report the same names.
    task = data.load('credit')
    built = [task.model_fn() for _ in range(2)]
    with tf.Graph().as_default():
      names = [list(model.initialize_metrics_state()) for model in built]
    self.assertEqual(names[0], names[1])
    self.assertEqual(names[0], ['binary_accuracy', 'auc'])
