"""Per-FedAvg: personalized federated learning with a MAML objective.

Fallah, Mokhtari & Ozdaglar, "Personalized Federated Learning with
Theoretical Guarantees: A Model-Agnostic Meta-Learning Approach", NeurIPS
2020, https://arxiv.org/abs/2002.07948.
"""

import functools
from typing import Optional

import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import client_work as client_work_lib
from fedmeta.algorithms import meta_tf
from fedmeta.algorithms import specs

DEFAULT_SERVER_OPTIMIZER_FN = client_work_lib.AVERAGING_SERVER_OPTIMIZER_FN


def build_per_fedavg(
    model_fn: models.ModelFn,
    *,
    hessian_free: bool,
    inner_learning_rate: float = 0.01,
    outer_learning_rate: float = 0.001,
    local_steps: int = 1,
    server_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    client_weighting: client_work_lib.ClientWeighting = (
        client_work_lib.ClientWeighting.NUM_EXAMPLES),
    model_aggregator: Optional[tff.aggregators.AggregationFactory] = None,
    model_distributor: Optional[tff.learning.templates.DistributionProcess] = None,
) -> tff.learning.templates.LearningProcess:
  """Builds Per-FedAvg: local steps on the MAML objective, averaged models.

  Paper: Fallah et al. 2020, https://arxiv.org/abs/2002.07948.

  Each client runs `local_steps` steps of
  w <- w - beta (I - alpha H(w; D'')) grad f(w - alpha grad f(w; D); D')
  with D = D'' its support set and D' its query set (full batches), then
  returns `global - local` for FedAvg averaging. The first-order variant
  (Per-FedAvg (FO)) drops the Hessian term; the Hessian-free one (HF)
  computes it exactly as a Hessian-vector product.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel` with input spec
      `{'x': ..., 'y': ...}`; client datasets carry a `support` flag.
    hessian_free: HF (True) or FO (False).
    inner_learning_rate: alpha.
    outer_learning_rate: beta, the clients' step size.
    local_steps: tau, local steps per round.
    server_optimizer: Applies the averaged difference; SGD(1.0) (FedAvg's
      averaging) if None.
    client_weighting: Weight differences by query examples or uniformly.
    model_aggregator: Any `tff.aggregators` factory (`fedmeta.aggregation`;
      an unweighted one averages clients uniformly);
      `fedmeta.aggregation.FusedMeanFactory()` if None.
    model_distributor: A `tff.learning.templates.DistributionProcess`;
      broadcast if None.

  Raises:
    fedmeta.models.ModelError: If `model_fn` is not a suitable
      `FunctionalModel`.
    ValueError: For `local_steps` < 1 or a negative learning rate.
  """
  client_work_lib.check_hyperparameters(local_steps=local_steps,
                                        inner_learning_rate=inner_learning_rate,
                                        outer_learning_rate=outer_learning_rate)
  local_fn = functools.partial(
      meta_tf.per_fedavg_delta, inner_learning_rate=inner_learning_rate,
      outer_learning_rate=outer_learning_rate, local_steps=local_steps,
      hessian_free=hessian_free)
  return client_work_lib.build_meta_learning_process(
      model_fn, local_fn, client_weighting=client_weighting,
      server_optimizer=(server_optimizer
                        or DEFAULT_SERVER_OPTIMIZER_FN()),
      model_aggregator=model_aggregator, model_distributor=model_distributor)


def build_per_fedavg_fo(model_fn: models.ModelFn,
                        **kwargs) -> tff.learning.templates.LearningProcess:
  """Per-FedAvg (FO): `build_per_fedavg(..., hessian_free=False)`.

  Paper: Fallah et al. 2020, https://arxiv.org/abs/2002.07948.
  """
  return build_per_fedavg(model_fn, hessian_free=False, **kwargs)


def build_per_fedavg_hf(model_fn: models.ModelFn,
                        **kwargs) -> tff.learning.templates.LearningProcess:
  """Per-FedAvg (HF): `build_per_fedavg(..., hessian_free=True)`.

  Paper: Fallah et al. 2020, https://arxiv.org/abs/2002.07948.
  """
  return build_per_fedavg(model_fn, hessian_free=True, **kwargs)


def _kwargs(hyperparameters: specs.Hyperparameters) -> dict:
  # beta is the client learning rate; tau, the inner steps.
  return {'inner_learning_rate': hyperparameters.inner_learning_rate,
          'outer_learning_rate': hyperparameters.client_learning_rate,
          'local_steps': hyperparameters.inner_steps}


# Its local steps are on one task, so a client takes one a round.
SPECS = {name: specs.AlgorithmSpec(builder, _kwargs, data=specs.Data.SUPPORT,
                                   tasks_per_client=False)
         for name, builder in (('per_fedavg_fo', build_per_fedavg_fo),
                               ('per_fedavg_hf', build_per_fedavg_hf))}
