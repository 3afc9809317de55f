"""Batch statistics normalization and MAML's Omniglot conv net, by hand;
convolutional models on empty batches."""

from absl.testing import absltest
import numpy as np

from fedmeta import algorithms
from fedmeta import models
from fedmeta import runtime
from fedmeta.data import omniglot
from tests import testing

import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order


def _hand_batch_norm(x, beta, gamma=None, epsilon=1e-3):
  axes = tuple(range(x.ndim - 1))
  mean = x.mean(axis=axes)
  variance = ((x - mean) ** 2).mean(axis=axes)
  y = (x - mean) / np.sqrt(variance + epsilon)
  return y * (1.0 if gamma is None else gamma) + beta


def _hand_conv4(x, trainable, strides, max_pool):
  """MAML's / Snell et al.'s 4 conv blocks by hand: conv, batch norm on the
  batch's statistics, ReLU, and with `max_pool` a 2x2 'VALID' max-pool (an
  odd side drops its last row and column)."""
  h = x
  for block in range(4):
    kernel, bias, beta = trainable[3 * block:3 * block + 3]
    h = tf.nn.conv2d(h, kernel, strides=strides, padding='SAME').numpy() + bias
    h = np.maximum(_hand_batch_norm(h.astype(np.float64), beta), 0)
    if max_pool:
      n, side = len(h), h.shape[1] // 2
      h = h[:, :2 * side, :2 * side].reshape(n, side, 2, side, 2, 64)
      h = h.max(axis=(2, 4))
    h = h.astype(np.float32)
  return h


class BatchStatisticsTest(absltest.TestCase):

  def test_equals_hand_computation_in_both_modes(self):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(5, 4, 4, 3))
    for scale in (False, True):
      layer = models.BatchStatistics(scale=scale, dtype='float64')
      layer.build(x.shape)
      layer.beta.assign(rng.normal(size=3))
      if scale:
        layer.gamma.assign(rng.normal(size=3))
      expected = _hand_batch_norm(
          x, layer.beta.numpy(), layer.gamma.numpy() if scale else None)
      for training in (True, False):
        np.testing.assert_allclose(layer(x, training=training).numpy(),
                                   expected, rtol=1e-10, atol=1e-10)
      self.assertLen(layer.trainable_weights, 2 if scale else 1)
      self.assertEmpty(layer.non_trainable_weights)

  def test_maml_conv4_forward_equals_hand_written_net(self):
    model = omniglot.conv4_model_fn(5, norm='batch')
    rng = np.random.default_rng(1)
    trainable = tuple(rng.normal(0, 0.3, size=w.shape).astype(np.float32)
                      for w in model.initial_weights[0])
    # Per block: conv kernel, conv bias, beta; then dense kernel and bias.
    self.assertLen(trainable, 4 * 3 + 2)
    x = rng.random((6, 28, 28, 1)).astype(np.float32)
    h = _hand_conv4(x, trainable, strides=2, max_pool=False)
    self.assertEqual(h.shape, (6, 2, 2, 64))
    logits = h.mean(axis=(1, 2)) @ trainable[12] + trainable[13]
    for training in (True, False):
      # Keras-backed functional models run only in graphs.
      with tf.Graph().as_default() as graph:
        output = model.predict_on_batch((trainable, ()), x, training=training)
        with tf.compat.v1.Session(graph=graph) as session:
          predicted = session.run(output)
      np.testing.assert_allclose(predicted, logits, rtol=1e-4,
                                 atol=1e-4)

  def test_snell_max_pooled_embedding_equals_hand_written_net(self):
    model = omniglot.conv4_model_fn(None, norm='batch', downsample='max_pool')
    rng = np.random.default_rng(2)
    trainable = tuple(rng.normal(0, 0.3, size=w.shape).astype(np.float32)
                      for w in model.initial_weights[0])
    self.assertLen(trainable, 4 * 3)
    x = rng.random((6, 28, 28, 1)).astype(np.float32)
    h = _hand_conv4(x, trainable, strides=1, max_pool=True)
    self.assertEqual(h.shape, (6, 1, 1, 64))
    with tf.Graph().as_default() as graph:
      output = model.predict_on_batch((trainable, ()), x, training=True)
      with tf.compat.v1.Session(graph=graph) as session:
        embedded = session.run(output)
    np.testing.assert_allclose(embedded, h.reshape(6, 64), rtol=1e-4,
                               atol=1e-4)

  def test_downsample_options(self):
    strided = omniglot.conv4_model_fn(5, norm='group', downsample='stride')
    shapes = [tuple(w.shape) for w in strided.initial_weights[0]]
    self.assertEqual(shapes[-2:], [(64, 5), (5,)])
    with self.assertRaisesRegex(Exception, 'downsample: must be one of'):
      omniglot.conv4_model_fn(5, downsample='avg_pool')

  def test_group_norm_net_is_unchanged(self):
    model = omniglot.conv4_model_fn(5)
    shapes = [tuple(w.shape) for w in model.initial_weights[0]]
    self.assertEqual(shapes[:4], [(3, 3, 1, 64), (64,), (64,), (64,)])
    self.assertEqual(shapes[-2:], [(64, 5), (5,)])


def _two_conv_model():
  """Two convolutions, as FEMNIST's CNN has: TF's oneDNN kernels fail on an
  empty batch through them."""
  def keras_model():
    return tf.keras.Sequential([
        tf.keras.layers.Input([8, 8, 1]),
        tf.keras.layers.Conv2D(4, 3, padding='same', activation='relu'),
        tf.keras.layers.MaxPool2D(2),
        tf.keras.layers.Conv2D(6, 3, padding='same', activation='relu'),
        tf.keras.layers.Flatten(), tf.keras.layers.Dense(3)])
  return models.from_keras(
      keras_model,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec={'x': tf.TensorSpec([None, 8, 8, 1], tf.float32),
                  'y': tf.TensorSpec([None], tf.int32)},
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy])


class EmptyBatchTest(absltest.TestCase):

  def test_client_with_one_example_on_a_conv_model(self):
    # Its support set holds the one example and its query set none: this
    # failed with "input depth must be evenly divisible by filter depth".
    runtime.set_local_context()
    rng = np.random.default_rng(0)
    lone = testing.flagged_dataset(
        rng.random((1, 8, 8, 1)).astype(np.float32), np.array([1], np.int32),
        [True])
    full = testing.flagged_dataset(
        rng.random((6, 8, 8, 1)).astype(np.float32),
        np.array([0, 1, 2, 0, 1, 2], np.int32), [True] * 3 + [False] * 3)
    model = _two_conv_model()
    summary = algorithms.build_personalization_eval(model)(
        model_weights(model), [lone, full])
    self.assertEqual(summary['num_clients'], 1)  # The one with a query set.
    process = algorithms.build_fed_maml(model, inner_learning_rate=0.1)
    output = process.next(process.initialize(), [lone, full])
    self.assertEqual(output.metrics['client_work']['train']['num_examples'], 3)
    self.assertEqual(output.metrics['client_work']['clients_empty'], 1)
    self.assertTrue(all(np.all(np.isfinite(w)) for w in
                        process.get_model_weights(output.state).trainable))


def model_weights(model):
  return tff.learning.models.ModelWeights(*model.initial_weights)


if __name__ == '__main__':
  absltest.main()
