"""Keras models as TFF functional models, the form every fedmeta algorithm uses.

A `tff.learning.models.FunctionalModel` is a pure function of its weights, so
the same model serves FedAvg's local SGD and MAML's differentiable inner loop.
"""

import collections
from typing import Any, Callable, Optional, Sequence

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


def as_functional(model: Any) -> tff.learning.models.FunctionalModel:
  """Returns `model` if it is a functional model, else raises `ModelError`."""
  if isinstance(model, tff.learning.models.FunctionalModel):
    return model
  raise ModelError(
      'model_fn: expected a tff.learning.models.FunctionalModel (build one '
      'from a Keras model with fedmeta.models.from_keras), got '
      f'{type(model).__name__}')


def initial_weights(
    model: tff.learning.models.FunctionalModel,
) -> tff.learning.models.ModelWeights:
  """The model's initial weights as tensors in `ModelWeights` form."""
  trainable, non_trainable = model.initial_weights
  return tff.learning.models.ModelWeights(
      tuple(tf.convert_to_tensor(w) for w in trainable),
      tuple(tf.convert_to_tensor(w) for w in non_trainable))


def weights_type(model: tff.learning.models.FunctionalModel) -> tff.Type:
  """The TFF type of the model's `ModelWeights`."""
  def spec(w):
    return tf.TensorSpec(w.shape, tf.dtypes.as_dtype(w.dtype))
  trainable, non_trainable = model.initial_weights
  return tff.types.tensorflow_to_type(tff.learning.models.ModelWeights(
      tuple(spec(w) for w in trainable), tuple(spec(w) for w in non_trainable)))


def batch_xy(batch: Any) -> tuple[Any, Any]:
  """Splits a batch given as `(x, y)` or `{'x': x, 'y': y}`."""
  if isinstance(batch, collections.abc.Mapping):
    return batch['x'], batch['y']
  x, y = batch
  return x, y
