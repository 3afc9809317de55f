"""FedAvg: equal to TFF's reference, to centralized GD, robust to bad clients."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import models
from fedmeta import runtime
from tests import testing

SIZES = (10, 7, 13)


class FedAvgTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()

  @parameterized.named_parameters(
      ('example_weighted', algorithms.ClientWeighting.NUM_EXAMPLES,
       tff.learning.ClientWeighting.NUM_EXAMPLES),
      ('uniform', algorithms.ClientWeighting.UNIFORM,
       tff.learning.ClientWeighting.UNIFORM))
  def test_equals_tff_weighted_fed_avg(self, ours_weighting, tff_weighting):
    model = testing.softmax_regression(hidden=5)
    datasets = testing.client_datasets(SIZES)
    ours = algorithms.build_fed_avg(
        model, client_optimizer=tff.learning.optimizers.build_sgdm(0.1),
        server_optimizer=tff.learning.optimizers.build_sgdm(0.7),
        client_weighting=ours_weighting)
    ref = tff.learning.algorithms.build_weighted_fed_avg(
        model, tff.learning.optimizers.build_sgdm(0.1),
        tff.learning.optimizers.build_sgdm(0.7),
        client_weighting=tff_weighting)
    ours_weights, outputs = testing.run_rounds(ours, datasets, 3)
    ref_weights, ref_outputs = testing.run_rounds(ref, datasets, 3)
    self.assertLess(testing.max_abs_diff(ours_weights, ref_weights), 1e-5)
    self.assertAlmostEqual(
        outputs[-1].metrics['client_work']['train'][
            'sparse_categorical_accuracy'],
        ref_outputs[-1].metrics['client_work']['train'][
            'sparse_categorical_accuracy'], places=6)
    self.assertEqual(
        outputs[-1].metrics['client_work']['train']['num_examples'],
        sum(SIZES))

  def test_fused_mean_and_one_metrics_sum_change_no_bit(self):
    # The default aggregator (FusedMeanFactory) against TFF's MeanFactory;
    # the client work sums metrics and counts in one federated sum.
    model = testing.softmax_regression(hidden=5)
    datasets = testing.client_datasets(SIZES)
    build = lambda **kwargs: algorithms.build_fed_avg(
        model, client_optimizer=tff.learning.optimizers.build_sgdm(0.1),
        **kwargs)
    fused = build()
    weights, outputs = testing.run_rounds(fused, datasets, 3)
    ref_weights, ref_outputs = testing.run_rounds(
        build(model_aggregator=tff.aggregators.MeanFactory()), datasets, 3)
    for got, want in zip(tf.nest.flatten(weights),
                         tf.nest.flatten(ref_weights)):
      np.testing.assert_array_equal(got, want)
    self.assertEqual(outputs[-1].metrics, ref_outputs[-1].metrics)
    # The metrics with the counts; the mean.
    self.assertEqual(testing.intrinsic_uris(fused).count('federated_sum'), 2)

  def test_one_client_full_batch_equals_centralized_gradient_step(self):
    model = testing.softmax_regression()
    (x, y), = testing.client_arrays([12])
    lr = 0.3
    process = algorithms.build_fed_avg(
        model, client_optimizer=tff.learning.optimizers.build_sgdm(lr))
    weights, _ = testing.run_rounds(
        process, [testing.as_dataset(x, y, batch_size=12)], 1)

    kernel, bias = (tf.Variable(w) for w in model.initial_weights[0])
    with tf.GradientTape() as tape:
      logits = tf.matmul(x, kernel) + bias
      loss = tf.reduce_mean(
          tf.keras.losses.sparse_categorical_crossentropy(
              y, logits, from_logits=True))
    grads = tape.gradient(loss, [kernel, bias])
    expected = [kernel - lr * grads[0], bias - lr * grads[1]]
    self.assertLess(testing.max_abs_diff(weights.trainable, expected), 1e-6)

  def test_loss_decreases(self):
    process = algorithms.build_fed_avg(testing.softmax_regression())
    _, outputs = testing.run_rounds(
        process, testing.client_datasets(SIZES), 5)
    losses = [o.metrics['client_work']['train']['loss'] for o in outputs]
    self.assertLess(losses[-1], losses[0])

  def test_empty_client_is_zero_weighted_and_counted(self):
    model = testing.softmax_regression()
    datasets = testing.client_datasets(SIZES)
    empty = datasets[0].take(0)
    process = algorithms.build_fed_avg(
        model, client_weighting=algorithms.ClientWeighting.UNIFORM)
    with_empty, outputs = testing.run_rounds(process, datasets + [empty], 1)
    without, _ = testing.run_rounds(process, datasets, 1)
    self.assertLess(testing.max_abs_diff(with_empty, without), 1e-6)
    self.assertEqual(outputs[0].metrics['client_work']['clients_empty'], 1)

  def test_non_finite_client_is_dropped_and_counted(self):
    model = testing.softmax_regression()
    datasets = testing.client_datasets(SIZES)
    (x, y), = testing.client_arrays([5], seed=3)
    x[0, 0] = np.inf
    poisoned = testing.as_dataset(x, y, batch_size=5)
    process = algorithms.build_fed_avg(model)
    with_bad, outputs = testing.run_rounds(process, datasets + [poisoned], 1)
    without, _ = testing.run_rounds(process, datasets, 1)
    self.assertTrue(all(np.all(np.isfinite(w))
                        for w in tf.nest.flatten(with_bad)))
    self.assertLess(testing.max_abs_diff(with_bad, without), 1e-6)
    self.assertEqual(outputs[0].metrics['client_work']['clients_non_finite'], 1)

  def test_rejects_callable_that_returns_no_model(self):
    with self.assertRaisesRegex(models.ModelError, 'model_fn'):
      algorithms.build_fed_avg(lambda: None)

  def test_type_signature(self):
    process = algorithms.build_fed_avg(testing.softmax_regression())
    self.assertIsInstance(process, tff.learning.templates.LearningProcess)
    self.assertEqual(str(process.next.type_signature.parameter[1]),
                     '{<x=float32[?,4],y=int32[?]>*}@CLIENTS')


if __name__ == '__main__':
  absltest.main()
