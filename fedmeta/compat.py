"""TFF's removed FedAvg API, on fedmeta: old TFF code runs with one import
changed.

TFF 0.28 removed `tff.learning.build_federated_averaging_process` and
`tff.learning.build_federated_evaluation`, which most TFF tutorials and
design documents still call (TFF issues #3882 and #3973). Replace

  import tensorflow_federated as tff

with

  from fedmeta.compat import tff

and the rest of such code runs unchanged: `tff` is TFF itself, except that
`tff.learning` has the two builders back (and `from_keras_model`, since
moved to `tff.learning.models`). They build fedmeta's FedAvg
(`fedmeta.algorithms.build_fed_avg`), with each Keras optimizer the old API
took mapped onto the `tff.learning.optimizers` one with the same
hyperparameters (`keras_optimizer`).
"""

import numbers
import types
from typing import Any, Callable

import tensorflow as tf
import tensorflow_federated as _tff

from fedmeta import models
from fedmeta.algorithms import client_work
from fedmeta.algorithms import evaluation
from fedmeta.algorithms import fed_avg

OptimizerFn = Callable[[], Any]

# Keras config keys that change an update in ways tff.learning's optimizers
# cannot, with the value that leaves it unchanged.
_NEUTRAL = {'weight_decay': None, 'clipnorm': None, 'global_clipnorm': None,
            'clipvalue': None, 'use_ema': False, 'decay': 0.0}


class CompatError(ValueError):
  """An argument of the old API that fedmeta cannot run as the old API did."""


def _from_config(name: str, config: dict,
                 legacy: bool) -> _tff.learning.optimizers.Optimizer:
  # Keras places RMSprop's and the legacy Adagrad's epsilon otherwise than
  # tff.learning's (under or beside the square root): the steps differ.
  if name == 'RMSprop' or (name == 'Adagrad' and legacy):
    raise CompatError(
        f'{name}: Keras and tff.learning.optimizers place its epsilon '
        'differently, so no tff.learning optimizer takes its steps')
  for key, neutral in _NEUTRAL.items():
    if config.get(key, neutral) != neutral:
      raise CompatError(f'{name}: {key}={config[key]!r} has no '
                        'tff.learning.optimizers equivalent')
  learning_rate = config['learning_rate']
  if not isinstance(learning_rate, numbers.Real):  # A schedule's config.
    raise CompatError(f'{name}: a learning rate schedule has no '
                      'tff.learning.optimizers equivalent; give a float')
  learning_rate = float(learning_rate)
  if name == 'SGD':
    if config.get('nesterov'):
      raise CompatError('SGD: nesterov=True has no tff.learning.optimizers '
                        'equivalent')
    return _tff.learning.optimizers.build_sgdm(
        learning_rate, momentum=config.get('momentum') or None)
  if name == 'Adam':
    if config.get('amsgrad'):
      raise CompatError('Adam: amsgrad=True has no tff.learning.optimizers '
                        'equivalent')
    return _tff.learning.optimizers.build_adam(
        learning_rate, beta_1=config['beta_1'], beta_2=config['beta_2'],
        epsilon=config['epsilon'])
  if name == 'Adagrad':
    return _tff.learning.optimizers.build_adagrad(
        learning_rate,
        initial_preconditioner_value=config['initial_accumulator_value'],
        epsilon=config['epsilon'])
  raise CompatError(
      f'tf.keras.optimizers.{name} has no tff.learning.optimizers '
      'equivalent; use SGD, Adam or Adagrad, or pass a '
      'tff.learning.optimizers.Optimizer')


def keras_optimizer(optimizer_fn: OptimizerFn, argument: str
                    ) -> _tff.learning.optimizers.Optimizer:
  """The `tff.learning.optimizers.Optimizer` equal to `optimizer_fn()`.

  Args:
    optimizer_fn: A no-arg callable (a Keras optimizer class, say, as in
      `client_optimizer_fn=tf.keras.optimizers.SGD`) returning a Keras SGD
      or Adam (current or legacy) or Adagrad (current), or a
      `tff.learning.optimizers.Optimizer`.
    argument: The argument's name, for errors.

  Raises:
    CompatError: For an optimizer or setting with no equivalent.
  """
  optimizer = optimizer_fn()
  if isinstance(optimizer, _tff.learning.optimizers.Optimizer):
    return optimizer
  if not isinstance(optimizer, (tf.keras.optimizers.Optimizer,
                                tf.keras.optimizers.legacy.Optimizer)):
    raise CompatError(f'{argument}: expected a Keras optimizer, got '
                      f'{type(optimizer).__name__}')
  try:
    return _from_config(
        type(optimizer).__name__, optimizer.get_config(),
        legacy=isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer))
  except CompatError as e:
    raise CompatError(f'{argument}: {e}') from None


def _model(model_fn: Callable[[], Any]) -> models.ModelFn:
  """The old API's model_fn as fedmeta takes it: a callable returning a
  `VariableModel`; a Keras model must come wrapped."""
  def checked():
    model = model_fn()
    if isinstance(model, tf.keras.Model):
      raise CompatError(
          'model_fn: returns a tf.keras.Model; wrap it with '
          'tff.learning.models.from_keras_model(model, loss=..., '
          'input_spec=...), as the old API required')
    return model
  return checked


class FederatedAveragingProcess(_tff.templates.IterativeProcess):
  """The old API's iterative process: `next(state, data)` returns `(state,
  metrics)`; `get_model_weights(state)` gives the global model."""

  def __init__(self, process: _tff.learning.templates.LearningProcess):

    @_tff.federated_computation(process.next.type_signature.parameter)
    def next_fn(state, client_data):
      output = process.next(state, client_data)
      return output.state, output.metrics

    super().__init__(process.initialize, next_fn)
    self.get_model_weights = process.get_model_weights
    self.learning_process = process


def build_federated_averaging_process(
    model_fn: Callable[[], Any],
    client_optimizer_fn: OptimizerFn,
    server_optimizer_fn: OptimizerFn = (
        lambda: tf.keras.optimizers.SGD(learning_rate=1.0)),
    client_weighting: _tff.learning.ClientWeighting = (
        _tff.learning.ClientWeighting.NUM_EXAMPLES),
) -> FederatedAveragingProcess:
  """TFF's removed `tff.learning.build_federated_averaging_process`.

  McMahan et al. 2017, https://arxiv.org/abs/1602.05629, as
  `fedmeta.algorithms.build_fed_avg`.

  Args:
    model_fn: No-arg callable returning a `tff.learning.models.VariableModel`
      (`tff.learning.models.from_keras_model`).
    client_optimizer_fn: No-arg callable returning the clients' Keras
      optimizer (see `keras_optimizer`).
    server_optimizer_fn: Likewise for the server; SGD(1.0) by default, as
      in the old API.
    client_weighting: `tff.learning.ClientWeighting`, by examples as in the
      old API.

  Returns:
    A `FederatedAveragingProcess`.

  Raises:
    CompatError: For an optimizer with no `tff.learning` equivalent, or
      a weighting function.
  """
  if not isinstance(client_weighting, _tff.learning.ClientWeighting):
    raise CompatError(
        f'client_weighting: {client_weighting!r} is not supported; give '
        'tff.learning.ClientWeighting.NUM_EXAMPLES or UNIFORM')
  return FederatedAveragingProcess(fed_avg.build_fed_avg(
      _model(model_fn),
      client_optimizer=keras_optimizer(client_optimizer_fn,
                                       'client_optimizer_fn'),
      server_optimizer=keras_optimizer(server_optimizer_fn,
                                       'server_optimizer_fn'),
      client_weighting=client_work.ClientWeighting[client_weighting.name]))


def build_federated_evaluation(model_fn: Callable[[], Any]):
  """TFF's removed `tff.learning.build_federated_evaluation`:
  `evaluation(model_weights, federated_data) -> metrics`, pooled over the
  clients' examples (`fedmeta.algorithms.build_fed_eval`)."""
  return evaluation.build_fed_eval(_model(model_fn))


class _Namespace(types.ModuleType):
  """A module that is `base` with some attributes added."""

  def __init__(self, name: str, base: types.ModuleType, **added):
    super().__init__(name, base.__doc__)
    self._base = base
    self.__dict__.update(added)

  def __getattr__(self, name):
    return getattr(self._base, name)

  def __dir__(self):
    return sorted(set(dir(self._base)) | set(self.__dict__))


learning = _Namespace(
    'fedmeta.compat.learning', _tff.learning,
    build_federated_averaging_process=build_federated_averaging_process,
    build_federated_evaluation=build_federated_evaluation,
    # Moved to tff.learning.models in TFF 0.4x.
    from_keras_model=_tff.learning.models.from_keras_model)
tff = _Namespace('fedmeta.compat.tff', _tff, learning=learning)
