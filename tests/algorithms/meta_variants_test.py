"""Reptile, Meta-SGD and Per-FedAvg reduce to FedAvg and MAML as the papers
say, and match hand-written computations."""

import functools

from absl.testing import absltest
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import models
from fedmeta import runtime
from fedmeta.algorithms import meta_sgd
from fedmeta.algorithms import specs
from tests import testing

SGD1 = lambda: tff.learning.optimizers.build_sgdm(1.0)


class MetaVariantsTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()
    self.model = testing.softmax_regression(hidden=5)
    self.initial = [np.asarray(w) for w in self.model.initial_weights[0]]
    self.clients = testing.meta_clients([10, 7, 14], seed=5)
    self.datasets = [testing.flagged_dataset(*c) for c in self.clients]

  def test_tasks_per_batch_count_as_clients_of_one_task(self):
    # One client holding the three tasks, a batch each, against three
    # clients of one task: both weight the tasks by their examples.
    one_client = [functools.reduce(
        lambda a, b: a.concatenate(b),
        [d.unbatch().batch(100) for d in self.datasets])]
    for build in (algorithms.build_fed_maml, algorithms.build_meta_sgd,
                  algorithms.build_reptile):
      kwargs = dict(inner_learning_rate=0.3, inner_steps=2,
                    server_optimizer=SGD1())
      together, (output,) = testing.run_rounds(
          build(self.model, task_per_batch=True, **kwargs), one_client, 1)
      apart, (expected,) = testing.run_rounds(
          build(self.model, **kwargs), self.datasets, 1)
      self.assertLess(testing.max_abs_diff(together, apart), 1e-6, build)
      train = lambda o: o.metrics['client_work']['train']
      self.assertEqual(train(output)['num_examples'],
                       train(expected)['num_examples'])
      self.assertAlmostEqual(float(train(output)['loss']),
                             float(train(expected)['loss']), places=5)

  def test_reptile_one_step_equals_fed_avg_one_local_step(self):
    reptile, _ = testing.run_rounds(algorithms.build_reptile(
        self.model, inner_learning_rate=0.3, inner_steps=1,
        server_optimizer=SGD1()), self.datasets, 2)
    # FedAvg with one local step: one batch holding the support set.
    support_only = [testing.as_dataset(x[s], y[s], batch_size=100)
                    for x, y, s in self.clients]
    fed_avg, _ = testing.run_rounds(algorithms.build_fed_avg(
        self.model, client_optimizer=tff.learning.optimizers.build_sgdm(0.3),
        server_optimizer=SGD1()), support_only, 2)
    self.assertLess(testing.max_abs_diff(reptile.trainable,
                                         fed_avg.trainable), 1e-6)

  def test_reptile_moves_toward_adapted_weights(self):
    weights, _ = testing.run_rounds(algorithms.build_reptile(
        self.model, inner_learning_rate=0.3, inner_steps=3,
        server_optimizer=tff.learning.optimizers.build_sgdm(0.5)),
        self.datasets[:1], 1)
    x, y, s = self.clients[0]
    adapted = [tf.constant(w) for w in self.initial]
    for _ in range(3):
      with tf.GradientTape() as tape:
        tape.watch(adapted)
        loss = testing.mlp_loss(adapted, x[s], y[s])
      adapted = [w - 0.3 * g
                 for w, g in zip(adapted, tape.gradient(loss, adapted))]
    expected = [w + 0.5 * (a - w) for w, a in zip(self.initial, adapted)]
    self.assertLess(testing.max_abs_diff(weights.trainable, expected), 1e-6)

  def _hand_adam(self, weights, x, y, *, rate, steps, rows_of_step):
    """Adam with beta_1 = 0 (Nichol et al.'s), fresh, written out in numpy
    on `mlp_loss`: v <- b2 v + (1 - b2) g^2, w <- w - rate sqrt(1 - b2^t)
    g / (sqrt(v) + eps)."""
    beta_2, epsilon = 0.999, 1e-8
    weights = [np.asarray(w, np.float64) for w in weights]
    second = [np.zeros_like(w) for w in weights]
    for t in range(1, steps + 1):
      rows = rows_of_step(t - 1)
      variables = [tf.constant(w) for w in weights]
      with tf.GradientTape() as tape:
        tape.watch(variables)
        loss = testing.mlp_loss(variables, x[rows].astype(np.float64),
                                y[rows])
      for i, g in enumerate(tape.gradient(loss, variables)):
        g = g.numpy()
        second[i] = beta_2 * second[i] + (1 - beta_2) * g * g
        weights[i] = weights[i] - rate * np.sqrt(1 - beta_2**t) * g / (
            np.sqrt(second[i]) + epsilon)
    return weights

  def test_reptile_inner_adam_on_minibatches_by_hand(self):
    # Support of 5 rows in minibatches of 2: m = 3 minibatches, rows
    # {0, 3}, {1, 4}, {2}, then {0, 3} again.
    x, y, s = self.clients[0]
    adam = specs.inner_optimizer(specs.Hyperparameters(
        inner_learning_rate=0.05, inner_optimizer='adam'))
    weights, _ = testing.run_rounds(algorithms.build_reptile(
        self.model, inner_steps=4, inner_optimizer=adam, inner_batch_size=2,
        server_optimizer=tff.learning.optimizers.build_sgdm(0.5)),
        self.datasets[:1], 1)
    xs, ys = x[s], y[s]
    self.assertLen(ys, 5)
    adapted = self._hand_adam(
        self.initial, xs, ys, rate=0.05, steps=4,
        rows_of_step=lambda step: np.arange(5) % 3 == step % 3)
    expected = [w + 0.5 * (a - w) for w, a in zip(self.initial, adapted)]
    self.assertLess(testing.max_abs_diff(weights.trainable, expected), 1e-6)

  def test_reptile_sgd_on_minibatches_by_hand(self):
    x, y, s = self.clients[0]
    weights, _ = testing.run_rounds(algorithms.build_reptile(
        self.model, inner_learning_rate=0.3, inner_steps=2,
        inner_batch_size=3, server_optimizer=SGD1()), self.datasets[:1], 1)
    adapted = [tf.constant(w) for w in self.initial]
    for rows in ([0, 2, 4], [1, 3]):
      with tf.GradientTape() as tape:
        tape.watch(adapted)
        loss = testing.mlp_loss(adapted, x[s][rows], y[s][rows])
      adapted = [w - 0.3 * g
                 for w, g in zip(adapted, tape.gradient(loss, adapted))]
    self.assertLess(testing.max_abs_diff(weights.trainable, adapted), 1e-6)

  def test_reptile_minibatches_of_a_client_without_support(self):
    # No support rows: no minibatch to take, and the client has no weight.
    x, y, _ = self.clients[0]
    datasets = [testing.flagged_dataset(x, y, np.zeros(len(y), bool)),
                self.datasets[1]]
    weights, _ = testing.run_rounds(algorithms.build_reptile(
        self.model, inner_learning_rate=0.3, inner_steps=2,
        inner_batch_size=3, server_optimizer=SGD1()), datasets, 1)
    alone, _ = testing.run_rounds(algorithms.build_reptile(
        self.model, inner_learning_rate=0.3, inner_steps=2,
        inner_batch_size=3, server_optimizer=SGD1()), self.datasets[1:2], 1)
    self.assertLess(testing.max_abs_diff(weights.trainable, alone.trainable),
                    1e-6)

  def test_adaptation_with_adam_by_hand(self):
    adam = specs.inner_optimizer(specs.Hyperparameters(
        inner_learning_rate=0.05, inner_optimizer='adam'))
    evaluate = algorithms.build_personalization_eval(
        self.model, inner_steps=3, inner_optimizer=adam)
    weights = tff.learning.models.ModelWeights(self.initial, [])
    results = evaluate(weights, self.datasets, clients=True)
    for (x, y, s), result in zip(self.clients, results):
      adapted = self._hand_adam(self.initial, x[s], y[s], rate=0.05, steps=3,
                                rows_of_step=lambda _: slice(None))
      expected = testing.mlp_loss(adapted, x[~s].astype(np.float64), y[~s])
      self.assertAlmostEqual(float(result['after']['loss']), float(expected),
                             places=5)

  def test_meta_sgd_first_round_moves_weights_like_maml(self):
    kwargs = dict(inner_learning_rate=0.4, server_optimizer=SGD1())
    extended, _ = testing.run_rounds(
        algorithms.build_meta_sgd(self.model, **kwargs), self.datasets, 1)
    maml, _ = testing.run_rounds(
        algorithms.build_fed_maml(self.model, **kwargs), self.datasets, 1)
    weights, rates = meta_sgd.split_weights(extended)
    self.assertLess(testing.max_abs_diff(weights.trainable, maml.trainable),
                    1e-6)
    # The rates are meta-learned too: they moved away from 0.4.
    moved = max(float(np.max(np.abs(r - 0.4))) for r in rates)
    self.assertGreater(moved, 1e-4)

  def test_meta_sgd_rate_gradient_by_hand(self):
    x, y, s = self.clients[0]
    rates = [tf.fill(w.shape, 0.4) for w in self.initial]
    weights = [tf.constant(w) for w in self.initial]
    with tf.GradientTape() as tape:
      tape.watch(rates)
      with tf.GradientTape() as inner:
        inner.watch(weights)
        loss = testing.mlp_loss(weights, x[s], y[s])
      adapted = [w - r * g for w, r, g in
                 zip(weights, rates, inner.gradient(loss, weights))]
      query_loss = testing.mlp_loss(adapted, x[~s], y[~s])
    rate_gradients = tape.gradient(query_loss, rates)
    extended, _ = testing.run_rounds(algorithms.build_meta_sgd(
        self.model, inner_learning_rate=0.4, server_optimizer=SGD1()),
        self.datasets[:1], 1)
    _, learned = meta_sgd.split_weights(extended)
    expected = [r - g for r, g in zip(rates, rate_gradients)]
    self.assertLess(testing.max_abs_diff(learned, expected), 1e-6)

  def test_per_fedavg_one_step_is_a_maml_step(self):
    beta = 0.05
    for hessian_free, builder in ((True, algorithms.build_per_fedavg_hf),
                                  (False, algorithms.build_per_fedavg_fo)):
      weights, _ = testing.run_rounds(builder(
          self.model, inner_learning_rate=0.4, outer_learning_rate=beta,
          local_steps=1, server_optimizer=SGD1()), self.datasets, 1)
      queries = np.asarray([(~c[2]).sum() for c in self.clients], float)
      steps = []
      for x, y, s in self.clients:
        gradient = testing.hand_maml_gradient(
            self.initial, (x[s], y[s]), (x[~s], y[~s]), 0.4,
            first_order=not hessian_free)
        steps.append([beta * g for g in gradient])
      expected = [w - sum(q / queries.sum() * step[i]
                          for q, step in zip(queries, steps))
                  for i, w in enumerate(self.initial)]
      self.assertLess(testing.max_abs_diff(weights.trainable, expected),
                      1e-6, f'hessian_free={hessian_free}')

  def test_per_fedavg_on_an_embedding_is_a_maml_step(self):
    # An Embedding's gradient is IndexedSlices (LEAF Shakespeare's model).
    def keras_model():
      return tf.keras.Sequential([
          tf.keras.layers.Input([3], dtype=tf.int32),
          tf.keras.layers.Embedding(7, 4), tf.keras.layers.Flatten(),
          tf.keras.layers.Dense(testing.NUM_CLASSES)])
    model = models.from_keras(
        keras_model,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec={'x': tf.TensorSpec([None, 3], tf.int32),
                    'y': tf.TensorSpec([None], tf.int32)})
    rng = np.random.default_rng(3)
    x = rng.integers(0, 7, (10, 3)).astype(np.int32)
    y = rng.integers(0, testing.NUM_CLASSES, 10).astype(np.int32)
    datasets = [testing.flagged_dataset(x, y, np.arange(10) < 5)]
    beta = 0.05
    for hessian_free, builder in ((True, algorithms.build_per_fedavg_hf),
                                  (False, algorithms.build_per_fedavg_fo)):
      per_fedavg, _ = testing.run_rounds(builder(
          model, inner_learning_rate=0.4, outer_learning_rate=beta,
          local_steps=1, server_optimizer=SGD1()), datasets, 1)
      maml, _ = testing.run_rounds(algorithms.build_fed_maml(
          model, inner_learning_rate=0.4, first_order=not hessian_free,
          server_optimizer=tff.learning.optimizers.build_sgdm(beta)),
          datasets, 1)
      self.assertLess(testing.max_abs_diff(per_fedavg.trainable,
                                           maml.trainable), 1e-6)
      self.assertGreater(testing.max_abs_diff(
          per_fedavg.trainable, model.initial_weights[0]), 1e-4)

  def test_per_fedavg_two_local_steps_by_hand(self):
    # Fallah et al.'s tau = 2 on one client: two MAML steps in a row, each
    # from the weights the last one left, and FedAvg's average of one.
    beta = 0.05
    x, y, s = self.clients[0]
    for hessian_free, builder in ((True, algorithms.build_per_fedavg_hf),
                                  (False, algorithms.build_per_fedavg_fo)):
      weights, _ = testing.run_rounds(builder(
          self.model, inner_learning_rate=0.4, outer_learning_rate=beta,
          local_steps=2, server_optimizer=SGD1()), self.datasets[:1], 1)
      expected = self.initial
      for _ in range(2):
        gradient = testing.hand_maml_gradient(
            expected, (x[s], y[s]), (x[~s], y[~s]), 0.4,
            first_order=not hessian_free)
        expected = [w - beta * np.asarray(g)
                    for w, g in zip(expected, gradient)]
      one_step = [w - beta * np.asarray(g) for w, g in zip(
          self.initial, testing.hand_maml_gradient(
              self.initial, (x[s], y[s]), (x[~s], y[~s]), 0.4,
              first_order=not hessian_free))]
      self.assertLess(testing.max_abs_diff(weights.trainable, expected),
                      1e-6, f'hessian_free={hessian_free}')
      # The second step is not the first one again.
      self.assertGreater(testing.max_abs_diff(expected, one_step), 1e-4)

if __name__ == '__main__':
  absltest.main()
