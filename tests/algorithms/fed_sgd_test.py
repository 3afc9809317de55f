"""FedSGD: equal to TFF's reference and to centralized full-batch GD."""

from absl.testing import absltest
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import runtime
from tests import testing

SIZES = (10, 7, 13)


class FedSgdTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()

  def test_equals_tff_fed_sgd(self):
    model = testing.softmax_regression(hidden=5)
    datasets = testing.client_datasets(SIZES)
    server = tff.learning.optimizers.build_sgdm(0.5)
    ours, _ = testing.run_rounds(
        algorithms.build_fed_sgd(model, server_optimizer=server), datasets, 3)
    ref, _ = testing.run_rounds(
        tff.learning.algorithms.build_fed_sgd(model, server), datasets, 3)
    self.assertLess(testing.max_abs_diff(ours, ref), 1e-5)

  def test_round_is_a_full_batch_gradient_step_on_pooled_data(self):
    model = testing.softmax_regression()
    arrays = testing.client_arrays(SIZES)
    lr = 0.5
    weights, _ = testing.run_rounds(
        algorithms.build_fed_sgd(
            model, server_optimizer=tff.learning.optimizers.build_sgdm(lr)),
        [testing.as_dataset(x, y, batch_size=3) for x, y in arrays], 1)
    x = np.concatenate([a[0] for a in arrays])
    y = np.concatenate([a[1] for a in arrays])
    kernel, bias = (tf.Variable(w) for w in model.initial_weights[0])
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
          y, tf.matmul(x, kernel) + bias, from_logits=True))
    grads = tape.gradient(loss, [kernel, bias])
    expected = [kernel - lr * grads[0], bias - lr * grads[1]]
    self.assertLess(testing.max_abs_diff(weights.trainable, expected), 1e-6)


if __name__ == '__main__':
  absltest.main()
