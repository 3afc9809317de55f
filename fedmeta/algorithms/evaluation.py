"""Federated evaluation: score global weights on any set of clients."""

import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import local_tf


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
