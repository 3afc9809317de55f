"""Models: Keras builders as TFF functional models, and one interface over both
TFF model kinds for fedmeta's client code.

A `tff.learning.models.FunctionalModel` is a pure function of its weights, so
the same model serves FedAvg's local SGD and MAML's differentiable inner loop.
A `tff.learning.models.VariableModel` (from a no-arg callable) serves the
FedAvg family through `VariableAdapter`.
"""

import collections
from typing import Any, Callable, NamedTuple, Sequence

import tensorflow as tf
import tensorflow_federated as tff

KerasModelFn = Callable[[], tf.keras.Model]
MetricFn = Callable[[], tf.keras.metrics.Metric]


class ModelError(TypeError):
  """A model argument is not a fedmeta-compatible model."""


def from_keras(
    keras_model_fn: KerasModelFn,
    *,
    loss: tf.keras.losses.Loss,
    input_spec: Any,
    metrics: Sequence[MetricFn] = (),
) -> tff.learning.models.FunctionalModel:
  """Wraps a plain Keras model builder as a TFF functional model.

  Args:
    keras_model_fn: No-arg function returning an uncompiled `tf.keras.Model`
      (no batch normalization, no non-trainable weights: TFF's restriction).
    loss: A `tf.keras.losses.Loss` averaging over the batch.
    input_spec: `(x_spec, y_spec)` or `{'x': ..., 'y': ...}` of `tf.TensorSpec`.
    metrics: No-arg constructors of Keras metrics, e.g.
      `[tf.keras.metrics.SparseCategoricalAccuracy]`; names must be unique.

  Returns:
    A `tff.learning.models.FunctionalModel`.
  """
  names = [m().name for m in metrics]
  if len(set(names)) != len(names):
    raise ModelError(f'metrics: names must be unique, got {names}')
  constructors = collections.OrderedDict(zip(names, metrics))
  return tff.learning.models.functional_model_from_keras(
      keras_model_fn, loss, input_spec,
      metrics_constructor=constructors or None)


class BatchStatistics(tf.keras.layers.Layer):
  """Batch normalization with the batch's own statistics in every forward
  pass, training or not, and no running averages: MAML's batch norm (Finn et
  al. 2017's `tf.contrib.layers.batch_norm`, always in training mode), a pure
  function of the weights, so it fits a `FunctionalModel`.

  `y = (x - mean) / sqrt(var + epsilon) * gamma + beta`, the moments taken
  over every axis but the last; `gamma` is learned only with `scale` (MAML's
  has only the offset `beta`).
  """

  def __init__(self, epsilon: float = 1e-3, scale: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon
    self.scale = scale

  def build(self, input_shape):
    channels = input_shape[-1]
    self.beta = self.add_weight(name='beta', shape=[channels],
                                initializer='zeros')
    self.gamma = (self.add_weight(name='gamma', shape=[channels],
                                  initializer='ones') if self.scale else None)
    super().build(input_shape)

  def call(self, inputs, training=None):
    del training  # The same in both modes, as in MAML.
    mean, variance = tf.nn.moments(
        inputs, axes=list(range(len(inputs.shape) - 1)))
    return tf.nn.batch_normalization(inputs, mean, variance, self.beta,
                                     self.gamma, self.epsilon)

  def get_config(self):
    return dict(super().get_config(), epsilon=self.epsilon, scale=self.scale)


ModelFn = Any  # A FunctionalModel, or a no-arg callable returning a VariableModel.


class FunctionalAdapter:
  """The interface fedmeta's client code uses, over a `FunctionalModel`."""

  def __init__(self, model: tff.learning.models.FunctionalModel):
    self.model = model

  def run(self, fn, *args):
    """`fn(self, *args)`: pure functions need no extra ordering."""
    return fn(self, *args)

  def forward(self, weights, batch, training: bool):
    """(`tff.learning.models.BatchOutput`, labels) of one batch at `weights`."""
    x, y = batch_xy(batch)
    predictions = self.predict(weights, x, training)
    loss = self.model.loss(output=predictions, label=y)
    num_examples = tf.shape(tf.nest.flatten(predictions)[0])[0]
    return tff.learning.models.BatchOutput(
        loss=loss, predictions=predictions, num_examples=num_examples), y

  def predict(self, weights, x, training: bool):
    """The model's predictions of `x`; for an empty batch, computed on one
    row of zeros and cut to none. TF 2.14's oneDNN convolutions give an
    empty batch the wrong shape, and the next convolution fails ("input
    depth must be evenly divisible by filter depth: 1 vs 32"): a
    meta-learning client with one example has an empty query set."""
    def predict(inputs):
      return self.model.predict_on_batch(weights, inputs, training=training)

    def one_zero_row(t):
      return tf.zeros(tf.concat([[1], tf.shape(t)[1:]], 0), t.dtype)

    return tf.cond(
        tf.shape(tf.nest.flatten(x)[0])[0] > 0, lambda: predict(x),
        lambda: tf.nest.map_structure(
            lambda p: p[:0], predict(tf.nest.map_structure(one_zero_row, x))))

  def forward_and_gradient(self, weights, batch):
    """`forward` in training mode, plus d loss / d trainable weights."""
    trainable, _ = weights
    with tf.GradientTape() as tape:
      tape.watch(trainable)
      batch_output, y = self.forward(weights, batch, training=True)
    gradients = tape.gradient(batch_output.loss, trainable,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return batch_output, y, tuple(gradients)

  def initialize_metrics_state(self):
    return self.model.initialize_metrics_state()

  def update_metrics_state(self, state, batch_output, y):
    return self.model.update_metrics_state(
        state, batch_output=batch_output, labels=y)

  def report_metrics_state(self, state):
    return state


class VariableAdapter:
  """The same interface over a `tff.learning.models.VariableModel`.

  Each call assigns the given weights into the model's variables first, so
  gradients are first-order only: enough for the FedAvg family, not for
  differentiating through an inner loop (MAML needs a `FunctionalModel`).
  The model's metrics live in its own variables, updated by `forward`.
  Construct it inside a TF graph, where the model's variables may be created.
  """

  def __init__(self, model: tff.learning.models.VariableModel):
    self.model = model

  def run(self, fn, *args):
    """`fn(self, *args)` as a `tf.function`, whose automatic control
    dependencies order the metric reset, the loop and the metric read."""
    return tf.function(fn)(self, *args)

  def _assign(self, weights):
    trainable, non_trainable = weights
    for variable, value in zip(
        (*self.model.trainable_variables, *self.model.non_trainable_variables),
        (*trainable, *non_trainable)):
      variable.assign(value)

  def forward(self, weights, batch, training: bool):
    self._assign(weights)
    _, y = batch_xy(batch)
    return self.model.forward_pass(batch, training=training), y

  def forward_and_gradient(self, weights, batch):
    self._assign(weights)
    _, y = batch_xy(batch)
    with tf.GradientTape() as tape:
      batch_output = self.model.forward_pass(batch, training=True)
    gradients = tape.gradient(batch_output.loss,
                              self.model.trainable_variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return batch_output, y, tuple(gradients)

  def initialize_metrics_state(self):
    self.model.reset_metrics()
    return ()

  def update_metrics_state(self, state, batch_output, y):
    del batch_output, y  # `forward_pass` already updated the metric variables.
    return state

  def report_metrics_state(self, state):
    del state
    return self.model.report_local_unfinalized_metrics()


def build(model_fn: ModelFn):
  """The adapter for `model_fn`; call inside a TF graph.

  Raises:
    ModelError: If a callable `model_fn` does not return a `VariableModel`.
  """
  if isinstance(model_fn, tff.learning.models.FunctionalModel):
    return FunctionalAdapter(model_fn)
  model = model_fn()
  if not isinstance(model, tff.learning.models.VariableModel):
    raise ModelError(
        'model_fn: a callable model_fn must return a '
        f'tff.learning.models.VariableModel, got {type(model).__name__}')
  return VariableAdapter(model)


def initial_weights(model_fn: ModelFn) -> tff.learning.models.ModelWeights:
  """Initial weights as tensors; call inside a TF graph."""
  if isinstance(model_fn, tff.learning.models.FunctionalModel):
    trainable, non_trainable = model_fn.initial_weights
    return tff.learning.models.ModelWeights(
        tuple(tf.convert_to_tensor(w) for w in trainable),
        tuple(tf.convert_to_tensor(w) for w in non_trainable))
  model = build(model_fn).model
  return tff.learning.models.ModelWeights(
      tuple(tf.identity(v) for v in model.trainable_variables),
      tuple(tf.identity(v) for v in model.non_trainable_variables))


class ModelSpec(NamedTuple):
  """What the federated glue needs to know of a model, outside any graph.

  Attributes:
    weights_type: The TFF type of the model's `ModelWeights`.
    data_type: The TFF type of a client dataset, a sequence of `input_spec`.
    finalize_metrics: Function from a (summed) metrics state, as reported by
      the adapter's `report_metrics_state`, to the model's metric values.
  """
  weights_type: tff.Type
  data_type: tff.SequenceType
  finalize_metrics: Callable[[Any], Any]


def spec(model_fn: ModelFn) -> ModelSpec:
  """The `ModelSpec` of `model_fn`.

  A `VariableModel` is built once, in a throwaway graph, to read it.

  Raises:
    ModelError: If `model_fn` is neither a `FunctionalModel` nor a callable
      returning a `VariableModel`.
  """
  if isinstance(model_fn, tff.learning.models.FunctionalModel):
    trainable, non_trainable = model_fn.initial_weights
    input_spec = model_fn.input_spec
    finalize = model_fn.finalize_metrics
  elif callable(model_fn):
    with tf.Graph().as_default():
      model = build(model_fn).model
      trainable = model.trainable_variables
      non_trainable = model.non_trainable_variables
      input_spec = model.input_spec
      finalizers = model.metric_finalizers()

    def finalize(state):
      return collections.OrderedDict(
          (name, fn(state[name])) for name, fn in finalizers.items())
  else:
    raise ModelError(
        'model_fn: expected a tff.learning.models.FunctionalModel (build one '
        'from a Keras model with fedmeta.models.from_keras) or a no-arg '
        'callable returning a tff.learning.models.VariableModel, got '
        f'{type(model_fn).__name__}')

  def tensor_spec(w):
    return tf.TensorSpec(w.shape, tf.dtypes.as_dtype(w.dtype))
  weights = tff.learning.models.ModelWeights(
      tuple(tensor_spec(w) for w in trainable),
      tuple(tensor_spec(w) for w in non_trainable))
  return ModelSpec(
      weights_type=tff.types.tensorflow_to_type(weights),
      data_type=tff.SequenceType(tff.types.tensorflow_to_type(input_spec)),
      finalize_metrics=finalize)


def batch_xy(batch: Any) -> tuple[Any, Any]:
  """Splits a batch given as `(x, y)` or `{'x': x, 'y': y}`."""
  if isinstance(batch, collections.abc.Mapping):
    return batch['x'], batch['y']
  x, y = batch
  return x, y
