"""Local-only models equal gradient descent by hand on each client's data."""

import json
import os
import tempfile

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from tests.experiments import centralized_maml_test
from fedmeta import data
from tests.experiments import run_test

ARGS = [*run_test.SMALL, '--rounds=1', '--personalization_eval',
        '--eval_support=train', '--eval_inner_steps=3',
        '--inner_learning_rate=0.5']


def _arrays(client_data, client_id):
  batch = next(client_data.create_tf_dataset_for_client(client_id)
               .batch(10_000).as_numpy_iterator())
  return batch['x'], batch['y']


def _loss_and_accuracy(weights, x, y):
  kernel1, bias1, kernel2, bias2 = weights
  logits = np.maximum(x @ kernel1 + bias1, 0) @ kernel2 + bias2
  loss = tf.keras.losses.sparse_categorical_crossentropy(
      y, logits, from_logits=True).numpy().mean()
  return loss, np.mean(np.argmax(logits, 1) == y)


class LocalBaselineTest(absltest.TestCase):

  def test_each_client_descends_from_the_initial_weights(self):
    root = tempfile.mkdtemp()
    result = centralized_maml_test._run(  # pylint: disable=protected-access
        'fedmeta.experiments.reproduce.local_baseline', *ARGS,
        f'--root_output_dir={root}', '--experiment_name=local')
    self.assertEqual(result.returncode, 0, result.stderr)
    out = os.path.join(root, 'local')
    with open(os.path.join(out, 'eval_clients.json')) as f:
      clients = json.load(f)
    # The process never moves: the saved weights are the initial ones.
    with np.load(os.path.join(out, 'model_weights.npz')) as npz:
      initial = [npz[f'trainable/{i}'] for i in range(4)]
    task = data.load('digits', num_clients=6, seed=0)
    self.assertEqual(sorted(clients), sorted(task.test.client_ids))
    for cid in task.test.client_ids:
      x, y = _arrays(task.train, cid)
      weights = [tf.Variable(w) for w in initial]
      for _ in range(3):  # Full-batch steps on the client's training data.
        with tf.GradientTape() as tape:
          kernel1, bias1, kernel2, bias2 = weights
          logits = tf.nn.relu(x @ kernel1 + bias1) @ kernel2 + bias2
          loss = tf.reduce_mean(
              tf.keras.losses.sparse_categorical_crossentropy(
                  y, logits, from_logits=True))
        for w, g in zip(weights, tape.gradient(loss, weights)):
          w.assign_sub(0.5 * g)
      test_x, test_y = _arrays(task.test, cid)
      for stage, stage_weights in (('before', initial),
                                   ('after', [w.numpy() for w in weights])):
        loss, accuracy = _loss_and_accuracy(stage_weights, test_x, test_y)
        self.assertAlmostEqual(clients[cid][stage]['loss'], loss, places=5)
        self.assertAlmostEqual(
            clients[cid][stage]['sparse_categorical_accuracy'], accuracy,
            places=6)
    with open(os.path.join(out, 'summary.json')) as f:
      final = json.load(f)['final_metrics']
    self.assertAlmostEqual(
        final['eval/after/sparse_categorical_accuracy/mean'],
        np.mean([c['after']['sparse_categorical_accuracy']
                 for c in clients.values()]), places=6)

  def test_refuses_flags_under_which_nothing_is_fit(self):
    root = tempfile.mkdtemp()
    for args, error in (
        ([*ARGS, '--rounds=2'], 'error: --rounds: local models are fit at '
         'evaluation; give --rounds=1'),
        ([*ARGS, '--aggregation=median'], 'error: --aggregation: local '
         'models aggregate nothing'),
        ([a for a in ARGS if a not in ('--personalization_eval',
                                       '--eval_support=train')],
         'error: --personalization_eval: local models are fit by')):
      result = centralized_maml_test._run(  # pylint: disable=protected-access
          'fedmeta.experiments.reproduce.local_baseline', *args,
          f'--root_output_dir={root}')
      self.assertEqual(result.returncode, 2, result.stderr)
      self.assertStartsWith(result.stderr.strip(), error)


if __name__ == '__main__':
  absltest.main()
