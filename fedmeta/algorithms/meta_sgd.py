"""Federated Meta-SGD (FedMeta-Meta-SGD).

Li et al., "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning", 2017,
https://arxiv.org/abs/1707.09835; federated as in Chen et al. 2018,
https://arxiv.org/abs/1802.07876.
"""

import functools
from typing import Optional

import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import client_work as client_work_lib
from fedmeta.algorithms import meta_tf
from fedmeta.algorithms import specs

DEFAULT_SERVER_OPTIMIZER_FN = client_work_lib.META_SERVER_OPTIMIZER_FN


def extended_weights(
    model_weights: tff.learning.models.ModelWeights,
    inner_learning_rate: float) -> tff.learning.models.ModelWeights:
  """Model weights with one inner-rate tensor per trainable weight appended,
  every entry `inner_learning_rate`: Meta-SGD's initial weights."""
  rates = tuple(tf.fill(tf.shape(w), tf.constant(inner_learning_rate, w.dtype))
                for w in model_weights.trainable)
  return tff.learning.models.ModelWeights(
      meta_tf.LearnedRates(tuple(model_weights.trainable), rates).joined(),
      model_weights.non_trainable)


def split_weights(weights: tff.learning.models.ModelWeights):
  """(model `ModelWeights`, inner rates) of Meta-SGD's extended weights."""
  model, rates = meta_tf.LearnedRates.split(weights.trainable)
  return (tff.learning.models.ModelWeights(model, weights.non_trainable),
          rates)


def build_meta_sgd(
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
  """Builds federated Meta-SGD: MAML with a learned per-parameter inner rate.

  Paper: Li et al. 2017, https://arxiv.org/abs/1707.09835; federated as
  in Chen et al. 2018, https://arxiv.org/abs/1802.07876.

  The global weights are the model's trainable weights followed by one
  inner-learning-rate tensor per weight (initialized to
  `inner_learning_rate`); clients return the meta-gradient of their query
  loss with respect to both, and both are averaged and updated by the
  server optimizer. `split_weights` separates them. With the rates held at
  `inner_learning_rate`, a round equals `fed_maml.build_fed_maml`'s.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel` with input spec
      `{'x': ..., 'y': ...}`; client datasets carry a `support` flag.
    inner_learning_rate: Initial value of every learned inner rate.
    inner_steps: Inner SGD steps, each on the whole support set.
    first_order: Drop the inner steps' second-order terms.
    task_per_batch: Each batch of a client's dataset is a task of its own;
      the client returns the mean of their meta-gradients weighted by query
      examples (`meta_tf.over_tasks`). Otherwise the dataset is one task.
    server_optimizer: The outer optimizer; Adam(0.001) if None.
    client_weighting: Weight meta-gradients by query examples or uniformly.
    model_aggregator: Any `tff.aggregators` factory (`fedmeta.aggregation`;
      an unweighted one averages clients uniformly);
      `fedmeta.aggregation.FusedMeanFactory()` if None.
    model_distributor: A `tff.learning.templates.DistributionProcess`;
      broadcast if None.

  Returns:
    A `tff.learning.templates.LearningProcess` over the extended weights.

  Raises:
    fedmeta.models.ModelError: If `model_fn` is not a suitable
      `FunctionalModel`.
    ValueError: For `inner_steps` < 1 or a negative learning rate.
  """
  client_work_lib.check_hyperparameters(inner_steps=inner_steps,
                                        inner_learning_rate=inner_learning_rate)
  weights_type = meta_tf.LearnedRates.weights_type(
      models.spec(model_fn).weights_type)

  @tff.tensorflow.computation
  def initial_weights_fn():
    return extended_weights(models.initial_weights(model_fn),
                            inner_learning_rate)

  local_fn = functools.partial(meta_tf.meta_sgd_gradient,
                               inner_steps=inner_steps,
                               first_order=first_order)
  if task_per_batch:
    local_fn = meta_tf.over_tasks(local_fn)
  return client_work_lib.build_meta_learning_process(
      model_fn, local_fn, client_weighting=client_weighting,
      server_optimizer=(server_optimizer
                        or DEFAULT_SERVER_OPTIMIZER_FN()),
      model_aggregator=model_aggregator, model_distributor=model_distributor,
      weights_type=weights_type,
      initial_weights_fn=initial_weights_fn)


SPECS = {'meta_sgd': specs.AlgorithmSpec(
    build_meta_sgd, specs.inner_loop, data=specs.Data.SUPPORT,
    server_optimizer='adam', learned_rates=True)}
