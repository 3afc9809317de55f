"""Federated SGD: one full-batch gradient per client per round.

McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017 (FedSGD baseline).
https://arxiv.org/abs/1602.05629
"""

from typing import Optional

import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import client_work as client_work_lib
from fedmeta.algorithms import local_tf
from fedmeta.algorithms import specs

DEFAULT_SERVER_OPTIMIZER_FN = lambda: tff.learning.optimizers.build_sgdm(0.1)


def build_fed_sgd(
    model_fn: models.ModelFn,
    *,
    server_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    client_weighting: client_work_lib.ClientWeighting = (
        client_work_lib.ClientWeighting.NUM_EXAMPLES),
    model_aggregator: Optional[tff.aggregators.AggregationFactory] = None,
    model_distributor: Optional[tff.learning.templates.DistributionProcess] = None,
) -> tff.learning.templates.LearningProcess:
  """Builds FedSGD: clients send the gradient of their mean loss.

  Paper: McMahan et al. 2017 (FedSGD), https://arxiv.org/abs/1602.05629.

  With example weighting the server step is exactly one step of full-batch
  gradient descent on the union of the round's client data.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel`, or a no-arg callable
      returning a new `tff.learning.models.VariableModel`.
    server_optimizer: A `tff.learning.optimizers.Optimizer`; SGD(0.1) if None.
    client_weighting: Weight gradients by client examples or uniformly.
    model_aggregator: Any `tff.aggregators` factory (`fedmeta.aggregation`;
      an unweighted one averages clients uniformly).
    model_distributor: A `tff.learning.templates.DistributionProcess`.

  Returns:
    A `tff.learning.templates.LearningProcess`.
  """
  return client_work_lib.build_learning_process(
      model_fn,
      client_work_lib.build_client_work(
          model_fn, local_tf.full_batch_gradient,
          client_weighting=client_weighting),
      server_optimizer=server_optimizer or DEFAULT_SERVER_OPTIMIZER_FN(),
      model_aggregator=model_aggregator,
      model_distributor=model_distributor)


SPECS = {'fed_sgd': specs.AlgorithmSpec(build_fed_sgd, lambda _: {})}
