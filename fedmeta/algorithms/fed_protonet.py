"""Federated Prototypical Networks: metric-based federated meta-learning.

Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning",
NeurIPS 2017, https://arxiv.org/abs/1703.05175.

The model is an embedding network: its predictions are the embeddings. An
episode's prototypes are the means of each class's support embeddings; a
query is classified by the softmax over its negative distances to them.
Client datasets are episodes (`fedmeta.data.EpisodeSampler`), one batch an
episode with labels 0..N-1: a client takes one optimizer step per episode,
so the batches of its dataset are its local episodes of the round.

All of an episode's images go through the network in one pass (Snell et
al.'s code concatenates support and query), so batch statistics
(`fedmeta.models.BatchStatistics`) are the episode's own.
"""

import collections
import functools
from typing import Optional

import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import client_work as client_work_lib
from fedmeta.algorithms import evaluation
from fedmeta.algorithms import local_tf
from fedmeta.algorithms import meta_tf
from fedmeta.algorithms import specs
from fedmeta.data import iteration
from fedmeta.data import support_query

DISTANCES = ('squared_euclidean', 'cosine')
DEFAULT_SERVER_OPTIMIZER_FN = lambda: tff.learning.optimizers.build_adam(0.001)
# With one episode a client, any rate makes the update the gradient times
# the rate, which Adam's step does not see.
DEFAULT_CLIENT_OPTIMIZER_FN = lambda: tff.learning.optimizers.build_sgdm(0.1)


def prototypes(embeddings: tf.Tensor, labels: tf.Tensor,
               ways: tf.Tensor) -> tf.Tensor:
  """[ways, d]: the mean embedding of each label 0..ways-1."""
  return tf.math.unsorted_segment_mean(embeddings, labels, ways)


def distance_logits(queries: tf.Tensor, centers: tf.Tensor,
                    distance: str) -> tf.Tensor:
  """[q, ways] logits: minus the squared Euclidean distance from each query
  to each prototype, or their cosine similarity (the same softmax as minus
  the cosine distance)."""
  if distance == 'squared_euclidean':
    return -tf.reduce_sum(
        tf.square(queries[:, tf.newaxis, :] - centers[tf.newaxis, :, :]), -1)
  return tf.matmul(tf.math.l2_normalize(queries, -1),
                   tf.math.l2_normalize(centers, -1), transpose_b=True)


def episode_output(model, weights, batch, *, distance: str, training: bool):
  """(`tff.learning.models.BatchOutput`, query labels) of one episode.

  The output's predictions are the query logits and its loss their mean
  cross-entropy; an episode without support examples has no usable query.
  """
  x, y = models.batch_xy(batch)
  is_support = batch[support_query.SUPPORT_KEY]
  embeddings = model.predict(weights, x, training)
  # The static width: [n, -1] cannot be inferred for an empty batch.
  embeddings = tf.reshape(embeddings,
                          [-1, embeddings.shape[1:].num_elements()])
  support_y = tf.boolean_mask(y, is_support)
  ways = tf.reduce_max(tf.concat([support_y + 1, [0]], 0))
  is_query = tf.logical_and(tf.logical_not(is_support), ways > 0)
  query_y = tf.boolean_mask(y, is_query)
  logits = tf.cond(
      ways > 0,
      lambda: distance_logits(
          tf.boolean_mask(embeddings, is_query),
          prototypes(tf.boolean_mask(embeddings, is_support), support_y,
                     ways), distance),
      lambda: tf.zeros([0, 1], embeddings.dtype))
  num_queries = tf.shape(query_y)[0]
  loss = tf.math.divide_no_nan(
      tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=query_y, logits=logits)),
      tf.cast(num_queries, logits.dtype))
  return tff.learning.models.BatchOutput(
      loss=loss, predictions=logits, num_examples=num_queries), query_y


def episode_forward_and_gradient(model, weights, batch, *, distance: str):
  """`episode_output` in training mode, plus d loss / d trainable weights."""
  trainable, non_trainable = weights
  with tf.GradientTape() as tape:
    tape.watch(trainable)
    output, y = episode_output(model, (trainable, non_trainable), batch,
                               distance=distance, training=True)
  gradients = tape.gradient(output.loss, trainable,
                            unconnected_gradients=meta_tf.ZERO)
  return output, y, tuple(gradients)


def protonet_delta(model, weights, dataset: tf.data.Dataset, *,
                   optimizer: tff.learning.optimizers.Optimizer,
                   distance: str) -> local_tf.LocalResult:
  """One `optimizer` step on the prototypical loss per episode (batch) of
  `dataset`; the update is `initial - trained`, weighted by the queries."""
  return local_tf.train_locally(
      model, weights, dataset, optimizer=optimizer,
      forward_and_gradient=functools.partial(episode_forward_and_gradient,
                                             distance=distance))


def _check_distance(distance: str) -> None:
  if distance not in DISTANCES:
    raise ValueError(f'distance: must be one of {DISTANCES}, got '
                     f'{distance!r}')


def build_fed_protonet(
    model_fn: models.ModelFn,
    *,
    distance: str = 'squared_euclidean',
    client_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    server_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    client_weighting: client_work_lib.ClientWeighting = (
        client_work_lib.ClientWeighting.NUM_EXAMPLES),
    model_aggregator: Optional[tff.aggregators.AggregationFactory] = None,
    model_distributor: Optional[tff.learning.templates.DistributionProcess] = None,
) -> tff.learning.templates.LearningProcess:
  """Builds federated Prototypical Networks.

  Paper: Snell et al. 2017, https://arxiv.org/abs/1703.05175.

  Each client takes one `client_optimizer` step per episode of its dataset
  (a batch, labels 0..N-1, support-flagged) on the prototypical loss, and
  returns `broadcast - trained`; the server averages these (weighted by
  query examples, or uniformly) and applies them with `server_optimizer`.
  With one episode a client this is Snell et al.'s training with the
  round's episodes as one batch.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel` whose predictions are
      embeddings, input spec `{'x': ..., 'y': ...}` (its loss is unused).
    distance: 'squared_euclidean' (Snell et al.'s) or 'cosine'.
    client_optimizer: The step per local episode; SGD(0.1) if None.
    server_optimizer: Applies the averaged update; Adam(0.001) (Snell et
      al.'s) if None.
    client_weighting: Weight updates by query examples or uniformly.
    model_aggregator: Any `tff.aggregators` factory (`fedmeta.aggregation`;
      an unweighted one averages clients uniformly);
      `fedmeta.aggregation.FusedMeanFactory()` if None.
    model_distributor: A `tff.learning.templates.DistributionProcess`;
      broadcast if None.

  Returns:
    A `tff.learning.templates.LearningProcess`; its `train` metrics are the
    episodes' query metrics before each step.

  Raises:
    fedmeta.models.ModelError: If `model_fn` is not a suitable
      `FunctionalModel`.
    ValueError: For an unknown `distance`.
  """
  _check_distance(distance)
  local_fn = functools.partial(
      protonet_delta, distance=distance,
      optimizer=client_optimizer or DEFAULT_CLIENT_OPTIMIZER_FN())
  return client_work_lib.build_meta_learning_process(
      model_fn, local_fn, client_weighting=client_weighting,
      server_optimizer=server_optimizer or DEFAULT_SERVER_OPTIMIZER_FN(),
      model_aggregator=model_aggregator, model_distributor=model_distributor)


def build_protonet_eval(model_fn: models.ModelFn, *,
                        distance: str = 'squared_euclidean'):
  """Builds `evaluate(weights, episodes) -> summary`: each held-out episode
  classified by its own support prototypes, with no fine-tuning.

  Paper: Snell et al. 2017, https://arxiv.org/abs/1703.05175.

  Returns:
    A function of (`tff.learning.models.ModelWeights`, list of episode
    datasets, each one support-flagged episode in any batching) returning
    `fedmeta.algorithms.evaluation.summarize`'s summary with the one
    stage 'after' (the support set seen): mean, 95% CI and percentiles of
    the episodes' query metrics.
  """
  _check_distance(distance)
  data_type = client_work_lib.support_flagged_data_type(model_fn)
  model_spec = models.spec(model_fn)
  finalize = local_tf.build_metrics_finalizer(model_spec.finalize_metrics)

  def classify(model, weights, dataset):
    output, y = episode_output(model, weights,
                               iteration.concatenate(dataset),
                               distance=distance, training=False)
    metrics = local_tf.update_metrics_state(
        model, local_tf.initial_metrics_state(model), output, y)
    return collections.OrderedDict(after=finalize(
        local_tf.report_metrics_state(model, metrics)))

  @tff.tensorflow.computation(model_spec.weights_type, data_type)
  def client_eval(weights, dataset):
    return models.build(model_fn).run(
        classify, (weights.trainable, weights.non_trainable), dataset)

  @tff.federated_computation(
      tff.FederatedType(model_spec.weights_type, tff.SERVER),
      tff.FederatedType(data_type, tff.CLIENTS))
  def per_episode(weights, data):
    return tff.federated_map(client_eval,
                             (tff.federated_broadcast(weights), data))

  def evaluate(weights, episode_datasets):
    return evaluation.summarize(per_episode(weights, episode_datasets))

  return evaluate


SPECS = {'fed_protonet': specs.AlgorithmSpec(
    build_fed_protonet, lambda hyperparameters: {
        **specs.client_sgd(hyperparameters),
        'distance': hyperparameters.distance},
    data=specs.Data.EPISODIC, server_optimizer='adam', embedding=True)}
