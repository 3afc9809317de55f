"""The federated parts every fedmeta algorithm shares.

An algorithm is TFF's composition of four processes (see
`tff.learning.templates.compose_learning_process`): a distributor (broadcast),
a client work process, an aggregator (any `tff.aggregators` factory: mean,
DP, secure sum, compression, robust statistics; see `fedmeta.aggregation`) and a finalizer (a server optimizer). Only
the client work differs between algorithms, and only in its TensorFlow
`LocalFn`; `build_learning_process` does the rest.
"""

import collections
import enum
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import aggregation
from fedmeta import models
from fedmeta.algorithms import local_tf
from fedmeta.data import support_query

# Server steps: the mean client delta applied as it is (FedAvg; Reptile's
# outer step 1; Per-FedAvg), and MAML's meta-optimizer (Finn et al.'s Adam).
AVERAGING_SERVER_OPTIMIZER_FN = lambda: tff.learning.optimizers.build_sgdm(1.0)
META_SERVER_OPTIMIZER_FN = lambda: tff.learning.optimizers.build_adam(0.001)


def check_hyperparameters(**values: float) -> None:
  """Raises ValueError naming a `*_steps` value < 1 or another value < 0."""
  for name, value in values.items():
    lowest = 1 if name.endswith('_steps') else 0
    if value < lowest:
      raise ValueError(f'{name}: must be >= {lowest}, got {value}')

# (model adapter, initial weights as (trainable, non_trainable), dataset)
#   -> LocalResult.
LocalFn = Callable[..., local_tf.LocalResult]


class ClientWeighting(enum.Enum):
  """How client updates are weighted in the server average."""
  NUM_EXAMPLES = 'num_examples'
  UNIFORM = 'uniform'


def finalize_client_result(
    result: local_tf.LocalResult, weighting: ClientWeighting):
  """Returns (ClientResult, metrics, dropped) for one client.

  A client whose update is non-finite, or which saw no example, gets weight
  zero and a zero update, so it cannot move the global model; its metrics are
  reset. `dropped` is the indicator pair (empty, non_finite) as int32.
  """
  update, non_finite = tff.learning.tensor_utils.zero_all_if_any_non_finite(
      result.update)
  non_finite = tf.cast(non_finite, tf.int32)
  empty = tf.cast(tf.equal(result.num_examples, 0), tf.int32)
  keep = tf.cast(tf.equal(empty + non_finite, 0), tf.float32)
  if weighting == ClientWeighting.NUM_EXAMPLES:
    weight = keep * tf.cast(result.num_examples, tf.float32)
  else:
    weight = keep
  metrics = tf.cond(
      tf.cast(non_finite, tf.bool),
      lambda: tf.nest.map_structure(tf.zeros_like, result.metrics),
      lambda: result.metrics)
  return (tff.learning.templates.ClientResult(update=update,
                                              update_weight=weight),
          metrics,
          collections.OrderedDict(clients_empty=empty,
                                  clients_non_finite=non_finite))


def build_client_work(
    model_fn: models.ModelFn,
    local_fn: LocalFn,
    *,
    client_weighting: ClientWeighting = ClientWeighting.NUM_EXAMPLES,
    weights_type: Optional[tff.Type] = None,
    data_type: Optional[tff.Type] = None,
) -> tff.learning.templates.ClientWorkProcess:
  """A stateless `ClientWorkProcess` that runs `local_fn` on every client.

  Its measurements are `train` (the model's metrics plus loss, num_examples
  and num_batches, summed over clients then finalized) and the counts
  `clients_empty` / `clients_non_finite` of zero-weighted clients.

  Args:
    model_fn: The model being trained (see `fedmeta.models.ModelFn`).
    local_fn: Builds the client's `LocalResult`; called inside a
      `tff.tensorflow.computation` with the model's adapter, the broadcast
      weights and the dataset.
    client_weighting: A `ClientWeighting`.
    weights_type: The TFF type of the broadcast weights; the model's
      `ModelWeights` when None (Meta-SGD extends them).
    data_type: The TFF type of a client dataset; a sequence of the model's
      `input_spec` when None (meta-learning adds a support flag).

  Returns:
    A `tff.learning.templates.ClientWorkProcess` with type signature
    `(<state=()@SERVER, weights={ModelWeights}@CLIENTS, data={B*}@CLIENTS> ->
    <state, result={ClientResult}@CLIENTS, measurements@SERVER>)`.
  """
  model_spec = models.spec(model_fn)
  weights_type = weights_type or model_spec.weights_type
  data_type = data_type or model_spec.data_type

  @tff.tensorflow.computation(weights_type, data_type)
  def client_update(weights, dataset):
    result = models.build(model_fn).run(
        local_fn, (weights.trainable, weights.non_trainable), dataset)
    return finalize_client_result(result, client_weighting)

  finalize_metrics = local_tf.build_metrics_finalizer(
      model_spec.finalize_metrics)

  # One federated sum of the metrics and the counts together: TFF's runtime
  # runs each sum as a chain of one call per client, and waits for it.
  @tff.tensorflow.computation(client_update.type_signature.result[1:])
  def measure(sums):
    metrics, dropped = sums
    return collections.OrderedDict(train=finalize_metrics(metrics), **dropped)

  @tff.federated_computation
  def init_fn():
    return tff.federated_value((), tff.SERVER)

  @tff.federated_computation(
      tff.FederatedType((), tff.SERVER),
      tff.FederatedType(weights_type, tff.CLIENTS),
      tff.FederatedType(data_type, tff.CLIENTS))
  def next_fn(state, weights, data):
    result, metrics, dropped = tff.federated_map(client_update, (weights, data))
    measurements = tff.federated_map(
        measure, tff.federated_sum((metrics, dropped)))
    return tff.templates.MeasuredProcessOutput(state, result, measurements)

  return tff.learning.templates.ClientWorkProcess(init_fn, next_fn)


def build_learning_process(
    model_fn: models.ModelFn,
    client_work: tff.learning.templates.ClientWorkProcess,
    *,
    server_optimizer: tff.learning.optimizers.Optimizer,
    model_aggregator: Optional[tff.aggregators.AggregationFactory],
    model_distributor: Optional[tff.learning.templates.DistributionProcess],
    initial_weights_fn: Optional[tff.Computation] = None,
) -> tff.learning.templates.LearningProcess:
  """Composes broadcast, `client_work`, aggregation and a server optimizer.

  Args:
    model_fn: The model being trained (see `fedmeta.models.ModelFn`).
    client_work: Its client work, e.g. from `build_client_work`.
    server_optimizer: Applies the aggregated update to the global weights, as
      a gradient (`tff.learning.templates.build_apply_optimizer_finalizer`).
    model_aggregator: Any `tff.aggregators` factory (see
      `fedmeta.aggregation`); an unweighted one averages clients uniformly.
      `fedmeta.aggregation.FusedMeanFactory()` (TFF's `MeanFactory`, bit for
      bit) when None.
    model_distributor: A `tff.learning.templates.DistributionProcess`;
      broadcast when None.
    initial_weights_fn: A no-arg `tff.tensorflow.computation` returning the
      initial `ModelWeights`; the model's own when None.

  Returns:
    A `tff.learning.templates.LearningProcess` whose state is a
    `tff.learning.templates.LearningAlgorithmState`.
  """
  # The client work's `next` takes <state, weights@CLIENTS, data@CLIENTS>.
  weights_type = client_work.next.type_signature.parameter[1].member

  if initial_weights_fn is None:
    initial_weights_fn = tff.tensorflow.computation(
        lambda: models.initial_weights(model_fn))
  if model_distributor is None:
    model_distributor = tff.learning.templates.build_broadcast_process(
        weights_type)
  if model_aggregator is None:
    model_aggregator = aggregation.FusedMeanFactory()
  if not isinstance(model_aggregator, (
      tff.aggregators.WeightedAggregationFactory,
      tff.aggregators.UnweightedAggregationFactory)):
    raise TypeError(
        'model_aggregator: expected a tff.aggregators aggregation factory, '
        f'got {type(model_aggregator).__name__}')
  aggregator = aggregation.as_weighted(model_aggregator).create(
      weights_type.trainable, tff.TensorType(np.float32))
  finalizer = tff.learning.templates.build_apply_optimizer_finalizer(
      server_optimizer, weights_type)
  return tff.learning.templates.compose_learning_process(
      initial_weights_fn, model_distributor, client_work, aggregator,
      finalizer)


def support_flagged_data_type(model_fn: models.ModelFn) -> tff.SequenceType:
  """A client dataset for meta-learning: the model's batches plus a boolean
  `support` per example (`fedmeta.data.support_query`).

  Raises:
    fedmeta.models.ModelError: If `model_fn` is not a `FunctionalModel` with
      a `{'x': ..., 'y': ...}` input spec (inner loops differentiate through
      a pure forward pass).
  """
  if not isinstance(model_fn, tff.learning.models.FunctionalModel):
    raise models.ModelError(
        'model_fn: meta-learning needs a tff.learning.models.FunctionalModel '
        '(e.g. fedmeta.models.from_keras), whose forward pass is a pure '
        f'function of the weights; got {type(model_fn).__name__}')
  input_spec = model_fn.input_spec
  if not isinstance(input_spec, collections.abc.Mapping):
    raise models.ModelError(
        "model_fn: meta-learning needs input_spec {'x': ..., 'y': ...}, got "
        f'{type(input_spec).__name__}')
  element = dict(input_spec)
  element[support_query.SUPPORT_KEY] = tf.TensorSpec([None], tf.bool)
  # Sorted, as tf.nest orders the dict elements that datasets yield.
  return tff.SequenceType(tff.types.tensorflow_to_type(
      collections.OrderedDict(sorted(element.items()))))


def build_meta_learning_process(
    model_fn: models.ModelFn,
    local_fn: LocalFn,
    *,
    client_weighting: ClientWeighting,
    server_optimizer: tff.learning.optimizers.Optimizer,
    model_aggregator: Optional[tff.aggregators.AggregationFactory],
    model_distributor: Optional[tff.learning.templates.DistributionProcess],
    weights_type: Optional[tff.Type] = None,
    initial_weights_fn: Optional[tff.Computation] = None,
) -> tff.learning.templates.LearningProcess:
  """`build_learning_process` over support-flagged client datasets.

  Raises:
    fedmeta.models.ModelError: See `support_flagged_data_type`.
  """
  data_type = support_flagged_data_type(model_fn)
  return build_learning_process(
      model_fn,
      build_client_work(model_fn, local_fn, client_weighting=client_weighting,
                        weights_type=weights_type, data_type=data_type),
      server_optimizer=server_optimizer,
      model_aggregator=model_aggregator,
      model_distributor=model_distributor,
      initial_weights_fn=initial_weights_fn)
