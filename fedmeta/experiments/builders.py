"""The runner's learning process and aggregator, from an `ExperimentConfig`
and the algorithm's spec: no switch on algorithm names."""

import re

import tensorflow_federated as tff

from fedmeta import aggregators
from fedmeta import algorithms
from fedmeta.experiments import config as config_lib

SERVER_OPTIMIZERS = {
    'sgd': tff.learning.optimizers.build_sgdm,
    'sgdm': lambda rate: tff.learning.optimizers.build_sgdm(rate,
                                                            momentum=0.9),
    'adam': tff.learning.optimizers.build_adam,
    'yogi': tff.learning.optimizers.build_yogi,
    'adagrad': tff.learning.optimizers.build_adagrad,
}
# --server_optimizer given without --server_learning_rate.
DEFAULT_SERVER_LEARNING_RATE = 1.0


def server_optimizer(kind: str, learning_rate: float):
  """A server optimizer of `SERVER_OPTIMIZERS`."""
  return SERVER_OPTIMIZERS[kind](learning_rate)


def server_optimizer_kwargs(config: config_lib.ExperimentConfig) -> dict:
  """The builder's server optimizer arguments: none (its own default) unless
  a server flag is given; a learning rate alone keeps the optimizer's kind.

  Raises:
    RunError: For a server optimizer the algorithm fixes.
  """
  spec, server = config.spec, config.server
  if spec.server_optimizer is None:
    if server.optimizer is not None:
      raise config_lib.RunError(
          f'--server_optimizer: {config.algorithm} fixes its server '
          'optimizer; use --algorithm=fed_avg to choose one')
    if server.learning_rate is not None:
      return {'server_learning_rate': server.learning_rate}
    return {}
  if server.optimizer is None and server.learning_rate is None:
    return {}
  rate = (DEFAULT_SERVER_LEARNING_RATE if server.learning_rate is None
          else server.learning_rate)
  return {'server_optimizer': server_optimizer(
      server.optimizer or spec.server_optimizer, rate)}


def build_process(model, model_aggregator,
                  config: config_lib.ExperimentConfig):
  """The learning process of `config`'s algorithm on `model`."""
  spec = config.spec
  return spec.builder(model, model_aggregator=model_aggregator,
                      **spec.kwargs(config.hyperparameters),
                      **server_optimizer_kwargs(config))


def _check_attack(config: config_lib.ExperimentConfig) -> None:
  """Refuses attack flags that would do nothing, or that the attack cannot
  take."""
  given, attack = config.given, config.attack
  if not attack.malicious_fraction:
    for name in ('attack', 'attack_scale', 'alie_z'):
      if name in given:
        raise config_lib.RunError(f'--{name}: needs --malicious_fraction')
  if 'alie_z' in given and attack.kind != 'alie':
    raise config_lib.RunError('--alie_z: needs --attack=alie')
  for name in ('backdoor_target', 'backdoor_fraction', 'trigger_size'):
    if name in given and attack.kind != 'backdoor':
      raise config_lib.RunError(f'--{name}: needs --attack=backdoor')
  if attack.kind in config_lib.DATA_ATTACKS and 'attack_scale' in given:
    raise config_lib.RunError(
        f'--attack_scale: --attack={attack.kind} poisons data, it scales no '
        'update')
  if attack.kind == 'backdoor' and not attack.backdoor_fraction:
    raise config_lib.RunError('--backdoor_fraction: must be > 0')
  if attack.kind == 'alie':
    if 'attack_scale' in given:
      raise config_lib.RunError(
          '--attack_scale: --attack=alie sends mu - z sigma; set z with '
          '--alie_z')
    if config.aggregator.alie_z is None and attack.malicious_fraction >= 0.5:
      raise config_lib.RunError(
          '--malicious_fraction: must be < 0.5 for --attack=alie without '
          "--alie_z (the paper's z_max is infinite)")


def build_model_aggregator(config: config_lib.ExperimentConfig):
  """The aggregation factory of `config`.

  Raises:
    RunError: For flags that do not combine, naming them as flags.
  """
  _check_attack(config)
  try:
    return aggregators.build_model_aggregator(config.aggregator)
  except aggregators.ConfigError as e:
    message = e.message
    for name in e.mentions:
      message = re.sub(rf'\b{name}\b', f'--{name}', message)
    raise config_lib.RunError(f'--{e.field}: {message}') from e


def build_evaluation(task, config: config_lib.ExperimentConfig):
  """(weights, datasets, clients=False) -> metrics, as `config`'s algorithm
  is evaluated: class prototypes, adaptation to each held-out client, or the
  global model."""
  spec = config.spec
  if spec.embedding:
    return algorithms.build_protonet_eval(
        task.embedding_fn(), distance=config.hyperparameters.distance)
  if config.personalize:
    hyperparameters = config.hyperparameters
    return algorithms.build_personalization_eval(
        task.model_fn(), inner_learning_rate=hyperparameters.inner_learning_rate,
        inner_steps=(config.evaluation.inner_steps
                     or hyperparameters.inner_steps),
        learned_rates=spec.learned_rates)
  return algorithms.build_fed_eval(task.model_fn())
