"""FedAdam, FedYogi, FedAdagrad, FedAvgM equal TFF FedAvg with that optimizer."""

from absl.testing import absltest
from absl.testing import parameterized
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


if __name__ == '__main__':
  absltest.main()
