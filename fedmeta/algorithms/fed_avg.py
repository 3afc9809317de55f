"""Federated Averaging.

McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017. https://arxiv.org/abs/1602.05629
"""

import functools
from typing import Optional

import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import client_work as client_work_lib
from fedmeta.algorithms import local_tf
from fedmeta.algorithms import specs

DEFAULT_CLIENT_OPTIMIZER_FN = lambda: tff.learning.optimizers.build_sgdm(0.1)
DEFAULT_SERVER_OPTIMIZER_FN = client_work_lib.AVERAGING_SERVER_OPTIMIZER_FN


def build_fed_avg(
    model_fn: models.ModelFn,
    *,
    client_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    server_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    client_weighting: client_work_lib.ClientWeighting = (
        client_work_lib.ClientWeighting.NUM_EXAMPLES),
    proximal_strength: float = 0.0,
    model_aggregator: Optional[tff.aggregators.AggregationFactory] = None,
    model_distributor: Optional[tff.learning.templates.DistributionProcess] = None,
) -> tff.learning.templates.LearningProcess:
  """Builds FedAvg: local optimizer steps on clients, averaged model deltas.

  Paper: McMahan et al. 2017, https://arxiv.org/abs/1602.05629.

  Each client runs `client_optimizer` over its dataset (one step per batch;
  epochs and batch size come from how the dataset is built) and returns
  `initial - trained`; the server averages these deltas and applies them with
  `server_optimizer` (SGD with learning rate 1 is McMahan et al.'s FedAvg;
  other optimizers give Reddi et al.'s FedOpt, see `fed_opt`).

  Args:
    model_fn: A `tff.learning.models.FunctionalModel` (e.g. from
      `fedmeta.models.from_keras`), or a no-arg callable that builds a new
      `tff.learning.models.VariableModel` on each call.
    client_optimizer: A `tff.learning.optimizers.Optimizer`; SGD(0.1) if None.
    server_optimizer: A `tff.learning.optimizers.Optimizer`; SGD(1.0) if None.
    client_weighting: Weight deltas by client examples or uniformly.
    proximal_strength: FedProx's mu (see `fed_prox`); 0 is plain FedAvg.
    model_aggregator: Any `tff.aggregators` factory (`fedmeta.aggregation`;
      an unweighted one averages clients uniformly);
      `fedmeta.aggregation.FusedMeanFactory()` if None.
    model_distributor: A `tff.learning.templates.DistributionProcess`;
      broadcast if None.

  Returns:
    A `tff.learning.templates.LearningProcess` with `initialize`, `next`
    `(<state@SERVER, {B*}@CLIENTS> -> <state, metrics>@SERVER)`,
    `get_model_weights` and `set_model_weights`.

  Raises:
    fedmeta.models.ModelError: If `model_fn` is neither kind of model.
    ValueError: If `proximal_strength` is negative.
  """
  if proximal_strength < 0:
    raise ValueError(
        f'proximal_strength: must be >= 0, got {proximal_strength}')
  local_fn = functools.partial(
      local_tf.train_locally,
      optimizer=client_optimizer or DEFAULT_CLIENT_OPTIMIZER_FN(),
      proximal_strength=proximal_strength)
  return client_work_lib.build_learning_process(
      model_fn,
      client_work_lib.build_client_work(
          model_fn, local_fn, client_weighting=client_weighting),
      server_optimizer=server_optimizer or DEFAULT_SERVER_OPTIMIZER_FN(),
      model_aggregator=model_aggregator,
      model_distributor=model_distributor)


SPECS = {'fed_avg': specs.AlgorithmSpec(build_fed_avg, specs.client_sgd)}
