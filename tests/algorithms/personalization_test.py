"""Personalization evaluation: per-client query metrics before and after
adaptation, summarized across clients."""

from absl.testing import absltest
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import runtime
from fedmeta.algorithms import meta_sgd
from tests import testing


def adapted_loss(weights, client, lr, steps):
  x, y, s = client
  weights = [tf.constant(w) for w in weights]
  for _ in range(steps):
    with tf.GradientTape() as tape:
      tape.watch(weights)
      loss = testing.mlp_loss(weights, x[s], y[s])
    weights = [w - lr * g for w, g in zip(weights, tape.gradient(loss,
                                                                  weights))]
  return float(testing.mlp_loss(weights, x[~s], y[~s]))


class PersonalizationTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()
    self.model = testing.softmax_regression(hidden=5)
    self.initial = tff.learning.models.ModelWeights(
        tuple(self.model.initial_weights[0]), ())
    self.clients = testing.meta_clients([10, 7, 14, 9, 12], seed=6)
    self.datasets = [testing.flagged_dataset(*c) for c in self.clients]

  def test_before_and_after_by_hand(self):
    evaluate = algorithms.build_personalization_eval(
        self.model, inner_learning_rate=0.5, inner_steps=2)
    summary = evaluate(self.initial, self.datasets)
    self.assertEqual(summary['num_clients'], 5)
    for stage, steps in (('before', 0), ('after', 2)):
      losses = [adapted_loss(self.initial.trainable, c, 0.5, steps)
                for c in self.clients]
      stats = summary[stage]['loss']
      self.assertAlmostEqual(stats['mean'], np.mean(losses), places=5)
      for q in (10, 50, 90):
        self.assertAlmostEqual(stats[f'p{q}'], np.percentile(losses, q),
                               places=5)
      self.assertIn('sparse_categorical_accuracy', summary[stage])

  def test_learned_rates(self):
    weights = meta_sgd.extended_weights(self.initial, 0.5)
    learned = algorithms.build_personalization_eval(
        self.model, inner_steps=2, learned_rates=True)(weights, self.datasets)
    scalar = algorithms.build_personalization_eval(
        self.model, inner_learning_rate=0.5, inner_steps=2)(
            self.initial, self.datasets)
    self.assertAlmostEqual(learned['after']['loss']['mean'],
                           scalar['after']['loss']['mean'], places=6)

  def test_clients_without_query_are_left_out(self):
    x, y, _ = self.clients[0]
    all_support = testing.flagged_dataset(x, y, np.ones(len(y), bool))
    summary = algorithms.build_personalization_eval(self.model)(
        self.initial, self.datasets[1:] + [all_support])
    self.assertEqual(summary['num_clients'], 4)


if __name__ == '__main__':
  absltest.main()
