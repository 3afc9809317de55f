"""Federated MAML (FedMeta-MAML) and its first-order approximation.

Chen et al., "Federated Meta-Learning with Fast Convergence and Efficient
Communication", 2018, https://arxiv.org/abs/1802.07876; MAML: Finn et al.,
"Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", ICML
2017, https://arxiv.org/abs/1703.03400.
"""

import functools
from typing import Optional

import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import client_work as client_work_lib
from fedmeta.algorithms import meta_tf
from fedmeta.algorithms import specs

DEFAULT_SERVER_OPTIMIZER_FN = client_work_lib.META_SERVER_OPTIMIZER_FN


def build_fed_maml(
    model_fn: models.ModelFn,
    *,
    inner_learning_rate: float = 0.01,
    inner_steps: int = 1,
    first_order: bool = False,
    task_per_batch: bool = False,
    server_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    client_weighting: client_work_lib.ClientWeighting = (
        client_work_lib.ClientWeighting.NUM_EXAMPLES),
    model_aggregator: Optional[tff.aggregators.AggregationFactory] = None,
    model_distributor: Optional[tff.learning.templates.DistributionProcess] = None,
) -> tff.learning.templates.LearningProcess:
  """Builds federated MAML: clients return meta-gradients, the server applies
  their average with an outer optimizer.

  Paper: Chen et al. 2018 (FedMeta), https://arxiv.org/abs/1802.07876;
  Finn et al. 2017 (MAML), https://arxiv.org/abs/1703.03400.

  Each client adapts the broadcast weights with `inner_steps` SGD steps
  (rate `inner_learning_rate`) on its support set and returns the gradient
  of its query loss with respect to the broadcast weights, through the inner
  steps (second order). The server averages these meta-gradients (weighted
  by query examples, or uniformly) and applies them with `server_optimizer`.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel` with input spec
      `{'x': ..., 'y': ...}`. Client datasets are its batches plus a boolean
      `support` per example (`fedmeta.data.split_client_data`).
    inner_learning_rate: MAML's alpha.
    inner_steps: Inner SGD steps, each on the whole support set.
    first_order: Drop the inner steps' Jacobian (first-order MAML).
    task_per_batch: Each batch of a client's dataset is a task of its own
      (several episodes a client); the client returns the mean of their
      meta-gradients weighted by query examples (`meta_tf.over_tasks`).
      Otherwise the whole dataset is one task.
    server_optimizer: The outer optimizer; Adam(0.001) (MAML's) if None.
    client_weighting: Weight meta-gradients by query examples or uniformly.
    model_aggregator: Any `tff.aggregators` factory (`fedmeta.aggregation`;
      an unweighted one averages clients uniformly);
      `fedmeta.aggregation.FusedMeanFactory()` if None.
    model_distributor: A `tff.learning.templates.DistributionProcess`;
      broadcast if None.

  Returns:
    A `tff.learning.templates.LearningProcess`; its `train` metrics are the
    sampled clients' query metrics after adaptation.

  Raises:
    fedmeta.models.ModelError: If `model_fn` is not a suitable
      `FunctionalModel`.
    ValueError: For `inner_steps` < 1 or a negative learning rate.
  """
  client_work_lib.check_hyperparameters(inner_steps=inner_steps,
                                        inner_learning_rate=inner_learning_rate)
  local_fn = functools.partial(
      meta_tf.maml_gradient, inner_learning_rate=inner_learning_rate,
      inner_steps=inner_steps, first_order=first_order)
  if task_per_batch:
    local_fn = meta_tf.over_tasks(local_fn)
  return client_work_lib.build_meta_learning_process(
      model_fn, local_fn, client_weighting=client_weighting,
      server_optimizer=server_optimizer or DEFAULT_SERVER_OPTIMIZER_FN(),
      model_aggregator=model_aggregator, model_distributor=model_distributor)


def build_fo_maml(model_fn: models.ModelFn,
                  **kwargs) -> tff.learning.templates.LearningProcess:
  """First-order federated MAML: `build_fed_maml(..., first_order=True)`.

  Finn et al. 2017, section 5.2. Takes `build_fed_maml`'s keyword arguments
  except `first_order`.
  """
  if 'first_order' in kwargs:
    raise TypeError('build_fo_maml: first_order is fixed to True')
  return build_fed_maml(model_fn, first_order=True, **kwargs)


SPECS = {name: specs.AlgorithmSpec(builder, specs.inner_loop,
                                   data=specs.Data.SUPPORT,
                                   server_optimizer='adam')
         for name, builder in (('fed_maml', build_fed_maml),
                               ('fo_maml', build_fo_maml))}
