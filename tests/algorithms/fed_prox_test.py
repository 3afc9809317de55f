"""FedProx against a closed form on linear least squares, FedAvg and TFF."""

from absl.testing import absltest
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import models
from fedmeta import runtime
from tests import testing

LR = 0.1
MU = 2.0


def linear_model():
  return models.from_keras(
      lambda: tf.keras.Sequential([tf.keras.layers.Input([3]),
                                   tf.keras.layers.Dense(1)]),
      loss=tf.keras.losses.MeanSquaredError(),
      input_spec={'x': tf.TensorSpec([None, 3], tf.float32),
                  'y': tf.TensorSpec([None, 1], tf.float32)})


def closed_form_prox_sgd(model, x, y, batch_size, mu):
  """Client SGD on mse(w) + mu/2 ||w - w0||^2, in float64 numpy."""
  kernel, bias = model.initial_weights[0]
  w0 = np.concatenate([kernel[:, 0], bias]).astype(np.float64)
  xa = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
  w = w0.copy()
  for start in range(0, len(x), batch_size):
    xb, yb = xa[start:start + batch_size], y[start:start + batch_size, 0]
    grad = 2.0 / len(xb) * xb.T @ (xb @ w - yb) + mu * (w - w0)
    w = w - LR * grad
  return w


class FedProxTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()
    rng = np.random.default_rng(0)
    self.x = rng.normal(size=(12, 3)).astype(np.float32)
    self.y = rng.normal(size=(12, 1)).astype(np.float32)
    self.model = linear_model()
    self.data = [tf.data.Dataset.from_tensor_slices(
        {'x': self.x, 'y': self.y}).batch(4)]

  def _one_round(self, process):
    weights, _ = testing.run_rounds(process, self.data, 1)
    kernel, bias = weights.trainable
    return np.concatenate([kernel[:, 0], bias])

  def test_matches_closed_form_and_is_pulled_toward_global_model(self):
    prox = self._one_round(algorithms.build_fed_prox(
        self.model, proximal_strength=MU,
        client_optimizer=tff.learning.optimizers.build_sgdm(LR)))
    avg = self._one_round(algorithms.build_fed_avg(
        self.model, client_optimizer=tff.learning.optimizers.build_sgdm(LR)))
    expected = closed_form_prox_sgd(self.model, self.x, self.y, 4, MU)
    np.testing.assert_allclose(prox, expected, atol=1e-5)
    kernel, bias = self.model.initial_weights[0]
    w0 = np.concatenate([kernel[:, 0], bias])
    self.assertLess(np.linalg.norm(prox - w0), np.linalg.norm(avg - w0))

  def test_zero_mu_equals_fed_avg_and_tff_fed_prox(self):
    opt = tff.learning.optimizers.build_sgdm(LR)
    prox = self._one_round(algorithms.build_fed_prox(
        self.model, proximal_strength=0.0, client_optimizer=opt))
    avg = self._one_round(algorithms.build_fed_avg(
        self.model, client_optimizer=opt))
    ref = self._one_round(tff.learning.algorithms.build_weighted_fed_prox(
        self.model, proximal_strength=0.0, client_optimizer_fn=opt))
    np.testing.assert_allclose(prox, avg, atol=1e-7)
    np.testing.assert_allclose(prox, ref, atol=1e-5)

  def test_tff_0_87_fed_prox_uses_the_opposite_sign(self):
    # Documents why fedmeta does not delegate to TFF here: TFF 0.87 adds
    # mu (w0 - w) to the gradient, i.e. it solves the problem with -mu.
    ref = self._one_round(tff.learning.algorithms.build_weighted_fed_prox(
        self.model, proximal_strength=MU,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(LR)))
    np.testing.assert_allclose(
        ref, closed_form_prox_sgd(self.model, self.x, self.y, 4, -MU),
        atol=1e-5)

  def test_rejects_negative_mu(self):
    with self.assertRaisesRegex(ValueError, 'proximal_strength'):
      algorithms.build_fed_prox(self.model, proximal_strength=-1.0)


if __name__ == '__main__':
  absltest.main()
