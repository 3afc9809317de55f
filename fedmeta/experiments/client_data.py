"""What the runner's clients train and are evaluated on, from an
`ExperimentConfig`: the task, its loader options, support/query splits,
episodes, data poisoning and each round's client datasets."""

import inspect
from typing import Callable, NamedTuple, Optional
import zlib

import numpy as np
import tensorflow as tf

from fedmeta import algorithms
from fedmeta import data
from fedmeta.algorithms import specs
from fedmeta.data import episodes
from fedmeta.data import iteration
from fedmeta.data import poisoning
from fedmeta.data import task as task_lib
from fedmeta.experiments import config as config_lib

RunError = config_lib.RunError

# Loader arguments that have flags of their own.
_FLAGGED_OPTIONS = ('data_dir', 'seed', 'num_clients')
# Loader options that change where files are read or cached, not the data.
_OPTIONS_WITHOUT_EFFECT = ('cache_dir', 'download', 'manual_dir')


def _loader_defaults(parameters) -> dict:
  return {p.name: p.default for p in parameters.values()
          if p.kind == p.KEYWORD_ONLY and p.name not in _FLAGGED_OPTIONS}


def _task_options(task: str, parameters, texts) -> dict:
  """--task_option `texts`, typed like the loader's defaults."""
  options = _loader_defaults(parameters)
  kwargs = {}
  for text in texts:
    key, sep, value = text.partition('=')
    if not sep or key not in options:
      raise RunError(
          f'--task_option: {text!r} is not key=value with a key of task '
          f'{task}\'s: {", ".join(options) or "none"}')
    default = options[key]
    try:
      if isinstance(default, bool):
        if value.lower() not in ('true', 'false'):
          raise ValueError(value)
        kwargs[key] = value.lower() == 'true'
      elif isinstance(default, (int, float)):
        kwargs[key] = type(default)(value)
      else:
        kwargs[key] = value
    except ValueError as e:
      raise RunError(f'--task_option: {key} takes a '
                     f'{type(default).__name__}, got {value!r}') from e
  return kwargs


def task_options_in_effect(config: config_lib.ExperimentConfig, texts=None,
                           defaults_before=None) -> dict:
  """Every loader option of the task that shapes the data, with its value:
  the defaults, updated by `defaults_before` (older defaults), then by the
  --task_option texts (or `texts`) and --ways."""
  task = config.task.name
  parameters = inspect.signature(data.task_info(task).load).parameters
  options = _loader_defaults(parameters)
  options.update(defaults_before or {})
  options.update(_task_options(
      task, parameters, config.task.options if texts is None else texts))
  ways = config.episodes.ways
  if 'ways' in options and ways is not None:
    options['ways'] = ways
  return {k: v for k, v in options.items()
          if k not in _OPTIONS_WITHOUT_EFFECT}


def load_task(config: config_lib.ExperimentConfig) -> data.Task:
  """The task of `config`, with the loader arguments that apply to it."""
  name, ways = config.task.name, config.episodes.ways
  parameters = inspect.signature(data.task_info(name).load).parameters
  kwargs = _task_options(name, parameters, config.task.options)
  if 'seed' in parameters:
    kwargs['seed'] = config.seed
  if config.task.num_clients is not None:
    if 'num_clients' not in parameters:
      raise RunError(f'--num_clients: task {name} has natural clients')
    kwargs['num_clients'] = config.task.num_clients
  if ways is not None and 'ways' in parameters:
    if kwargs.setdefault('ways', ways) != ways:
      raise RunError(f'--ways: {ways} differs from '
                     f'--task_option=ways={kwargs["ways"]}')
  return data.load(name, data_dir=config.task.data_dir, **kwargs)


def support_query_split(task: data.Task,
                        config: config_lib.ExperimentConfig):
  """`split(client_data, round_num=None)` marking support and query
  examples.

  Raises:
    RunError: For a split the task cannot give.
  """
  shots = config.support.shots
  if shots is not None:
    if 'support_fraction' in config.given:
      raise RunError('--shots, --support_fraction: give one, not both')
    if not data.task_info(task.name).classes:
      raise RunError(f'--shots: task {task.name} has no classes; use '
                     '--support_fraction')
    per_class = task.examples_per_class
    if per_class is not None and shots >= per_class:
      raise RunError(
          f'--shots: {shots} support examples per class leave no query '
          f'example: task {task.name} has {per_class} per class and client')
  elif not 0 < config.support.fraction < 1:
    raise RunError('--support_fraction: must be strictly between 0 and 1, '
                   f'got {config.support.fraction}')
  fraction = None if shots is not None else config.support.fraction
  return lambda client_data, round_num=None: data.split_client_data(
      client_data, support_fraction=fraction, shots=shots, seed=config.seed,
      round_num=round_num)


def _names(predicate) -> str:
  return ', '.join(name for name, spec in algorithms.ALGORITHMS.items()
                   if predicate(spec))


def episode_samplers(task: data.Task, config: config_lib.ExperimentConfig):
  """(training, held-out) `EpisodeSampler`s, or None without --ways.

  Raises:
    RunError: For episode flags that do not apply.
  """
  given, spec, name = config.given, config.spec, config.algorithm
  ep, shots = config.episodes, config.support.shots
  if 'distance' in given and not spec.embedding:
    raise RunError(f'--distance: {name} does not take it; '
                   f'{_names(lambda s: s.embedding)} do')
  if ep.ways is None:
    for flag in ('query_shots', 'eval_episodes', 'eval_query_shots',
                 'train_ways', 'train_shots', 'episodes_per_client'):
      if flag in given:
        raise RunError(f'--{flag}: needs --ways')
    if spec.data is specs.Data.EPISODIC:
      raise RunError(f'--ways: {name} trains on episodes; give --ways and '
                     '--shots')
    if task.episodic:
      raise RunError(f'--ways: task {task.name} with these options holds '
                     'class pools for episodes; give --ways and --shots')
    return None
  if 'max_client_examples' in given:
    raise RunError('--max_client_examples: not with --ways (an episode is '
                   'its --shots and --query_shots)')
  if not spec.meta_learning:
    raise RunError(f'--ways: episodes are for meta-learning algorithms, not '
                   f'{name}')
  if shots is None or 'support_fraction' in given:
    raise RunError('--ways: give --shots (support examples per class), not '
                   '--support_fraction')
  if not data.task_info(task.name).classes:
    raise RunError(f'--ways: task {task.name} has no classes')
  if spec.embedding:
    for flag in ('inner_steps', 'inner_learning_rate', 'eval_inner_steps',
                 'client_epochs', 'personalization_eval'):
      if flag in given:
        raise RunError(f'--{flag}: {name} does not take it (a client step '
                       'an episode, no adaptation)')
    if task.embedding_fn is None:
      raise RunError(f'--algorithm: task {task.name} has no embedding '
                     f'network for {name}')
  if config.hyperparameters.episodes_per_client > 1 and not (
      spec.tasks_per_client):
    raise RunError(f'--episodes_per_client: {name} takes one task a client '
                   '(its local steps are on it)')
  if 'train_ways' in given and spec.data is not specs.Data.EPISODIC:
    raise RunError(f'--train_ways: {name} adapts a model of --ways outputs; '
                   f'only {_names(lambda s: s.data is specs.Data.EPISODIC)} '
                   'train on other ways')
  train, test = (episodes.EpisodeSampler(
      client_data, ways=ways, shots=shots, query_shots=query_shots,
      seed=config.seed)
                 for client_data, ways, shots, query_shots in (
                     (task.train, ep.train_ways or ep.ways,
                      ep.train_shots or shots, ep.query_shots or shots),
                     (task.test, ep.ways, shots, ep.eval_query_shots)))
  # A client too small for an episode is refused now, before any output.
  train.pool(train.client_ids[0])
  test.pool(test.client_ids[0])
  return train, test


class DataPoisoning(NamedTuple):
  """The data attack of a config.

  Attributes:
    attackers: The training clients that poison their data.
    transform: (client id, its dataset) -> the dataset it trains on.
    trigger: The backdoor's trigger, or None for label flipping.
    image_shape: Where the trigger goes in a flat `x` (`poisoning.
      image_shape_of`).
  """
  attackers: frozenset
  transform: Callable[[str, tf.data.Dataset], tf.data.Dataset]
  trigger: Optional[poisoning.Trigger]
  image_shape: Optional[tuple]


def data_poisoning(task: data.Task, samplers,
                   config: config_lib.ExperimentConfig
                   ) -> Optional[DataPoisoning]:
  """The data attack of --attack=label_flip or backdoor, or None.

  Raises:
    RunError: For a task or protocol the attack does not apply to.
  """
  attack = config.attack
  if not attack.poisons_data:
    return None
  if samplers:
    raise RunError(f'--attack={attack.kind}: not with --ways (an episode\'s '
                   'labels are a fresh permutation, so flipped or targeted '
                   'labels mean nothing across episodes)')
  label = task.train.element_type_structure['y']
  if label.dtype != tf.int32 or label.shape.rank:
    raise RunError(f'--attack={attack.kind}: task {task.name} has no integer '
                   'class labels')
  num_classes = int(np.shape(task.model_fn().initial_weights[0][-1])[-1])
  attackers = poisoning.attackers(task.train.client_ids,
                                  attack.malicious_fraction, config.seed)
  if not attackers:
    raise RunError(f'--malicious_fraction: {attack.malicious_fraction} of '
                   f'the {len(task.train.client_ids)} training clients of '
                   f'task {task.name} rounds to no attacker')
  if attack.kind == 'label_flip':
    return DataPoisoning(
        attackers, lambda cid, dataset: poisoning.flip_labels(
            dataset, num_classes), None, None)
  if config.personalize:
    raise RunError('--attack=backdoor: its success rate is measured on the '
                   'global model; not with meta-learning or '
                   '--personalization_eval')
  spec = task.train.element_type_structure
  image_shape = (poisoning.image_shape_of(spec) if spec['x'].dtype.is_floating
                 else None)
  if image_shape is None:
    raise RunError(f'--attack=backdoor: task {task.name} has no images for '
                   'a pixel trigger')
  if attack.backdoor_target >= num_classes:
    raise RunError(f'--backdoor_target: {attack.backdoor_target} is not one '
                   f'of task {task.name}\'s {num_classes} classes')
  if min(image_shape) < attack.trigger_size:
    raise RunError(f'--trigger_size: {attack.trigger_size} pixels do not '
                   f'fit task {task.name}\'s {image_shape} images')
  # fedmeta's image tasks scale pixels to [0, 1].
  trigger = poisoning.Trigger(low=0.0, high=1.0, size=attack.trigger_size)

  def transform(cid, dataset):
    return poisoning.backdoor(
        dataset, trigger, target=attack.backdoor_target,
        poison_fraction=attack.backdoor_fraction,
        seed=zlib.crc32(f'{config.seed}/{cid}'.encode()),
        image_shape=image_shape)

  return DataPoisoning(attackers, transform, trigger, image_shape)


def client_keys(client_data) -> dict:
  """Client id -> its key for per-client models: its index in `client_data`
  (the training clients), in training and at evaluation alike."""
  return {cid: key for key, cid in enumerate(client_data.client_ids)}


class Keyed(NamedTuple):
  """A round's clients for per-client models: each one's key (its index
  among the training clients) and dataset."""
  keys: list
  datasets: list


class RoundClients(NamedTuple):
  """Who took part in a round."""
  sampled: int
  reporting: int
  straggling: int
  poisoning: Optional[int]  # None without a data attack.


def build_client_datasets(train, sample, samplers, split, poison,
                          config: config_lib.ExperimentConfig, clients: dict):
  """round -> the datasets of its reporting clients, as `config`'s algorithm
  trains on them (with their keys, a `Keyed`, for per-client models);
  records each round's `RoundClients` in `clients`.

  Args:
    train: The training clients' `ClientData` (split, where the split is
      fixed).
    sample: round -> the sampled client ids.
    samplers: `episode_samplers`' pair, or None.
    split: `support_query_split`'s function, for a split drawn afresh each
      round, or None.
    poison: `data_poisoning`'s, or None.
    config: The experiment.
    clients: Round -> `RoundClients`, filled in.
  """
  spec, client = config.spec, config.client
  episodes_per_client = config.hyperparameters.episodes_per_client
  # A batch an episode: a client step each (episodic algorithms), or a task
  # each (several tasks a client).
  # (Both need --ways: `episode_samplers` refuses them without.)
  batch_per_episode = (spec.data is specs.Data.EPISODIC
                       or episodes_per_client > 1)
  sampler = samplers[0] if samplers else None
  keys = client_keys(train)

  def dataset_of(cid, round_num, source):
    if batch_per_episode:
      episode_size = sampler.ways * (sampler.shots + sampler.query_shots)
      dataset = sampler.dataset(cid, round_num).batch(episode_size)
      for index in range(1, episodes_per_client):
        dataset = dataset.concatenate(sampler.dataset(
            cid, round_num, index).batch(episode_size))
      return dataset
    if sampler:
      dataset = sampler.dataset(cid, round_num)
    else:
      dataset = source.create_tf_dataset_for_client(cid)
      if poison is not None and cid in poison.attackers:
        dataset = poison.transform(cid, dataset)
    if client.max_examples:
      dataset = dataset.take(client.max_examples)
    if spec.meta_learning:  # The inner loops see whole support and query sets.
      return dataset.batch(client.batch_size)
    return task_lib.batch_client_dataset(
        dataset, epochs=client.epochs, batch_size=client.batch_size,
        seed=config.seed + round_num)

  def client_datasets(round_num):
    sampled = sample(round_num)
    rng = np.random.default_rng([config.seed, round_num, 1])
    reporting = [c for c in sampled if rng.random() >= client.dropout_rate]
    source = train if split is None else split(train, round_num)
    datasets, straggling = [], 0
    for cid in reporting:
      dataset = dataset_of(cid, round_num, source)
      if rng.random() < client.straggler_fraction:
        steps = int(iteration.count(dataset))
        dataset = dataset.take(rng.integers(1, max(steps, 1) + 1))
        straggling += 1
      datasets.append(dataset)
    clients[round_num] = RoundClients(
        len(sampled), len(reporting), straggling,
        None if poison is None else
        sum(c in poison.attackers for c in reporting))
    if spec.per_client_models:
      return Keyed([keys[c] for c in reporting], datasets)
    return datasets

  return client_datasets
