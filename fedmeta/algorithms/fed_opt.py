"""Adaptive federated optimization: FedAvg with a server optimizer.

Reddi et al., "Adaptive Federated Optimization", ICLR 2021.
https://arxiv.org/abs/2003.00295 (FedAdam, FedYogi, FedAdagrad; FedAvgM is
Hsu et al., 2019, https://arxiv.org/abs/1909.06335).

The client averages its delta as in FedAvg; the server treats the negated
average delta as a pseudo-gradient. tau is the adaptivity (epsilon) term.
The server steps are TFF's optimizers (as the paper's code ran Keras'): per
coordinate, with Delta_t the mean client delta and v_{-1} = tau^2,
  FedAdam, FedYogi: m_t = b1 m + (1 - b1) Delta_t; v_t by Adam's rule (from
    v_{-1} = 0) or Yogi's; x += eta sqrt(1 - b2^t) / (1 - b1^t) m_t /
    (sqrt(v_t) + tau): Algorithm 2 with Kingma and Ba's bias correction;
  FedAdagrad: v_t = v + Delta_t^2; x += eta Delta_t / sqrt(v_t + tau):
    Algorithm 2 with b1 = 0 and tau under the root.
`tests/algorithms/fed_opt_test.py` checks two rounds of each by hand.
"""

import tensorflow_federated as tff

from fedmeta.algorithms import fed_avg
from fedmeta.algorithms import specs


def build_fed_adam(model_fn, *, server_learning_rate: float = 0.01,
                   beta_1: float = 0.9, beta_2: float = 0.99,
                   tau: float = 1e-3, **kwargs):
  """FedAdam (Reddi et al. 2021, Algorithm 2); kwargs as `build_fed_avg`."""
  return fed_avg.build_fed_avg(
      model_fn, server_optimizer=tff.learning.optimizers.build_adam(
          server_learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=tau),
      **kwargs)


def build_fed_yogi(model_fn, *, server_learning_rate: float = 0.01,
                   beta_1: float = 0.9, beta_2: float = 0.99,
                   tau: float = 1e-3, **kwargs):
  """FedYogi (Reddi et al. 2021, Algorithm 2); kwargs as `build_fed_avg`."""
  return fed_avg.build_fed_avg(
      model_fn, server_optimizer=tff.learning.optimizers.build_yogi(
          server_learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=tau,
          initial_preconditioner_value=tau**2),
      **kwargs)


def build_fed_adagrad(model_fn, *, server_learning_rate: float = 0.1,
                      tau: float = 1e-3, **kwargs):
  """FedAdagrad (Reddi et al. 2021, Algorithm 2); kwargs as `build_fed_avg`."""
  return fed_avg.build_fed_avg(
      model_fn, server_optimizer=tff.learning.optimizers.build_adagrad(
          server_learning_rate, initial_preconditioner_value=tau**2,
          epsilon=tau),
      **kwargs)


def build_fed_avgm(model_fn, *, server_learning_rate: float = 1.0,
                   server_momentum: float = 0.9, **kwargs):
  """FedAvgM: server SGD with momentum (Hsu et al. 2019)."""
  return fed_avg.build_fed_avg(
      model_fn, server_optimizer=tff.learning.optimizers.build_sgdm(
          server_learning_rate, momentum=server_momentum),
      **kwargs)


# Each fixes its server optimizer; a runner may change only its rate.
SPECS = {name: specs.AlgorithmSpec(builder, specs.client_sgd,
                                   server_optimizer=None)
         for name, builder in (('fed_adam', build_fed_adam),
                               ('fed_yogi', build_fed_yogi),
                               ('fed_adagrad', build_fed_adagrad),
                               ('fed_avgm', build_fed_avgm))}
