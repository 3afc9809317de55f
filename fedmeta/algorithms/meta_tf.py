"""Client-side TensorFlow of federated meta-learning: plain functions.

A client's dataset carries a boolean `support` per example
(`fedmeta.data.support_query`). Inner loops use the whole support set as one
batch, as MAML does for K-shot tasks, and are unrolled in Python on explicit
weights, so nested `tf.GradientTape`s differentiate through them (second
order) unless `first_order` stops the inner gradients. Losses on the query
set are means over all its examples. Every function here takes a model
adapter (`fedmeta.models.build`; a `FunctionalModel`'s) and weights as
`(trainable, non_trainable)` tuples.
"""

import collections
from typing import NamedTuple, Optional, Sequence

import tensorflow as tf
import tensorflow_federated as tff

from fedmeta.algorithms import local_tf
from fedmeta.data import iteration
from fedmeta.data import support_query

ZERO = tf.UnconnectedGradients.ZERO


def support_and_query(dataset: tf.data.Dataset):
  """(support batch, query batch) of a batched, support-flagged dataset."""
  examples = dict(iteration.concatenate(dataset))
  is_support = examples.pop(support_query.SUPPORT_KEY)
  return tuple(
      {k: tf.boolean_mask(v, mask) for k, v in examples.items()}
      for mask in (is_support, tf.logical_not(is_support)))


def num_rows(batch) -> tf.Tensor:
  return tf.shape(batch['y'], out_type=tf.int64)[0]


def loss_gradients(model, weights, batch, *, first_order: bool = True):
  """Gradients of the loss on `batch` with respect to the trainable weights
  (stopped, unless `first_order` is False, for a differentiable step)."""
  trainable, non_trainable = weights
  with tf.GradientTape() as tape:
    tape.watch(trainable)
    batch_output, _ = model.forward((trainable, non_trainable), batch,
                                    training=True)
  gradients = tape.gradient(batch_output.loss, trainable,
                            unconnected_gradients=ZERO)
  if first_order:
    gradients = [tf.stop_gradient(g) for g in gradients]
  return gradients


def sgd_step(model, weights, batch, learning_rates: Sequence[tf.Tensor], *,
             first_order: bool):
  """One differentiable SGD step on `batch`; returns new trainable weights.

  `learning_rates` holds one scalar or one per-parameter tensor (Meta-SGD)
  per trainable weight.
  """
  gradients = loss_gradients(model, weights, batch, first_order=first_order)
  return tuple(w - lr * g
               for w, lr, g in zip(weights[0], learning_rates, gradients))


def minibatch(support, step, batch_size: Optional[int]):
  """Minibatch `step` of `support` (all of it when `batch_size` is None).

  The support's n rows form m = ceil(n / batch_size) minibatches of at most
  `batch_size` rows, row r in minibatch r mod m, taken in turn (step mod m),
  so m steps are one pass without replacement. Episodes list their support
  class by class, so where m divides the shots each minibatch holds the same
  number of every class's (randomly drawn) shots: a fixed, class-balanced
  split, where Nichol et al. reshuffle random minibatches.
  """
  if batch_size is None:
    return support
  n = num_rows(support)
  # At least 1: a client without support examples has no weight anyway.
  m = tf.maximum((n + batch_size - 1) // batch_size, 1)
  rows = tf.range(tf.math.floormod(tf.cast(step, tf.int64), m), n, m)
  return {k: tf.gather(v, rows) for k, v in support.items()}


def optimizer_step(model, weights, batch, optimizer, optimizer_state):
  """One first-order step of a `tff.learning.optimizers.Optimizer`:
  (its new state, new trainable weights)."""
  trainable = tuple(weights[0])
  gradients = tuple(loss_gradients(model, (trainable, weights[1]), batch))
  state, trainable = optimizer.next(optimizer_state, trainable, gradients)
  return state, tuple(trainable)


def initial_optimizer_state(optimizer, trainable):
  return optimizer.initialize(
      tuple(tf.TensorSpec(w.shape, w.dtype) for w in trainable))


def adapt(model, weights, support, learning_rates, *, inner_steps: int,
          first_order: bool = False):
  """`inner_steps` full-batch SGD steps on `support`: adapted trainables."""
  trainable, non_trainable = weights
  for _ in range(inner_steps):
    trainable = sgd_step(model, (trainable, non_trainable), support,
                         learning_rates, first_order=first_order)
  return trainable


class LearnedRates(NamedTuple):
  """Meta-SGD's trainable weights (Li et al. 2017), named: the model's
  trainable weights, then one inner learning rate tensor per weight (same
  shapes). The process holds them as one flat tuple, `joined()`."""
  model: tuple
  rates: tuple

  @classmethod
  def split(cls, trainable) -> 'LearnedRates':
    """The halves of a flat tuple of `joined()`."""
    n = len(trainable) // 2
    return cls(tuple(trainable[:n]), tuple(trainable[n:]))

  def joined(self) -> tuple:
    return self.model + self.rates

  @staticmethod
  def weights_type(model_weights_type):
    """The `ModelWeights` type of a model's weights with learned rates."""
    return tff.types.to_type(tff.learning.models.ModelWeights(
        tuple(model_weights_type.trainable) * 2,
        tuple(model_weights_type.non_trainable)))


def scalar_rates(learning_rate: float, trainable) -> list[tf.Tensor]:
  return [tf.constant(learning_rate, w.dtype) for w in trainable]


def batch_metrics(model, batch_output, y):
  """Reported metrics state of one batch; all zeros for an empty batch,
  whose mean loss is not a number."""
  initial = local_tf.initial_metrics_state(model)
  metrics = tf.cond(
      batch_output.num_examples > 0,
      lambda: local_tf.update_metrics_state(model, initial, batch_output, y),
      lambda: initial)
  return local_tf.report_metrics_state(model, metrics)


def _query_result(model, query_output, query_y, gradients, support, query):
  """LocalResult of a meta-gradient; a client without support or query
  examples reports zero examples, so its update gets no weight."""
  usable = tf.logical_and(num_rows(support) > 0, num_rows(query) > 0)
  num_examples = tf.where(usable, num_rows(query), tf.constant(0, tf.int64))
  return local_tf.LocalResult(tuple(gradients), num_examples,
                              batch_metrics(model, query_output, query_y))


def _meta_gradient(model, variables, params_and_rates, non_trainable,
                   dataset, *, inner_steps: int, first_order: bool):
  """Gradient with respect to `variables` of the query loss after adapting
  on the support set; `params_and_rates(variables)` gives the model's
  trainable weights and the inner learning rates."""
  support, query = support_and_query(dataset)
  with tf.GradientTape() as tape:
    tape.watch(variables)
    trainable, rates = params_and_rates(variables)
    adapted = adapt(model, (trainable, non_trainable), support, rates,
                    inner_steps=inner_steps, first_order=first_order)
    query_output, query_y = model.forward((adapted, non_trainable), query,
                                          training=True)
  gradients = tape.gradient(query_output.loss, variables,
                            unconnected_gradients=ZERO)
  return _query_result(model, query_output, query_y, gradients, support,
                       query)


def over_tasks(local_fn):
  """`local_fn` for a client that holds several tasks, one a batch.

  The returned function runs `local_fn` on each batch of the dataset as a
  dataset of its own, every time from the broadcast weights, and returns the
  mean of the updates weighted by their examples, their summed examples and
  their summed metrics. Weighted by examples on the server too, a client's
  E tasks then count as E tasks of the meta-batch: the round's update is the
  mean over all its tasks, as MAML's meta-batch averages tasks.
  """
  def run_over_tasks(model, weights, dataset):
    def add_task(state, batch):
      total, num_examples, metrics = state
      result = local_fn(model, weights, tf.data.Dataset.from_tensors(batch))
      total = tuple(t + tf.cast(result.num_examples, t.dtype) * u
                    for t, u in zip(total, result.update))
      return (total, num_examples + result.num_examples,
              tf.nest.map_structure(tf.add, metrics, result.metrics))

    total, num_examples, metrics = iteration.reduce(
        dataset, (tuple(tf.zeros_like(w) for w in weights[0]),
                  tf.constant(0, tf.int64),
                  local_tf.report_metrics_state(
                      model, local_tf.initial_metrics_state(model))),
        add_task)
    return local_tf.LocalResult(
        tuple(tf.math.divide_no_nan(t, tf.cast(num_examples, t.dtype))
              for t in total), num_examples, metrics)
  return run_over_tasks


def maml_gradient(model, weights, dataset: tf.data.Dataset, *,
                  inner_learning_rate: float, inner_steps: int,
                  first_order: bool) -> local_tf.LocalResult:
  """MAML's meta-gradient for one client (Finn et al. 2017).

  The gradient, with respect to the broadcast trainable weights, of the
  query loss after `inner_steps` SGD steps on the support set; with
  `first_order`, the inner steps' Jacobian is dropped (FO-MAML). Metrics
  are the query metrics after adaptation.
  """
  trainable, non_trainable = weights
  return _meta_gradient(
      model, tuple(trainable),
      lambda w: (w, scalar_rates(inner_learning_rate, w)), non_trainable,
      dataset, inner_steps=inner_steps, first_order=first_order)


def meta_sgd_gradient(model, weights, dataset: tf.data.Dataset, *,
                      inner_steps: int,
                      first_order: bool) -> local_tf.LocalResult:
  """Meta-SGD's meta-gradient (Li et al. 2017) for one client.

  `weights[0]` is a `LearnedRates` joined; the gradient covers both
  halves.
  """
  extended, non_trainable = weights
  return _meta_gradient(
      model, tuple(extended), LearnedRates.split, non_trainable,
      dataset, inner_steps=inner_steps, first_order=first_order)


def reptile_delta(model, weights, dataset: tf.data.Dataset, *,
                  inner_learning_rate: float, inner_steps: int,
                  inner_optimizer: Optional[tff.learning.optimizers.Optimizer]
                  = None,
                  inner_batch_size: Optional[int] = None
                  ) -> local_tf.LocalResult:
  """Reptile's client step (Nichol et al. 2018): `inner_steps` steps of
  `inner_optimizer` (SGD at `inner_learning_rate` if None), from a fresh
  optimizer state (a client keeps none between tasks; Nichol et al.'s Adam
  carries its moments across tasks in training), each on the whole support
  set or on its `minibatch`es of `inner_batch_size`; the update is
  `initial - adapted`, weighted by the support examples. Metrics are the
  query metrics after adaptation."""
  support, query = support_and_query(dataset)
  trainable, non_trainable = weights
  initial = tuple(trainable)
  optimizer = inner_optimizer or tff.learning.optimizers.build_sgdm(
      inner_learning_rate)
  state = initial_optimizer_state(optimizer, initial)
  adapted = initial
  for step in range(inner_steps):
    state, adapted = optimizer_step(
        model, (adapted, non_trainable),
        minibatch(support, step, inner_batch_size), optimizer, state)
  query_output, query_y = model.forward((adapted, non_trainable), query,
                                        training=False)
  return local_tf.LocalResult(
      tuple(w0 - w for w0, w in zip(initial, adapted)), num_rows(support),
      batch_metrics(model, query_output, query_y))


def per_fedavg_delta(model, weights, dataset: tf.data.Dataset, *,
                     inner_learning_rate: float, outer_learning_rate: float,
                     local_steps: int,
                     hessian_free: bool) -> local_tf.LocalResult:
  """Per-FedAvg's client update (Fallah et al. 2020), full-batch.

  Each of `local_steps` steps: w_tmp = w - alpha grad f(w; D);
  w <- w - beta (I - alpha H f(w; D'')) grad f(w_tmp; D') with D = D'' the
  support set and D' the query set. The first-order variant (FO) drops the
  Hessian term; the Hessian-free one (HF) computes it as a Hessian-vector
  product. Returns `initial - final` as the update, averaged like FedAvg,
  and the last step's query metrics at w_tmp.
  """
  support, query = support_and_query(dataset)
  trainable, non_trainable = weights
  initial = tuple(trainable)
  trainable = initial
  alpha = scalar_rates(inner_learning_rate, initial)
  metrics = None
  for _ in range(local_steps):
    temporary = sgd_step(model, (trainable, non_trainable), support, alpha,
                         first_order=True)
    query_output, query_y, direction = model.forward_and_gradient(
        (temporary, non_trainable), query)
    # An embedding's gradient is IndexedSlices, which a Python float or
    # another IndexedSlices cannot multiply.
    direction = tuple(tf.convert_to_tensor(d) for d in direction)
    metrics = batch_metrics(model, query_output, query_y)
    if hessian_free:
      hvp = hessian_vector_product(model, (trainable, non_trainable), support,
                                   direction)
      direction = tuple(d - a * h for d, a, h in zip(direction, alpha, hvp))
    trainable = tuple(w - outer_learning_rate * d
                      for w, d in zip(trainable, direction))
  usable = tf.logical_and(num_rows(support) > 0, num_rows(query) > 0)
  return local_tf.LocalResult(
      tuple(w0 - w for w0, w in zip(initial, trainable)),
      tf.where(usable, num_rows(query), tf.constant(0, tf.int64)), metrics)


def hessian_vector_product(model, weights, batch, vector):
  """H v for the Hessian of the loss on `batch` at `weights`."""
  trainable, non_trainable = weights
  trainable = tuple(trainable)
  with tf.GradientTape() as outer:
    outer.watch(trainable)
    with tf.GradientTape() as inner:
      inner.watch(trainable)
      batch_output, _ = model.forward((trainable, non_trainable), batch,
                                      training=True)
    gradients = inner.gradient(batch_output.loss, trainable,
                               unconnected_gradients=ZERO)
    gradients = [tf.convert_to_tensor(g) for g in gradients]  # IndexedSlices.
    dot = tf.add_n([tf.reduce_sum(g * tf.stop_gradient(v))
                    for g, v in zip(gradients, vector)])
  return tuple(outer.gradient(dot, trainable, unconnected_gradients=ZERO))


def personalize(model, weights, dataset: tf.data.Dataset, learning_rates, *,
                inner_steps: int,
                optimizer: Optional[tff.learning.optimizers.Optimizer] = None):
  """Query metrics before and after `inner_steps` support steps: SGD at
  `learning_rates`, or steps of `optimizer` from a fresh state.

  Returns:
    `OrderedDict(before=..., after=...)` of unfinalized metrics states (see
    `fedmeta.algorithms.local_tf.initial_metrics_state`).
  """
  support, query = support_and_query(dataset)
  trainable, non_trainable = weights
  trainable = tuple(trainable)
  # Nothing differentiates through evaluation, so the steps are a graph
  # loop: hundreds of them (local models, long fine-tuning) cost one step's
  # graph, where `adapt` would unroll them all.
  if optimizer is None:
    _, adapted = tf.while_loop(
        lambda step, _: step < inner_steps,
        lambda step, w: (step + 1, tuple(sgd_step(
            model, (w, non_trainable), support, learning_rates,
            first_order=True))),
        (tf.constant(0), trainable))
  else:
    def step_fn(step, w, state):
      state, w = optimizer_step(model, (w, non_trainable), support, optimizer,
                                state)
      return step + 1, w, state

    _, adapted, _ = tf.while_loop(
        lambda step, *_: step < inner_steps, step_fn,
        (tf.constant(0), trainable,
         initial_optimizer_state(optimizer, trainable)))

  def query_metrics(w):
    return batch_metrics(model, *model.forward((w, non_trainable), query,
                                               training=False))

  return collections.OrderedDict(before=query_metrics(trainable),
                                 after=query_metrics(adapted))
