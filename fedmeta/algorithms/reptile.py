"""Federated Reptile.

Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", 2018,
https://arxiv.org/abs/1803.02999.
"""

import functools
from typing import Optional

import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import client_work as client_work_lib
from fedmeta.algorithms import meta_tf
from fedmeta.algorithms import specs

DEFAULT_SERVER_OPTIMIZER_FN = client_work_lib.AVERAGING_SERVER_OPTIMIZER_FN


def build_reptile(
    model_fn: models.ModelFn,
    *,
    inner_learning_rate: float = 0.01,
    inner_steps: int = 5,
    inner_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    inner_batch_size: Optional[int] = None,
    task_per_batch: bool = False,
    server_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    client_weighting: client_work_lib.ClientWeighting = (
        client_work_lib.ClientWeighting.NUM_EXAMPLES),
    model_aggregator: Optional[tff.aggregators.AggregationFactory] = None,
    model_distributor: Optional[tff.learning.templates.DistributionProcess] = None,
) -> tff.learning.templates.LearningProcess:
  """Builds federated Reptile: the server moves toward adapted weights.

  Paper: Nichol et al. 2018, https://arxiv.org/abs/1803.02999.

  Each client runs `inner_steps` SGD steps (rate `inner_learning_rate`), or
  steps of `inner_optimizer` from a fresh state (the paper's Omniglot runs
  use Adam with beta_1 = 0, `fedmeta.algorithms.specs.inner_optimizer`,
  whose moments carry over from task to task there; a client keeps no
  state between tasks), on its whole support set or on minibatches of it,
  and returns
  `global - adapted`; the server averages
  these (weighted by support examples, or uniformly) and applies them with
  `server_optimizer`, whose learning rate is Reptile's outer step size
  epsilon. With one inner step and SGD(1.0) this is FedAvg with one local
  step on the support set.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel` with input spec
      `{'x': ..., 'y': ...}`; client datasets carry a `support` flag.
    inner_learning_rate: The clients' SGD rate.
    inner_steps: Steps per client.
    inner_optimizer: The clients' optimizer, its state fresh on each task;
      SGD at `inner_learning_rate` if None.
    inner_batch_size: Each step takes the next minibatch of at most this
      many support examples (`meta_tf.minibatch`: a pass without
      replacement every ceil(support / size) steps); the whole support set
      if None.
    task_per_batch: Each batch of a client's dataset is a task of its own;
      the client returns the mean of their differences weighted by support
      examples (`meta_tf.over_tasks`). Otherwise the dataset is one task.
    server_optimizer: Applies the averaged difference; SGD(1.0) if None.
    client_weighting: Weight differences by support examples or uniformly.
    model_aggregator: Any `tff.aggregators` factory (`fedmeta.aggregation`;
      an unweighted one averages clients uniformly);
      `fedmeta.aggregation.FusedMeanFactory()` if None.
    model_distributor: A `tff.learning.templates.DistributionProcess`;
      broadcast if None.

  Returns:
    A `tff.learning.templates.LearningProcess`; its `train` metrics are the
    clients' query metrics after adaptation.

  Raises:
    fedmeta.models.ModelError: If `model_fn` is not a suitable
      `FunctionalModel`.
    ValueError: For `inner_steps` or `inner_batch_size` < 1, or a negative
      learning rate.
  """
  client_work_lib.check_hyperparameters(inner_steps=inner_steps,
                                        inner_learning_rate=inner_learning_rate)
  if inner_batch_size is not None and inner_batch_size < 1:
    raise ValueError(f'inner_batch_size must be >= 1, got {inner_batch_size}')
  local_fn = functools.partial(meta_tf.reptile_delta,
                               inner_learning_rate=inner_learning_rate,
                               inner_steps=inner_steps,
                               inner_optimizer=inner_optimizer,
                               inner_batch_size=inner_batch_size)
  if task_per_batch:
    local_fn = meta_tf.over_tasks(local_fn)
  return client_work_lib.build_meta_learning_process(
      model_fn, local_fn, client_weighting=client_weighting,
      server_optimizer=server_optimizer or DEFAULT_SERVER_OPTIMIZER_FN(),
      model_aggregator=model_aggregator, model_distributor=model_distributor)


def _kwargs(hyperparameters: specs.Hyperparameters) -> dict:
  return {**specs.inner_loop(hyperparameters),
          'inner_optimizer': specs.inner_optimizer(hyperparameters),
          'inner_batch_size': hyperparameters.inner_batch_size}


SPECS = {'reptile': specs.AlgorithmSpec(build_reptile, _kwargs,
                                     data=specs.Data.SUPPORT,
                                     inner_optimizers=True)}
