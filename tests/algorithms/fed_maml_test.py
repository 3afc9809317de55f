"""Federated MAML: finite differences, hand-written centralized MAML."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import models
from fedmeta import runtime
from fedmeta.algorithms import meta_tf
from tests import testing

INNER_LR = 0.4


def float64_mlp():
  """A tanh MLP in float64, so finite differences are accurate."""
  rng = np.random.default_rng(3)
  initial = (rng.normal(size=(3, 4)), rng.normal(size=4) * 0.1,
             rng.normal(size=(4, 1)), np.zeros(1))

  @tf.function
  def predict_on_batch(weights, x, training=True):
    del training
    w1, b1, w2, b2 = weights[0]
    return tf.matmul(tf.tanh(tf.matmul(x, w1) + b1), w2) + b2

  @tf.function
  def loss(output, label, sample_weight=None):
    del sample_weight
    return tf.reduce_mean(tf.square(output - label))

  return tff.learning.models.FunctionalModel(
      initial_weights=(initial, ()), predict_on_batch_fn=predict_on_batch,
      loss_fn=loss,
      input_spec={'x': tf.TensorSpec([None, 3], tf.float64),
                  'y': tf.TensorSpec([None, 1], tf.float64)})


class MetaGradientTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.model = float64_mlp()
    x = rng.normal(size=(12, 3))
    y = np.sin(x.sum(axis=1, keepdims=True))
    support = np.arange(12) < 5
    self.dataset = tf.data.Dataset.from_tensor_slices(
        {'support': support, 'x': x, 'y': y}).batch(4)
    self.support = (x[support], y[support])
    self.query = (x[~support], y[~support])

  def meta_gradient(self, weights, first_order=False, inner_steps=2):
    adapter = models.build(self.model)
    return tf.function(lambda w: meta_tf.maml_gradient(
        adapter, (w, ()), self.dataset, inner_learning_rate=0.3,
        inner_steps=inner_steps, first_order=first_order).update)(weights)

  def objective(self, weights, inner_steps=2):
    """Query loss after the inner steps, by plain arithmetic on tensors."""
    model = self.model
    for _ in range(inner_steps):
      with tf.GradientTape() as tape:
        tape.watch(weights)
        loss = model.loss(model.predict_on_batch((weights, ()),
                                                 self.support[0]),
                          self.support[1])
      weights = [w - 0.3 * g for w, g in zip(weights, tape.gradient(
          loss, weights))]
    return float(model.loss(model.predict_on_batch((weights, ()),
                                                   self.query[0]),
                            self.query[1]))

  def test_second_order_equals_finite_differences(self):
    weights = [tf.constant(w) for w in self.model.initial_weights[0]]
    analytic = [g.numpy() for g in self.meta_gradient(weights)]
    eps = 1e-6
    for i, w in enumerate(weights):
      numeric = np.zeros(w.shape)
      for index in np.ndindex(*w.shape):
        delta = np.zeros(w.shape)
        delta[index] = eps
        plus = list(weights)
        minus = list(weights)
        plus[i] = w + delta
        minus[i] = w - delta
        numeric[index] = (self.objective(plus) - self.objective(minus)) / (
            2 * eps)
      rel = np.linalg.norm(analytic[i] - numeric) / np.linalg.norm(numeric)
      self.assertLess(rel, 1e-3, f'weight {i}')

  def test_first_order_drops_the_hessian(self):
    weights = [tf.constant(w) for w in self.model.initial_weights[0]]
    second = np.concatenate(
        [g.numpy().ravel() for g in self.meta_gradient(weights)])
    first = np.concatenate([g.numpy().ravel() for g in self.meta_gradient(
        weights, first_order=True)])
    self.assertGreater(np.linalg.norm(second - first) / np.linalg.norm(first),
                       1e-2)
    # FO-MAML's gradient is the query gradient at the adapted weights.
    adapted = [tf.constant(w) for w in weights]
    for _ in range(2):
      with tf.GradientTape() as tape:
        tape.watch(adapted)
        loss = self.model.loss(self.model.predict_on_batch(
            (adapted, ()), self.support[0]), self.support[1])
      adapted = [w - 0.3 * g
                 for w, g in zip(adapted, tape.gradient(loss, adapted))]
    with tf.GradientTape() as tape:
      tape.watch(adapted)
      loss = self.model.loss(self.model.predict_on_batch(
          (adapted, ()), self.query[0]), self.query[1])
    expected = np.concatenate(
        [g.numpy().ravel() for g in tape.gradient(loss, adapted)])
    np.testing.assert_allclose(first, expected, rtol=1e-10, atol=1e-12)


class FedMamlTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()
    self.model = testing.softmax_regression(hidden=5)
    self.initial = [np.asarray(w) for w in self.model.initial_weights[0]]

  def run_round(self, clients, first_order=False, inner_steps=1,
                weighting=algorithms.ClientWeighting.NUM_EXAMPLES):
    process = algorithms.build_fed_maml(
        self.model, inner_learning_rate=INNER_LR, inner_steps=inner_steps,
        first_order=first_order, client_weighting=weighting,
        server_optimizer=tff.learning.optimizers.build_sgdm(1.0))
    datasets = [testing.flagged_dataset(*c) for c in clients]
    weights, outputs = testing.run_rounds(process, datasets, 1)
    return [np.asarray(w) for w in weights.trainable], outputs[0].metrics

  def hand_gradient(self, client, **kwargs):
    x, y, support = client
    return testing.hand_maml_gradient(
        self.initial, (x[support], y[support]), (x[~support], y[~support]),
        INNER_LR, **kwargs)

  @parameterized.parameters(
      dict(first_order=False, inner_steps=1),
      dict(first_order=False, inner_steps=3),
      dict(first_order=True, inner_steps=2))
  def test_one_client_equals_centralized_maml_step(self, **kwargs):
    (client,) = testing.meta_clients([10])
    weights, metrics = self.run_round([client], **kwargs)
    expected = [w - g for w, g in
                zip(self.initial, self.hand_gradient(client, **kwargs))]
    self.assertLess(testing.max_abs_diff(weights, expected), 2e-6)
    self.assertEqual(metrics['client_work']['train']['num_examples'], 5)

  @parameterized.parameters(algorithms.ClientWeighting.NUM_EXAMPLES,
                            algorithms.ClientWeighting.UNIFORM)
  def test_clients_average_their_meta_gradients(self, weighting):
    clients = testing.meta_clients([10, 6, 15], seed=1)
    weights, _ = self.run_round(clients, weighting=weighting)
    queries = [float((~c[2]).sum()) for c in clients]
    shares = (np.asarray(queries) / sum(queries)
              if weighting == algorithms.ClientWeighting.NUM_EXAMPLES
              else np.full(3, 1 / 3))
    gradients = [self.hand_gradient(c) for c in clients]
    expected = [w - sum(s * g[i] for s, g in zip(shares, gradients))
                for i, w in enumerate(self.initial)]
    self.assertLess(testing.max_abs_diff(weights, expected), 2e-6)

  def test_client_without_support_gets_no_weight(self):
    good, bad = testing.meta_clients([10, 8], seed=2)
    bad = (bad[0], bad[1], np.zeros(8, bool))
    weights, metrics = self.run_round([good, bad])
    alone, _ = self.run_round([good])
    self.assertLess(testing.max_abs_diff(weights, alone), 1e-7)
    self.assertEqual(metrics['client_work']['clients_empty'], 1)

  def test_needs_a_functional_model(self):
    with self.assertRaisesRegex(models.ModelError, 'FunctionalModel'):
      algorithms.build_fed_maml(lambda: None)
    with self.assertRaisesRegex(ValueError, 'inner_steps: must be >= 1'):
      algorithms.build_fed_maml(self.model, inner_steps=0)

  def test_fo_maml_is_fed_maml_first_order(self):
    clients = [testing.flagged_dataset(*c)
               for c in testing.meta_clients([9, 12], seed=4)]
    kwargs = dict(inner_learning_rate=INNER_LR,
                  server_optimizer=tff.learning.optimizers.build_sgdm(1.0))
    fo, _ = testing.run_rounds(
        algorithms.build_fo_maml(self.model, **kwargs), clients, 2)
    ref, _ = testing.run_rounds(algorithms.build_fed_maml(
        self.model, first_order=True, **kwargs), clients, 2)
    self.assertEqual(testing.max_abs_diff(fo, ref), 0.0)


if __name__ == '__main__':
  absltest.main()
