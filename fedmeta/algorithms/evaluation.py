"""Federated evaluation: score global weights on any set of clients."""

import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import local_tf


def build_fed_eval(model_fn: tff.learning.models.FunctionalModel):
  """Builds a computation that evaluates weights on client datasets.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel`.

  Returns:
    A `tff.Computation` `(<ModelWeights@SERVER, {B*}@CLIENTS> -> M@SERVER)`
    where `M` holds the model's metrics plus loss, num_examples and
    num_batches, pooled over all clients' examples.
  """
  model = models.as_functional(model_fn)
  weights_type = models.weights_type(model)
  data_type = tff.SequenceType(tff.types.tensorflow_to_type(model.input_spec))

  @tff.tensorflow.computation(weights_type, data_type)
  def client_eval(weights, dataset):
    return local_tf.evaluate_locally(
        model, (weights.trainable, weights.non_trainable), dataset)

  aggregate = tff.learning.metrics.sum_then_finalize(
      local_tf.build_metrics_finalizer(model))

  @tff.federated_computation(tff.FederatedType(weights_type, tff.SERVER),
                             tff.FederatedType(data_type, tff.CLIENTS))
  def fed_eval(weights, data):
    return aggregate(
        tff.federated_map(client_eval, (tff.federated_broadcast(weights), data)))

  return fed_eval
