"""Client-side TensorFlow of the FedAvg family: plain functions, no federated
computations.

Each function takes a model adapter (`fedmeta.models.build`), weights as
`(trainable, non_trainable)` tuples of tensors and a `tf.data.Dataset`, and can
be called inside a `tf.function` or a `tff.tensorflow.computation`.

The model's metrics state is extended with the example-weighted loss sum and
the example and batch counts (`initial_metrics_state`), finalized by
`build_metrics_finalizer`.
"""

import collections
from typing import Any, NamedTuple

import tensorflow as tf
import tensorflow_federated as tff

from fedmeta.data import iteration

Weights = tuple[tuple[tf.Tensor, ...], tuple[tf.Tensor, ...]]


class LocalResult(NamedTuple):
  """What a client's local computation produces.

  Attributes:
    update: A structure matching the trainable weights: a model delta
      (initial - trained) or a gradient, both applied by a server optimizer.
    num_examples: int64 scalar, examples the client processed.
    metrics: The client's unfinalized metrics (see `initial_metrics_state`).
  """
  update: Any
  num_examples: tf.Tensor
  metrics: Any


def initial_metrics_state(model):
  return collections.OrderedDict(
      model=model.initialize_metrics_state(),
      loss_sum=tf.constant(0.0, tf.float32),
      num_examples=tf.constant(0, tf.int64),
      num_batches=tf.constant(0, tf.int64))


def update_metrics_state(model, state, batch_output, y):
  """Adds one batch's `tff.learning.models.BatchOutput` to `state`."""
  n = tf.cast(batch_output.num_examples, tf.int64)
  loss = tf.cast(batch_output.loss, tf.float32)  # Whatever the model's dtype.
  return collections.OrderedDict(
      model=model.update_metrics_state(state['model'], batch_output, y),
      loss_sum=state['loss_sum'] + loss * tf.cast(n, tf.float32),
      num_examples=state['num_examples'] + n,
      num_batches=state['num_batches'] + 1)


def report_metrics_state(model, state):
  """The client's unfinalized metrics once its loop is done."""
  reported = collections.OrderedDict(state)
  reported['model'] = model.report_metrics_state(state['model'])
  return reported


def build_metrics_finalizer(finalize_model_metrics):
  """Extends a model's metrics finalizer (`fedmeta.models.ModelSpec`) to the
  full metrics state, adding loss, num_examples and num_batches."""
  def finalize(state):
    metrics = collections.OrderedDict(finalize_model_metrics(state['model']))
    metrics['loss'] = tf.math.divide_no_nan(
        state['loss_sum'], tf.cast(state['num_examples'], tf.float32))
    metrics['num_examples'] = state['num_examples']
    metrics['num_batches'] = state['num_batches']
    return metrics
  return finalize


def train_locally(
    model,
    initial_weights: Weights,
    dataset: tf.data.Dataset,
    *,
    optimizer: tff.learning.optimizers.Optimizer,
    proximal_strength: float = 0.0,
    forward_and_gradient=None,
) -> LocalResult:
  """Runs one optimizer step per batch of `dataset`, starting at the weights.

  With `proximal_strength` mu > 0 each step minimizes the FedProx objective
  loss(w) + mu/2 ||w - w_initial||^2, whose gradient adds mu (w - w_initial).
  `forward_and_gradient(model, weights, batch)` replaces the model's own
  loss: it returns (BatchOutput, labels, gradients) as
  `model.forward_and_gradient` does.

  Returns:
    A `LocalResult` whose update is the model delta `initial - trained`.
  """
  initial_trainable, non_trainable = initial_weights
  specs = tuple(tf.TensorSpec.from_tensor(w) for w in initial_trainable)
  if forward_and_gradient is None:
    forward_and_gradient = lambda m, w, b: m.forward_and_gradient(w, b)

  def step(state, batch):
    trainable, opt_state, metrics = state
    batch_output, y, gradients = forward_and_gradient(
        model, (trainable, non_trainable), batch)
    if proximal_strength > 0.0:
      gradients = tuple(
          g + proximal_strength * (w - w0)
          for g, w, w0 in zip(gradients, trainable, initial_trainable))
    opt_state, trainable = optimizer.next(opt_state, trainable, gradients)
    metrics = update_metrics_state(model, metrics, batch_output, y)
    return tuple(trainable), opt_state, metrics

  trainable, _, metrics = iteration.reduce(
      dataset, (tuple(initial_trainable), optimizer.initialize(specs),
       initial_metrics_state(model)), step)
  delta = tuple(w0 - w for w0, w in zip(initial_trainable, trainable))
  return LocalResult(delta, metrics['num_examples'],
                     report_metrics_state(model, metrics))


def full_batch_gradient(model, weights: Weights,
                        dataset: tf.data.Dataset) -> LocalResult:
  """Gradient of the mean loss over all of `dataset` at fixed `weights`.

  Batches are weighted by their size, so the result does not depend on how
  the client's data is batched (FedSGD's client step).
  """
  trainable, _ = weights

  def accumulate(state, batch):
    gradient_sum, metrics = state
    batch_output, y, gradients = model.forward_and_gradient(weights, batch)
    n = tf.cast(batch_output.num_examples, tf.float32)
    gradient_sum = tuple(s + n * g for s, g in zip(gradient_sum, gradients))
    return gradient_sum, update_metrics_state(model, metrics, batch_output, y)

  gradient_sum, metrics = iteration.reduce(
      dataset, (tuple(tf.zeros_like(w) for w in trainable),
       initial_metrics_state(model)), accumulate)
  n = tf.cast(metrics['num_examples'], tf.float32)
  gradient = tuple(tf.math.divide_no_nan(s, n) for s in gradient_sum)
  return LocalResult(gradient, metrics['num_examples'],
                     report_metrics_state(model, metrics))


def evaluate_locally(model, weights: Weights, dataset: tf.data.Dataset):
  """Unfinalized metrics of `model` at `weights` over all of `dataset`."""
  def accumulate(metrics, batch):
    batch_output, y = model.forward(weights, batch, training=False)
    return update_metrics_state(model, metrics, batch_output, y)
  return report_metrics_state(
      model, iteration.reduce(dataset, initial_metrics_state(model),
                              accumulate))
