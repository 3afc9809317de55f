"""FedAdam, FedYogi, FedAdagrad, FedAvgM: Reddi et al.'s server steps
written out by hand, and TFF FedAvg with that optimizer."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import runtime
from tests import testing

OPT = tff.learning.optimizers


class FedOptTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()

  @parameterized.named_parameters(
      ('adam', algorithms.build_fed_adam,
       dict(server_learning_rate=0.05, beta_1=0.8, beta_2=0.95, tau=1e-2),
       lambda: OPT.build_adam(0.05, beta_1=0.8, beta_2=0.95, epsilon=1e-2)),
      ('yogi', algorithms.build_fed_yogi,
       dict(server_learning_rate=0.05, beta_1=0.8, beta_2=0.95, tau=1e-2),
       lambda: OPT.build_yogi(0.05, beta_1=0.8, beta_2=0.95, epsilon=1e-2,
                              initial_preconditioner_value=1e-4)),
      ('adagrad', algorithms.build_fed_adagrad,
       dict(server_learning_rate=0.05, tau=1e-2),
       lambda: OPT.build_adagrad(0.05, initial_preconditioner_value=1e-4,
                                 epsilon=1e-2)),
      ('avgm', algorithms.build_fed_avgm,
       dict(server_learning_rate=0.5, server_momentum=0.9),
       lambda: OPT.build_sgdm(0.5, momentum=0.9)))
  def test_equals_tff_fed_avg_with_server_optimizer(self, builder, hparams,
                                                    tff_server_optimizer):
    model = testing.softmax_regression(hidden=5)
    datasets = testing.client_datasets((10, 7, 13))
    ours, _ = testing.run_rounds(
        builder(model, client_optimizer=OPT.build_sgdm(0.1), **hparams),
        datasets, 3)
    ref, _ = testing.run_rounds(
        tff.learning.algorithms.build_weighted_fed_avg(
            model, OPT.build_sgdm(0.1), tff_server_optimizer()),
        datasets, 3)
    self.assertLess(testing.max_abs_diff(ours, ref), 1e-5)


CLIENT_LR, ETA, BETA_1, BETA_2, TAU = 0.1, 0.05, 0.8, 0.95, 1e-2


def _pseudo_gradient(weights, arrays):
  """Reddi et al.'s Delta_t: the example-weighted mean client delta, each
  client taking one full-batch SGD step (float64)."""
  total, deltas = 0, [np.zeros_like(w) for w in weights]
  for x, y in arrays:
    variables = [tf.Variable(w) for w in weights]
    with tf.GradientTape() as tape:
      loss = testing.mlp_loss(variables, x.astype(np.float64), y)
    for delta, g in zip(deltas, tape.gradient(loss, variables)):
      delta += len(y) * -CLIENT_LR * g.numpy()
    total += len(y)
  return [d / total for d in deltas]


def _hand_fed_opt(kind, initial, arrays, rounds):
  """Algorithm 2 of Reddi et al. 2021, per coordinate: m_t = b1 m + (1 - b1)
  D; v_t by the kind's rule (v_{-1} = tau^2); x += eta m_t / (sqrt(v_t) +
  tau). As in TFF's optimizers (and the Keras ones of the paper's code):
  Adam and Yogi scale eta by Kingma and Ba's bias correction sqrt(1 - b2^t)
  / (1 - b1^t), from v_{-1} = 0 for Adam; Adagrad takes D itself (b1 = 0)
  and puts tau under the root, sqrt(v_t + tau)."""
  x = [np.asarray(w, np.float64) for w in initial]
  m = [np.zeros_like(w) for w in x]
  v = [np.full_like(w, 0.0 if kind == 'adam' else TAU**2) for w in x]
  for t in range(1, rounds + 1):
    for i, d in enumerate(_pseudo_gradient(x, arrays)):
      if kind == 'adagrad':
        v[i] = v[i] + d**2
        x[i] = x[i] + ETA * d / np.sqrt(v[i] + TAU)
        continue
      m[i] = BETA_1 * m[i] + (1 - BETA_1) * d
      if kind == 'adam':
        v[i] = BETA_2 * v[i] + (1 - BETA_2) * d**2
      else:  # Yogi: v moves towards D^2 by (1 - b2) D^2 at most.
        v[i] = v[i] - (1 - BETA_2) * d**2 * np.sign(v[i] - d**2)
      rate = ETA * np.sqrt(1 - BETA_2**t) / (1 - BETA_1**t)
      x[i] = x[i] + rate * m[i] / (np.sqrt(v[i]) + TAU)
  return x


class HandWrittenTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()

  @parameterized.named_parameters(
      ('adam', 'adam', algorithms.build_fed_adam,
       dict(beta_1=BETA_1, beta_2=BETA_2)),
      ('yogi', 'yogi', algorithms.build_fed_yogi,
       dict(beta_1=BETA_1, beta_2=BETA_2)),
      ('adagrad', 'adagrad', algorithms.build_fed_adagrad, {}))
  def test_two_rounds_equal_the_papers_steps(self, kind, builder, hparams):
    model = testing.softmax_regression()
    arrays = testing.client_arrays((10, 7, 13))
    sizes = [len(y) for _, y in arrays]
    datasets = [testing.as_dataset(x, y, batch_size=n)
                for (x, y), n in zip(arrays, sizes)]
    ours, _ = testing.run_rounds(
        builder(model, client_optimizer=OPT.build_sgdm(CLIENT_LR),
                server_learning_rate=ETA, tau=TAU, **hparams), datasets, 2)
    expected = _hand_fed_opt(kind, model.initial_weights[0], arrays, 2)
    self.assertLess(testing.max_abs_diff(ours.trainable, expected), 1e-6)
    # Two rounds moved the weights by far more than the tolerance.
    self.assertGreater(testing.max_abs_diff(model.initial_weights[0],
                                            expected), 1e-2)


if __name__ == '__main__':
  absltest.main()
