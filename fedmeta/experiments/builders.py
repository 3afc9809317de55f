"""The runner's learning process and aggregator, from an `ExperimentConfig`
and the algorithm's spec: no switch on algorithm names."""

import collections
import re
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import aggregation
from fedmeta import aggregators
from fedmeta import algorithms
from fedmeta import models
from fedmeta.algorithms import pfedhn
from fedmeta.algorithms import specs
from fedmeta.experiments import client_data
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
# The most server entries a per-client-model algorithm may hold: pFedHN's
# heads are (hidden + 1) x the model's weights, and its process keeps a few
# copies of them (its initial value, the state, the optimizer's), so 1e8
# float32 entries are some GB already.
MAX_SERVER_ENTRIES = 10**8


def server_optimizer(kind: str, learning_rate: float):
  """A server optimizer of `SERVER_OPTIMIZERS`."""
  return SERVER_OPTIMIZERS[kind](learning_rate)


def _linear_decay(rate: float, rounds: int, factor: float):
  del factor  # To 0.
  return lambda round_index: rate * tf.maximum(
      0.0, 1.0 - tf.cast(round_index, tf.float32) / rounds)


def _step_decay(rate: float, rounds: int, factor: float):
  return lambda round_index: rate * tf.pow(
      factor, tf.cast(round_index // rounds, tf.float32))


# --server_learning_rate_decay: (rate, decay rounds, factor) -> the rate of
# the round of index i (0 for round 1).
LEARNING_RATE_DECAYS = {'none': None, 'linear': _linear_decay,
                        'step': _step_decay}


def _check_decay(config: config_lib.ExperimentConfig) -> None:
  server, given = config.server, config.given
  if server.decay == 'none':
    for name in ('server_learning_rate_decay_rounds',
                 'server_learning_rate_decay_factor'):
      if name in given:
        raise config_lib.RunError(f'--{name}: needs '
                                  '--server_learning_rate_decay')
    return
  if config.spec.server_optimizer is None:
    raise config_lib.RunError(
        f'--server_learning_rate_decay: {config.algorithm} fixes its server '
        'optimizer; use --algorithm=fed_avg to choose one')
  if server.learning_rate is None:
    raise config_lib.RunError(
        '--server_learning_rate_decay: needs --server_learning_rate')
  if server.decay_rounds is None:
    raise config_lib.RunError(
        '--server_learning_rate_decay_rounds: needs a value with '
        f'--server_learning_rate_decay={server.decay}')
  if (server.decay == 'linear'
      and 'server_learning_rate_decay_factor' in given):
    raise config_lib.RunError(
        '--server_learning_rate_decay_factor: only for '
        '--server_learning_rate_decay=step (linear decays to 0)')


def server_optimizer_kwargs(config: config_lib.ExperimentConfig) -> dict:
  """The builder's server optimizer arguments: none (its own default) unless
  a server flag is given; a learning rate alone keeps the optimizer's kind;
  a decay schedules the rate (`tff.learning.optimizers.
  schedule_learning_rate`, which counts rounds in the optimizer's state).

  Raises:
    RunError: For a server optimizer the algorithm fixes, or decay flags
      that do not combine.
  """
  spec, server = config.spec, config.server
  _check_decay(config)
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
  optimizer = server_optimizer(server.optimizer or spec.server_optimizer, rate)
  decay = LEARNING_RATE_DECAYS[server.decay]
  if decay is not None:
    optimizer = tff.learning.optimizers.schedule_learning_rate(
        optimizer, decay(rate, server.decay_rounds, server.decay_factor))
  return {'server_optimizer': optimizer}


def check_inner_optimizer(config: config_lib.ExperimentConfig) -> None:
  """Refuses --inner_optimizer and --inner_batch_size for an algorithm that
  does not take them."""
  if config.spec.inner_optimizers:
    return
  for name in ('inner_optimizer', 'inner_batch_size'):
    if name in config.given:
      takes = sorted(n for n, s in algorithms.ALGORITHMS.items()
                     if s.inner_optimizers)
      raise config_lib.RunError(
          f'--{name}: for {", ".join(takes)} only, not {config.algorithm}')


class PerClientModels:
  """A process that makes each client its own model
  (`AlgorithmSpec.per_client_models`: pFedHN), driven as the training loop
  drives a learning process: `next(state, client_data.Keyed)`, metrics under
  `client_work`, and `get_model_weights` the server's weights, the
  hypernetwork's tensors then the clients' embeddings (model_weights.npz)."""

  def __init__(self, process: pfedhn.PFedHNProcess):
    self._process = process
    self._hypernetwork = process.initialize()['hypernetwork']

  def initialize(self):
    return self._process.initialize()

  @property
  def client_data_type(self) -> tff.types.SequenceType:
    """The type of a client's dataset in a round."""
    return self._process.next.type_signature.parameter[2].member

  def next(self, state, clients: client_data.Keyed):
    output = self._process.next(state, clients.keys, clients.datasets)
    client_work = collections.OrderedDict(output.metrics)
    aggregator = client_work.pop('aggregator')
    return tff.learning.templates.LearningProcessOutput(
        output.state, collections.OrderedDict(
            client_work=client_work, aggregator=aggregator, finalizer=()))

  def get_model_weights(self, state) -> tff.learning.models.ModelWeights:
    return tff.learning.models.ModelWeights(
        tuple(tf.nest.flatten(state['hypernetwork']))
        + (state['embeddings'],), ())

  def server_state(self, weights) -> dict:
    """`get_model_weights`' inverse: the hypernetwork and embeddings."""
    return {'hypernetwork': tf.nest.pack_sequence_as(
        self._hypernetwork, list(weights.trainable[:-1])),
            'embeddings': weights.trainable[-1]}

  @property
  def clients_per_round(self) -> int:
    """The rows of a client's upload (`PFedHNProcess.clients_per_round`)."""
    return self._process.clients_per_round

  def client_weights(self, weights, key: int):
    """Client `key`'s generated `ModelWeights`."""
    return self._process.get_client_weights(self.server_state(weights), key)


def build_process(model, model_aggregator,
                  config: config_lib.ExperimentConfig,
                  num_clients: Optional[int] = None):
  """The learning process of `config`'s algorithm on `model`
  (`num_clients`: the training clients, for per-client models).

  Raises:
    RunError: For an aggregator an algorithm with per-client models cannot
      take.
  """
  spec = config.spec
  kwargs = {**spec.kwargs(config.hyperparameters),
            **server_optimizer_kwargs(config)}
  if not spec.per_client_models:
    return spec.builder(model, model_aggregator=model_aggregator, **kwargs)
  _check_per_client_aggregator(config)
  shapes = [tuple(w.shape) for w in models.spec(model).weights_type.trainable]
  entries = pfedhn.server_size(
      shapes, num_clients=num_clients,
      embedding_dim=pfedhn.default_embedding_dim(num_clients))
  if entries > MAX_SERVER_ENTRIES:
    raise config_lib.RunError(
        f'--algorithm: {config.algorithm}\'s hypernetwork for this task\'s '
        f'model ({sum(int(np.prod(s)) for s in shapes):,} weights) would hold '
        f'{entries:,} entries, over the {MAX_SERVER_ENTRIES:,} this runner '
        'allows; give the task a smaller model')
  # A round's clients take its upload's rows, not every client.
  return PerClientModels(spec.builder(
      model, num_clients=num_clients,
      clients_per_round=min(config.clients_per_round, num_clients),
      model_aggregator=model_aggregator, seed=config.seed, **kwargs))


def _check_per_client_aggregator(config: config_lib.ExperimentConfig):
  """Refuses what cannot combine uploads in which each client's update has
  its own row (`fedmeta.algorithms.pfedhn`)."""
  name, aggregator = config.algorithm, config.aggregator
  if aggregator.aggregation in aggregators.STATISTICS:
    raise config_lib.RunError(
        f"--aggregation: {name} sums each client's update in its own row, "
        f'so a statistic over clients ({aggregator.aggregation}) would see '
        'mostly zero rows; use mean, clip or zeroing')
  if aggregator.secure_aggregation:
    raise config_lib.RunError(
        f"--secure_aggregation: {name} sums each client's update in its own "
        'row, so a secure sum would still show the server every update')
  if aggregator.malicious_fraction and aggregator.attack in (
      aggregation.OMNISCIENT_ATTACKS):
    raise config_lib.RunError(
        f'--attack: {aggregator.attack} forges an update from the round\'s '
        f'others, which fill other clients\' rows in {name}; use sign_flip '
        'or scale')


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
        learned_rates=spec.learned_rates,
        inner_optimizer=(specs.inner_optimizer(hyperparameters)
                         if spec.inner_optimizers else None))
  return algorithms.build_fed_eval(task.model_fn())


def build_per_client_evaluation(task, config: config_lib.ExperimentConfig,
                                process: PerClientModels, split):
  """(weights, held-out client ids) -> each client's {stage: metrics}, for
  per-client models (Shamsian et al.'s two protocols): a training client's
  generated model on all its test data ('participating'); a client unseen
  in training, from an embedding learned on its support set with the
  hypernetwork frozen, on its query set ('new_client': --eval_inner_steps
  epochs of SGD at --inner_learning_rate, `pfedhn.NewClientLearner`).

  `split(test client data)` marks the new clients' support sets.
  """
  model_fn = task.model_fn
  fed_eval = algorithms.build_fed_eval(model_fn())
  keys = client_data.client_keys(task.train)
  hyperparameters = config.hyperparameters
  learner = pfedhn.NewClientLearner(
      model_fn(), epochs=(config.evaluation.inner_steps
                          or hyperparameters.inner_steps),
      optimizer=tff.learning.optimizers.build_sgdm(
          hyperparameters.inner_learning_rate))
  new_clients = None  # The split test data, made when first needed.

  def part(dataset, support: bool):
    return dataset.filter(lambda e: e['support'] == support).map(
        lambda e: {k: v for k, v in e.items() if k != 'support'})

  def evaluate(weights, client_ids):
    nonlocal new_clients
    unseen = [cid for cid in client_ids if cid not in keys]
    learned = {}
    if unseen:
      if new_clients is None:
        new_clients = split(task.test)
      flagged = {cid: new_clients.create_tf_dataset_for_client(cid)
                 for cid in unseen}
      for cid, (_, theta) in zip(unseen, learner.many(
          process.server_state(weights),
          [part(flagged[cid], True).batch(config.client.batch_size)
           for cid in unseen])):
        learned[cid] = fed_eval(theta, [part(flagged[cid], False).batch(256)])
    return [{'new_client': learned[cid]} if cid in learned else
            {'participating': fed_eval(
                process.client_weights(weights, keys[cid]),
                [task.test.create_tf_dataset_for_client(cid).batch(256)])}
            for cid in client_ids]

  return evaluate
