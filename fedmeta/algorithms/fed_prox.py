"""FedProx: FedAvg with a proximal term in each client's objective.

Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020.
https://arxiv.org/abs/1812.06127
"""

from fedmeta.algorithms import fed_avg
from fedmeta.algorithms import specs


def build_fed_prox(model_fn, *, proximal_strength: float = 0.01, **kwargs):
  """Builds FedProx: clients minimize loss(w) + mu/2 ||w - w_global||^2.

  Paper: Li et al. 2020, https://arxiv.org/abs/1812.06127.

  Note: TFF 0.87's `tff.learning.algorithms.build_weighted_fed_prox` adds
  mu (w_global - w) to the gradient, the opposite sign; this implementation
  follows the paper (see tests/algorithms/fed_prox_test.py).

  Args:
    model_fn: A `tff.learning.models.FunctionalModel`, or a no-arg callable
      returning a new `tff.learning.models.VariableModel`.
    proximal_strength: mu >= 0; 0 is FedAvg.
    **kwargs: Keyword arguments of `fedmeta.algorithms.build_fed_avg`.

  Returns:
    A `tff.learning.templates.LearningProcess`.
  """
  return fed_avg.build_fed_avg(
      model_fn, proximal_strength=proximal_strength, **kwargs)


SPECS = {'fed_prox': specs.AlgorithmSpec(
    build_fed_prox, lambda hyperparameters: {
        **specs.client_sgd(hyperparameters),
        'proximal_strength': hyperparameters.proximal_strength})}
