"""Federated evaluation: score global weights on any set of clients, and
summarize per-client scores."""

import collections

import numpy as np
import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import local_tf
from fedmeta.data import episodes

PERCENTILES = (10, 50, 90)


def summarize(per_client: list) -> collections.OrderedDict:
  """{stage: {metric: {'mean', 'ci95', 'p10', 'p50', 'p90'}}} over clients
  that have query examples (`num_examples` > 0); `num_clients` counts them.
  Stages are the clients' ('before' and 'after' adaptation here). `ci95` is
  the half-width of the mean's 95% confidence interval
  (`fedmeta.data.episodes.confidence_95`)."""
  kept = [c for c in per_client
          if next(iter(c.values()))['num_examples'] > 0]
  summary = collections.OrderedDict(num_clients=len(kept))
  if not kept:
    return summary
  for stage in kept[0]:
    summary[stage] = collections.OrderedDict()
    for name in kept[0][stage]:
      if name in ('num_examples', 'num_batches'):
        continue
      values = np.asarray([float(c[stage][name]) for c in kept])
      stats = collections.OrderedDict(mean=float(values.mean()),
                                      ci95=episodes.confidence_95(values))
      for q in PERCENTILES:
        stats[f'p{q}'] = float(np.percentile(values, q))
      summary[stage][name] = stats
  return summary


def build_fed_eval(model_fn: models.ModelFn):
  """Builds a computation that evaluates weights on client datasets.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel`, or a no-arg callable
      returning a new `tff.learning.models.VariableModel`.

  Returns:
    A `tff.Computation` `(<ModelWeights@SERVER, {B*}@CLIENTS> -> M@SERVER)`
    where `M` holds the model's metrics plus loss, num_examples and
    num_batches, pooled over all clients' examples.
  """
  model_spec = models.spec(model_fn)
  weights_type, data_type = model_spec.weights_type, model_spec.data_type

  @tff.tensorflow.computation(weights_type, data_type)
  def client_eval(weights, dataset):
    return models.build(model_fn).run(
        local_tf.evaluate_locally, (weights.trainable, weights.non_trainable),
        dataset)

  aggregate = tff.learning.metrics.sum_then_finalize(
      local_tf.build_metrics_finalizer(model_spec.finalize_metrics))

  @tff.federated_computation(tff.FederatedType(weights_type, tff.SERVER),
                             tff.FederatedType(data_type, tff.CLIENTS))
  def fed_eval(weights, data):
    return aggregate(
        tff.federated_map(client_eval, (tff.federated_broadcast(weights), data)))

  return fed_eval
