"""Adaptive federated optimization: FedAvg with a server optimizer.

Reddi et al., "Adaptive Federated Optimization", ICLR 2021.
https://arxiv.org/abs/2003.00295 (FedAdam, FedYogi, FedAdagrad; FedAvgM is
Hsu et al., 2019, https://arxiv.org/abs/1909.06335).

The client averages its delta as in FedAvg; the server treats the negated
average delta as a pseudo-gradient. tau is the adaptivity (epsilon) term.
"""

import tensorflow_federated as tff

from fedmeta.algorithms import fed_avg


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
