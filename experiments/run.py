r"""fedmeta's experiment runner: any task with any algorithm, round by round.

  python -m experiments.run --task=digits --algorithm=fed_avg --rounds=10
  fedmeta-run --flagfile=experiments/configs/demo.flags

Writes <root_output_dir>/<experiment_name>/: config.json (the flags),
metrics.csv (a row per round), tensorboard/, checkpoints/, and at the end
summary.json and curves.png. Rerunning the same command after a crash or
Ctrl-C resumes from the last checkpoint; a larger --rounds continues a
finished run.
"""

import inspect
import json
import os
import platform
import re
import sys
from typing import Callable, NamedTuple, Optional
import zlib

from absl import app
from absl import flags
from absl import logging

import fedmeta
from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta import aggregation
from fedmeta import aggregators
from fedmeta import algorithms
from fedmeta.algorithms import evaluation as evaluation_lib
from fedmeta.algorithms import fed_protonet
from fedmeta import privacy
from fedmeta import data
from fedmeta.data import episodes
from fedmeta.data import iteration
from fedmeta.data import partition
from fedmeta.data import poisoning
from fedmeta.data import task as task_lib
from experiments import training_loop

import numpy as np  # pylint: disable=g-bad-import-order
import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order

SERVER_OPTIMIZERS = ('sgd', 'sgdm', 'adam', 'yogi', 'adagrad')
# Algorithms whose name fixes the server optimizer.
_OWN_SERVER_OPTIMIZER = ('fed_adam', 'fed_yogi', 'fed_adagrad', 'fed_avgm')
# The kind of each other algorithm's own server optimizer (its builder's
# default), which --server_learning_rate alone rescales.
DEFAULT_SERVER_OPTIMIZER = {
    'fed_avg': 'sgd', 'fed_sgd': 'sgd', 'fed_prox': 'sgd',
    'fed_maml': 'adam', 'fo_maml': 'adam', 'meta_sgd': 'adam',
    'reptile': 'sgd', 'per_fedavg_fo': 'sgd', 'per_fedavg_hf': 'sgd',
    'fed_protonet': 'adam'}

_TASK = flags.DEFINE_string(
    'task', 'digits', f'Federated task (dataset and model): one of '
    f'{", ".join(data.TASKS)}, or {data.TFDS_PREFIX}<dataset> for a '
    'TensorFlow Datasets classification or text dataset (its options: '
    'fedmeta/data/tfds.py).')
flags.register_validator(
    'task', data.is_task_name,
    message=f'must be one of {", ".join(data.TASKS)} or '
    f'{data.TFDS_PREFIX}<dataset>')
_ALGORITHM = flags.DEFINE_enum('algorithm', 'fed_avg',
                               sorted(algorithms.BUILDERS),
                               'Federated algorithm.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None,
    'Dataset root; default $FEDMETA_DATA_DIR when set, else ../shared/data '
    'beside the repository.')
_ROUNDS = flags.DEFINE_integer('rounds', 10, 'Number of rounds.', lower_bound=1)
_CLIENTS_PER_ROUND = flags.DEFINE_integer(
    'clients_per_round', 10, 'Clients sampled per round, uniformly without '
    'replacement.', lower_bound=1)
_NUM_CLIENTS = flags.DEFINE_integer(
    'num_clients', None, 'Training clients, for tasks without natural '
    'clients (digits, sinusoid, credit with a Dirichlet or IID partition); '
    "default the task's own.", lower_bound=1)
_TASK_OPTION = flags.DEFINE_multi_string(
    'task_option', [], "key=value for the task's loader, repeatable, e.g. "
    '--task_option=alpha=0.5 --task_option=beta=0.5 for synthetic; the '
    "options are the keyword arguments of fedmeta/data/<task>.py's load().")
_DESCRIBE = flags.DEFINE_bool(
    'describe', False, "Print the task's clients, examples per client and "
    'label skew, then exit without training.')
_CLIENT_EPOCHS = flags.DEFINE_integer('client_epochs', 1,
                                      'Local epochs per round.', lower_bound=1)
_CLIENT_BATCH_SIZE = flags.DEFINE_integer('client_batch_size', 20,
                                          'Local batch size.', lower_bound=1)
_CLIENT_LEARNING_RATE = flags.DEFINE_float(
    'client_learning_rate', 0.1, 'Client SGD learning rate.', lower_bound=0.0)
_SERVER_OPTIMIZER = flags.DEFINE_enum(
    'server_optimizer', 'sgd', SERVER_OPTIMIZERS,
    "Server optimizer; unset, the algorithm's own (SGD(1.0) for fed_avg and "
    'fed_prox, SGD(0.1) for fed_sgd, Adam(0.001) for fed_maml, fo_maml and '
    'meta_sgd and fed_protonet, SGD(1.0) for reptile and Per-FedAvg; '
    'fed_adam, fed_yogi, '
    'fed_adagrad and fed_avgm fix theirs). Given, with '
    '--server_learning_rate (1.0 when unset).')
_SERVER_LEARNING_RATE = flags.DEFINE_float(
    'server_learning_rate', 1.0, "Server learning rate; unset, the "
    "algorithm's own. Alone, it rescales the algorithm's own optimizer "
    '(Adam stays Adam).', lower_bound=0.0)
_PROXIMAL_STRENGTH = flags.DEFINE_float(
    'proximal_strength', 0.01, "FedProx's mu.", lower_bound=0.0)
_INNER_STEPS = flags.DEFINE_integer(
    'inner_steps', 1, 'Meta-learning: inner SGD steps on the support set '
    '(Per-FedAvg: local steps tau).', lower_bound=1)
_INNER_LEARNING_RATE = flags.DEFINE_float(
    'inner_learning_rate', 0.01, 'Meta-learning: inner SGD rate (MAML\'s '
    'alpha; the initial rates of Meta-SGD). Per-FedAvg\'s beta is '
    '--client_learning_rate.', lower_bound=0.0)
_SUPPORT_FRACTION = flags.DEFINE_float(
    'support_fraction', 0.5, "Meta-learning: share of each client's examples "
    'in its support set; the rest is its query set.', lower_bound=0.0,
    upper_bound=1.0)
_SHOTS = flags.DEFINE_integer(
    'shots', None, 'Meta-learning: K support examples per class (K-shot) '
    'instead of --support_fraction.', lower_bound=1)
_RESAMPLE_SUPPORT = flags.DEFINE_bool(
    'resample_support', True, 'Meta-learning with --support_fraction or '
    "--shots: draw each training client's support/query split afresh every "
    "round, as FedMeta samples it; --noresample_support keeps one split per "
    'client. Held-out clients keep one split.')
_WAYS = flags.DEFINE_integer(
    'ways', None, 'Meta-learning on episodes (fedmeta.data.episodes): each '
    'round, every sampled client draws a fresh N-way episode from its own '
    'classes, labels permuted, with --shots support and --query_shots query '
    'examples per class; held-out clients are scored on --eval_episodes such '
    "episodes. Off when unset. Loaders with a ways option get it too.",
    lower_bound=2)
_QUERY_SHOTS = flags.DEFINE_integer(
    'query_shots', None, 'With --ways: query examples per class of a '
    "training episode; default --shots (MAML's protocol).", lower_bound=1)
_TRAIN_WAYS = flags.DEFINE_integer(
    'train_ways', None, 'With --ways: classes of a training episode, where '
    'they differ from the held-out ones (Snell et al. train ProtoNets '
    '60-way and test 5-way); default --ways.', lower_bound=2)
_TRAIN_SHOTS = flags.DEFINE_integer(
    'train_shots', None, 'With --ways: support examples per class of a '
    'training episode, where they differ from the held-out ones (Reptile '
    'trains its Omniglot 1-shot model on 10 shots); default --shots.',
    lower_bound=1)
_EPISODES_PER_CLIENT = flags.DEFINE_integer(
    'episodes_per_client', 1, 'With --ways: episodes a sampled client draws '
    'each round; fed_protonet takes one client step per episode, the MAML '
    'family and Reptile average their updates over them (tasks of the '
    'meta-batch).',
    lower_bound=1)
_DISTANCE = flags.DEFINE_enum(
    'distance', 'squared_euclidean', fed_protonet.DISTANCES,
    "fed_protonet: the distance to the prototypes (Snell et al.'s squared "
    'Euclidean, or cosine).')
_EVAL_EPISODES = flags.DEFINE_integer(
    'eval_episodes', 600, 'With --ways: held-out episodes scored at each '
    'evaluation (mean and 95% confidence interval, as the few-shot papers '
    'report).', lower_bound=1)
_EVAL_QUERY_SHOTS = flags.DEFINE_integer(
    'eval_query_shots', 15, 'With --ways: query examples per class of a '
    'held-out episode.', lower_bound=1)
_EVAL_EVERY = flags.DEFINE_integer('eval_every', 1,
                                   'Evaluate every this many rounds.',
                                   lower_bound=1)
_PERSONALIZATION_EVAL = flags.DEFINE_bool(
    'personalization_eval', False, 'Evaluate a FedAvg-family model as '
    'meta-learning ones are: adapt it to each held-out client\'s support '
    'set with --inner_steps SGD steps at --inner_learning_rate and report '
    'query metrics before and after (the FedMeta paper\'s FedAvg(Meta) '
    'baseline).')
_EVAL_SUPPORT = flags.DEFINE_enum(
    'eval_support', 'split', ['split', 'train'], 'Where a held-out client '
    "adapts from: 'split', a support set drawn from its test data by "
    "--shots or --support_fraction; 'train', its own training data, scored "
    'on all its test data (tasks whose test clients are training clients: '
    "a room's later weeks, a hospital's test rows).")
_EVAL_INNER_STEPS = flags.DEFINE_integer(
    'eval_inner_steps', None, 'Adaptation steps on each held-out client at '
    'evaluation; default --inner_steps.', lower_bound=1)
_EVAL_CLIENTS = flags.DEFINE_integer(
    'eval_clients', None, 'Evaluate on the first this many held-out '
    'clients only (faster; default all).', lower_bound=1)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    'checkpoint_every', 1, 'Checkpoint the full process state every this '
    'many rounds (and after the last); rerunning the same command resumes '
    'from the last checkpoint.', lower_bound=1)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of data, model and sampling.')

# Privacy, security, robustness, compression (fedmeta.aggregation).
_AGGREGATION = flags.DEFINE_enum(
    'aggregation', 'mean', aggregators.KINDS,
    'How client updates are combined: mean (weighted), clip (each update '
    'clipped to L2 norm --clip_norm, then the mean), zeroing (updates with '
    'L2 norm over --clip_norm zeroed), median (coordinate-wise), '
    'trimmed_mean (coordinate-wise, without the --trim_fraction largest and '
    'smallest), krum, multi_krum, bulyan (against --byzantine attackers), '
    'geometric_median (RFA, weighted, by Weiszfeld iterations) or '
    'centered_clip (radius --clip_norm, from the last aggregate); '
    'fedmeta.aggregation has their papers.')
_CLIP_NORM = flags.DEFINE_float(
    'clip_norm', None, 'L2 norm for --aggregation=clip or zeroing; the radius '
    'of --aggregation=centered_clip.', lower_bound=0.0)
_BYZANTINE = flags.DEFINE_integer(
    'byzantine', None, 'f, the attackers a round is assumed to hold, for '
    '--aggregation=krum, multi_krum and bulyan (which need rounds of 2f + 3, '
    '2f + 3 and 4f + 3 clients).', lower_bound=0)
_MULTI_KRUM_KEEP = flags.DEFINE_integer(
    'multi_krum_keep', None, '--aggregation=multi_krum: the updates of least '
    'Krum score averaged; default n - f.', lower_bound=1)
_WEISZFELD_ITERATIONS = flags.DEFINE_integer(
    'weiszfeld_iterations', aggregators.DEFAULTS['weiszfeld_iterations'],
    "--aggregation=geometric_median: most Weiszfeld iterations (RFA's code: "
    '4).', lower_bound=1)
_WEISZFELD_TOLERANCE = flags.DEFINE_float(
    'weiszfeld_tolerance', aggregators.DEFAULTS['weiszfeld_tolerance'],
    '--aggregation=geometric_median: stop when the objective falls by less '
    'than this share of itself.', lower_bound=0.0)
_CENTERED_CLIP_ITERATIONS = flags.DEFINE_integer(
    'centered_clip_iterations',
    aggregators.DEFAULTS['centered_clip_iterations'],
    '--aggregation=centered_clip: clipping iterations a round.',
    lower_bound=1)
_TRIM_FRACTION = flags.DEFINE_float(
    'trim_fraction', 0.1, 'Share trimmed from each end by '
    '--aggregation=trimmed_mean.', lower_bound=0.0, upper_bound=0.49)
_SECURE_AGGREGATION = flags.DEFINE_bool(
    'secure_aggregation', False, 'Sum weighted updates with TFF\'s '
    'SecureSumFactory: clipped to +-(--secure_bound), quantized to 32 bits.')
_SECURE_BOUND = flags.DEFINE_float(
    'secure_bound', 1000.0, 'Bound of a weighted update coordinate under '
    '--secure_aggregation.', lower_bound=0.0)
_COMPRESSION_BITS = flags.DEFINE_integer(
    'compression_bits', 0, 'Quantize client updates to this many bits per '
    'coordinate (0: no compression).', lower_bound=0, upper_bound=16)
_ROTATION = flags.DEFINE_bool(
    'rotation', False, 'With --compression_bits: a random Hadamard rotation '
    'before quantizing.')
_DP_NOISE_MULTIPLIER = flags.DEFINE_float(
    'dp_noise_multiplier', None, 'DP-FedAvg: Gaussian noise stddev over the '
    'clip norm; clients are then weighted uniformly. Off when unset.',
    lower_bound=0.0)
_DP_CLIP = flags.DEFINE_float(
    'dp_clip', None, 'DP-FedAvg: fixed L2 clip norm of client updates; '
    'adaptive (towards the median norm) when unset.', lower_bound=0.0)
_DP_TARGET_DELTA = flags.DEFINE_float(
    'dp_target_delta', 1e-5, 'DP-FedAvg: the delta of the reported '
    '(epsilon, delta).', lower_bound=0.0, upper_bound=1.0)
_MALICIOUS_FRACTION = flags.DEFINE_float(
    'malicious_fraction', 0.0, 'Simulated attack: each sampled client is an '
    'attacker with this probability per round (update attacks); for the data '
    'attacks, this share of the training clients (a fixed, seeded set) '
    'poisons its data.', lower_bound=0.0, upper_bound=1.0)
DATA_ATTACKS = ('label_flip', 'backdoor')
_ATTACK = flags.DEFINE_enum(
    'attack', 'sign_flip', aggregation.ATTACKS + DATA_ATTACKS,
    'What an attacker sends: '
    'sign_flip (-attack_scale * update), scale (attack_scale * update), '
    'alie ("a little is enough": the mean of the round\'s updates minus z '
    'standard deviations) or ipm (inner product manipulation: -attack_scale '
    'times their mean); or what it trains on: label_flip (label y as '
    'classes - 1 - y) or backdoor (a --backdoor_fraction of its examples '
    'with a pixel-pattern trigger and label --backdoor_target; the attack '
    "success rate, the global model's accuracy on triggered test images of "
    'other classes, is reported as eval/backdoor_success_rate).')
_BACKDOOR_TARGET = flags.DEFINE_integer(
    'backdoor_target', 0, '--attack=backdoor: the label triggered images '
    'get.', lower_bound=0)
_BACKDOOR_FRACTION = flags.DEFINE_float(
    'backdoor_fraction', 0.5, "--attack=backdoor: share of an attacker's "
    'examples poisoned (the rest keep the main task).', lower_bound=0.0,
    upper_bound=1.0)
_TRIGGER_SIZE = flags.DEFINE_integer(
    'trigger_size', 3, '--attack=backdoor: side in pixels of the '
    'checkerboard trigger in the bottom-right corner.', lower_bound=1)
_ATTACK_SCALE = flags.DEFINE_float(
    'attack_scale', aggregators.SIGN_FLIP_SCALE,
    "Factor of an attacker's update (sign_flip, scale) or of the mean update "
    '(ipm; unset, 0.1, as Xie et al.).')
_ALIE_Z = flags.DEFINE_float(
    'alie_z', None, "--attack=alie: z; default the paper's z_max for the "
    'round\'s clients and --malicious_fraction.')

# System heterogeneity, simulated on the sampled clients.
_DROPOUT_RATE = flags.DEFINE_float(
    'dropout_rate', 0.0, 'Probability that a sampled client fails to report.',
    lower_bound=0.0, upper_bound=1.0)
_STRAGGLER_FRACTION = flags.DEFINE_float(
    'straggler_fraction', 0.0, 'Probability that a sampled client is a '
    'straggler, which runs a uniformly random number of its local steps '
    '(batches), from 1 to all.', lower_bound=0.0, upper_bound=1.0)
_MAX_CLIENT_EXAMPLES = flags.DEFINE_integer(
    'max_client_examples', None, 'Cap on the examples a client trains on '
    'per round (its first ones).', lower_bound=1)
_WORKERS = flags.DEFINE_list(
    'workers', [], 'host:port of TFF workers (`fedmeta-worker --port=N`) '
    "across which each round's clients are split; the local C++ runtime "
    'when empty.')
# Not '/tmp/fedmeta': a directory named like the package would shadow it for
# any Python started in /tmp.
_ROOT_OUTPUT_DIR = flags.DEFINE_string('root_output_dir', '/tmp/fedmeta_runs',
                                       'Root of experiment outputs.')
_EXPERIMENT_NAME = flags.DEFINE_string('experiment_name', None,
                                       'Output subdirectory; default '
                                       '<task>_<algorithm>_seed<seed>.')


# config.json records the flags of a run; a rerun resumes only with the same
# ones, except these, which leave the rounds already run as they are.
CONFIG_JSON = 'config.json'
# Each held-out client's metrics at the latest personalized evaluation.
CLIENTS_JSON = 'eval_clients.json'
_MAY_CHANGE_ON_RESUME = frozenset({
    'rounds', 'eval_every', 'checkpoint_every', 'data_dir', 'describe',
    'root_output_dir', 'experiment_name', 'workers'})


# Flags added after runs were made, with the value those runs ran as (a
# fixed support/query split was all there was).
_BEFORE = {'resample_support': False, 'ways': None}
# Flags added since, which change nothing at their defaults.
_BEFORE.update({flag.name: flag.default for flag in (
    _EVAL_SUPPORT, _BACKDOOR_TARGET, _BACKDOOR_FRACTION, _TRIGGER_SIZE,
    _TRAIN_WAYS, _EPISODES_PER_CLIENT, _DISTANCE, _BYZANTINE, _MULTI_KRUM_KEEP,
    _WEISZFELD_ITERATIONS, _WEISZFELD_TOLERANCE, _CENTERED_CLIP_ITERATIONS,
    _ALIE_Z, _TRAIN_SHOTS)})


class RunError(Exception):
  """A flag or input problem, reported as one line."""


# Loader arguments that have flags of their own.
_FLAGGED_OPTIONS = ('data_dir', 'seed', 'num_clients')


# Loader defaults that have changed, with the value that runs made before
# the change ran with (config.json had no 'task_options' then).
_TASK_DEFAULTS_BEFORE = {'shakespeare': {'source': 'tiny'}}


def _loader_defaults(parameters) -> dict:
  return {p.name: p.default for p in parameters.values()
          if p.kind == p.KEYWORD_ONLY and p.name not in _FLAGGED_OPTIONS}


def _task_options(parameters, texts=None) -> dict:
  """--task_option values (or `texts`), typed like the loader's defaults."""
  options = _loader_defaults(parameters)
  kwargs = {}
  for text in _TASK_OPTION.value if texts is None else texts:
    key, sep, value = text.partition('=')
    if not sep or key not in options:
      raise RunError(
          f'--task_option: {text!r} is not key=value with a key of task '
          f'{_TASK.value}\'s: {", ".join(options) or "none"}')
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


# Loader options that change where files are read or cached, not the data.
_OPTIONS_WITHOUT_EFFECT = ('cache_dir', 'download', 'manual_dir')


def _task_options_in_effect(texts=None, defaults_before=None) -> dict:
  """Every loader option of --task that shapes the data, with its value: the
  defaults, updated by `defaults_before` (older defaults), then by
  --task_option (or `texts`) and --ways."""
  parameters = inspect.signature(data.task_info(_TASK.value).load).parameters
  options = _loader_defaults(parameters)
  options.update(defaults_before or {})
  options.update(_task_options(parameters, texts))
  if 'ways' in options and _WAYS.value is not None:
    options['ways'] = _WAYS.value
  return {k: v for k, v in options.items()
          if k not in _OPTIONS_WITHOUT_EFFECT}


def load_task() -> data.Task:
  """The task the flags name, with the loader arguments that apply to it."""
  info = data.task_info(_TASK.value)
  parameters = inspect.signature(info.load).parameters
  kwargs = _task_options(parameters)
  if 'seed' in parameters:
    kwargs['seed'] = _SEED.value
  if _NUM_CLIENTS.present:
    if 'num_clients' not in parameters:
      raise RunError(f'--num_clients: task {_TASK.value} has natural clients')
    kwargs['num_clients'] = _NUM_CLIENTS.value
  if _WAYS.value is not None and 'ways' in parameters:
    if kwargs.setdefault('ways', _WAYS.value) != _WAYS.value:
      raise RunError(f'--ways: {_WAYS.value} differs from '
                     f'--task_option=ways={kwargs["ways"]}')
  return data.load(_TASK.value, data_dir=_DATA_DIR.value, **kwargs)


def server_optimizer(name: str, learning_rate: float):
  builders = {
      'sgd': lambda: tff.learning.optimizers.build_sgdm(learning_rate),
      'sgdm': lambda: tff.learning.optimizers.build_sgdm(learning_rate,
                                                         momentum=0.9),
      'adam': lambda: tff.learning.optimizers.build_adam(learning_rate),
      'yogi': lambda: tff.learning.optimizers.build_yogi(learning_rate),
      'adagrad': lambda: tff.learning.optimizers.build_adagrad(learning_rate),
  }
  return builders[name]()


def _given(flag):
  """A flag's value where it is given, None (the library's default) if not."""
  return flag.value if flag.present else None


def build_model_aggregator():
  """The aggregation factory the flags ask for.

  Raises:
    RunError: For flags that do not combine.
  """
  _check_attack_flags()
  update_attack = _ATTACK.value not in DATA_ATTACKS
  config = aggregators.AggregatorConfig(
      clients_per_round=_CLIENTS_PER_ROUND.value,
      aggregation=_AGGREGATION.value,
      clip_norm=_CLIP_NORM.value,
      byzantine=_BYZANTINE.value,
      multi_krum_keep=_MULTI_KRUM_KEEP.value,
      weiszfeld_iterations=_given(_WEISZFELD_ITERATIONS),
      weiszfeld_tolerance=_given(_WEISZFELD_TOLERANCE),
      centered_clip_iterations=_given(_CENTERED_CLIP_ITERATIONS),
      trim_fraction=_TRIM_FRACTION.value,
      secure_aggregation=_SECURE_AGGREGATION.value,
      secure_bound=_SECURE_BOUND.value,
      compression_bits=_COMPRESSION_BITS.value,
      rotation=_ROTATION.value,
      dp_noise_multiplier=_DP_NOISE_MULTIPLIER.value,
      dp_clip=_DP_CLIP.value,
      malicious_fraction=_MALICIOUS_FRACTION.value if update_attack else 0.0,
      attack=_ATTACK.value,
      attack_scale=_given(_ATTACK_SCALE),
      alie_z=_ALIE_Z.value,
      seed=_SEED.value)
  try:
    return aggregators.build_model_aggregator(config)
  except aggregators.ConfigError as e:
    message = e.message
    for name in e.mentions:
      message = re.sub(rf'\b{name}\b', f'--{name}', message)
    raise RunError(f'--{e.field}: {message}') from e


def _check_attack_flags() -> None:
  """Refuses attack flags that would do nothing, or that the attack cannot
  take."""
  if not _MALICIOUS_FRACTION.value:
    for flag in (_ATTACK, _ATTACK_SCALE, _ALIE_Z):
      if flag.present:
        raise RunError(f'--{flag.name}: needs --malicious_fraction')
  if _ALIE_Z.present and _ATTACK.value != 'alie':
    raise RunError('--alie_z: needs --attack=alie')
  for flag in (_BACKDOOR_TARGET, _BACKDOOR_FRACTION, _TRIGGER_SIZE):
    if flag.present and _ATTACK.value != 'backdoor':
      raise RunError(f'--{flag.name}: needs --attack=backdoor')
  if _ATTACK.value in DATA_ATTACKS and _ATTACK_SCALE.present:
    raise RunError(f'--attack_scale: --attack={_ATTACK.value} poisons data, '
                   'it scales no update')
  if _ATTACK.value == 'backdoor' and not _BACKDOOR_FRACTION.value:
    raise RunError('--backdoor_fraction: must be > 0')
  if _ATTACK.value == 'alie':
    if _ATTACK_SCALE.present:
      raise RunError('--attack_scale: --attack=alie sends mu - z sigma; set '
                     'z with --alie_z')
    if _ALIE_Z.value is None and _MALICIOUS_FRACTION.value >= 0.5:
      raise RunError('--malicious_fraction: must be < 0.5 for --attack=alie '
                     "without --alie_z (the paper's z_max is infinite)")


def server_optimizer_kwargs(name: str) -> dict:
  """The builder's server optimizer arguments: none (its own default) unless
  a server flag is given; --server_learning_rate alone keeps its kind."""
  if name in _OWN_SERVER_OPTIMIZER:
    if _SERVER_OPTIMIZER.present:
      raise RunError(f'--server_optimizer: {name} fixes its server optimizer; '
                     'use --algorithm=fed_avg to choose one')
    if _SERVER_LEARNING_RATE.present:
      return {'server_learning_rate': _SERVER_LEARNING_RATE.value}
    return {}
  if not (_SERVER_OPTIMIZER.present or _SERVER_LEARNING_RATE.present):
    return {}
  kind = (_SERVER_OPTIMIZER.value if _SERVER_OPTIMIZER.present
          else DEFAULT_SERVER_OPTIMIZER[name])
  return {'server_optimizer': server_optimizer(kind,
                                               _SERVER_LEARNING_RATE.value)}


def build_process(model, model_aggregator):
  """The learning process the flags ask for."""
  name = _ALGORITHM.value
  builder = algorithms.BUILDERS[name]
  kwargs = {'model_aggregator': model_aggregator}
  if name == 'fed_protonet':
    return builder(model, **kwargs, distance=_DISTANCE.value,
                   client_optimizer=tff.learning.optimizers.build_sgdm(
                       _CLIENT_LEARNING_RATE.value),
                   **server_optimizer_kwargs(name))
  if name in algorithms.META_LEARNING:
    kwargs['inner_learning_rate'] = _INNER_LEARNING_RATE.value
    if name.startswith('per_fedavg'):
      kwargs['outer_learning_rate'] = _CLIENT_LEARNING_RATE.value
      kwargs['local_steps'] = _INNER_STEPS.value
    else:
      kwargs['inner_steps'] = _INNER_STEPS.value
      if _EPISODES_PER_CLIENT.value > 1:
        kwargs['task_per_batch'] = True
    return builder(model, **kwargs, **server_optimizer_kwargs(name))
  kwargs.update(server_optimizer_kwargs(name))
  if name != 'fed_sgd':
    kwargs['client_optimizer'] = tff.learning.optimizers.build_sgdm(
        _CLIENT_LEARNING_RATE.value)
  if name == 'fed_prox':
    kwargs['proximal_strength'] = _PROXIMAL_STRENGTH.value
  return builder(model, **kwargs)


def _key_flags() -> dict:
  return {f.name: f.value for f in
          flags.FLAGS.get_key_flags_for_module(sys.modules[__name__])}


def _output_dir(experiment_name: str, config: dict) -> str:
  """Creates the run's directory, or checks that a rerun may resume there.

  A rerun resumes when the directory holds this runner's config.json and the
  flags that decide the result are the same; it may ask for more --rounds.

  Raises:
    RunError: Where the directory cannot be written, or holds a run that
      this one must not touch.
  """
  root = _ROOT_OUTPUT_DIR.value
  if os.path.exists(root) and not os.path.isdir(root):
    raise RunError(f'--root_output_dir: {root} is a file, not a directory')
  path = os.path.join(root, experiment_name)
  config_path = os.path.join(path, CONFIG_JSON)
  if os.path.exists(config_path):
    _check_resumable(path, config_path, config)
  elif os.path.exists(os.path.join(path, training_loop.METRICS_CSV)):
    raise RunError(f'--experiment_name: {path} already holds a run; choose '
                   'another name or remove it')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise RunError(f'--root_output_dir: cannot create {path}: '
                   f'{e.strerror}') from e
  if not os.access(path, os.W_OK):
    raise RunError(f'--root_output_dir: {path} is not writable')
  if not os.path.exists(config_path):
    training_loop.write_json(config, config_path)
  return path


def _ignored_on_resume(name: str, config: dict) -> bool:
  """Whether flag `name` may differ on resume: it leaves the rounds already
  run as they are, or does nothing for this run."""
  if name in _MAY_CHANGE_ON_RESUME:
    return True
  if name == 'resample_support':
    return (config.get('algorithm') not in algorithms.META_LEARNING
            or config.get('ways') is not None)
  if name in ('query_shots', 'eval_episodes', 'eval_query_shots',
              'train_ways', 'train_shots', 'episodes_per_client'):
    return config.get('ways') is None
  if name == 'distance':
    return config.get('algorithm') != 'fed_protonet'
  return False


def _check_task_options(path: str, previous: dict, config: dict) -> None:
  """The loader options in effect must be the run's, however given."""
  if previous.get('task') != config.get('task'):
    return  # Refused as a different --task.
  now = config['task_options']
  if 'task_options' in previous:
    # Options added to the loader since ran as their defaults do.
    before = {**_task_options_in_effect([]), **previous['task_options']}
  else:  # Made before config.json recorded them.
    before = _task_options_in_effect(
        previous.get('task_option', []),
        _TASK_DEFAULTS_BEFORE.get(config['task']))
  for key in sorted(set(before) | set(now)):
    if before.get(key) != now.get(key):
      rerun = (f'without --task_option={key}' if before.get(key) is None
               else f'with --task_option={key}={before.get(key)}')
      raise RunError(
          f'--task_option: {key}={before.get(key)} in the run in {path}, '
          f'{key}={now.get(key)} now; rerun {rerun} to resume it, or choose '
          'another --experiment_name')


def _check_resumable(path: str, config_path: str, config: dict) -> None:
  try:
    with open(config_path) as f:
      previous = json.load(f)
  except (OSError, ValueError) as e:
    raise RunError(f'--experiment_name: {config_path} is unreadable ({e}); '
                   'choose another name') from e
  _check_task_options(path, previous, config)
  for name in sorted(set(config) | set(previous)):
    if _ignored_on_resume(name, config) or name in ('task_option',
                                                     'task_options'):
      continue
    if name not in previous and name in _BEFORE:
      # The run was made before the flag existed, and ran as _BEFORE says.
      before = _BEFORE[name]
      if config.get(name) != before:
        value = (f'--no{name}' if before is False else f'--{name}={before}')
        raise RunError(
            f'--{name}: the run in {path} was made before this flag and ran '
            f'as {value}; rerun with {value} to resume it, or choose another '
            '--experiment_name')
    elif config.get(name) != previous.get(name):
      what = 'the variant' if name == 'variant' else f'--{name}'
      raise RunError(
          f'{what}: {config.get(name)!r} differs from the '
          f'{previous.get(name)!r} of the run in {path}; rerun with the same '
          'flags to resume it, or choose another --experiment_name')
  done = training_loop.last_checkpoint_round(path)
  if done is not None and done >= _ROUNDS.value:
    raise RunError(f'--rounds: the run in {path} has finished {done} rounds; '
                   'ask for more to continue it, or choose another '
                   '--experiment_name')


def support_query_split(task: data.Task):
  """`split(client_data)` marking support and query examples, from the flags.

  Raises:
    RunError: For a split the task cannot give.
  """
  shots = _SHOTS.value
  if shots is not None:
    if _SUPPORT_FRACTION.present:
      raise RunError('--shots, --support_fraction: give one, not both')
    if not data.task_info(task.name).classes:
      raise RunError(f'--shots: task {task.name} has no classes; use '
                     '--support_fraction')
    per_class = task.examples_per_class
    if per_class is not None and shots >= per_class:
      raise RunError(
          f'--shots: {shots} support examples per class leave no query '
          f'example: task {task.name} has {per_class} per class and client')
  elif not 0 < _SUPPORT_FRACTION.value < 1:
    raise RunError('--support_fraction: must be strictly between 0 and 1, '
                   f'got {_SUPPORT_FRACTION.value}')
  fraction = None if shots is not None else _SUPPORT_FRACTION.value
  return lambda client_data, round_num=None: data.split_client_data(
      client_data, support_fraction=fraction, shots=shots, seed=_SEED.value,
      round_num=round_num)


def episode_samplers(task: data.Task):
  """(training, held-out) `EpisodeSampler`s from the flags, or None without
  --ways.

  Raises:
    RunError: For episode flags that do not apply.
  """
  if _DISTANCE.present and _ALGORITHM.value != 'fed_protonet':
    raise RunError('--distance: only --algorithm=fed_protonet takes it')

  if _WAYS.value is None:
    for flag in (_QUERY_SHOTS, _EVAL_EPISODES, _EVAL_QUERY_SHOTS,
                 _TRAIN_WAYS, _TRAIN_SHOTS, _EPISODES_PER_CLIENT):
      if flag.present:
        raise RunError(f'--{flag.name}: needs --ways')
    if _ALGORITHM.value in algorithms.EPISODIC:
      raise RunError(f'--ways: {_ALGORITHM.value} trains on episodes; give '
                     '--ways and --shots')
    if task.episodic:
      raise RunError(f'--ways: task {task.name} with these options holds '
                     'class pools for episodes; give --ways and --shots')
    return None
  if _MAX_CLIENT_EXAMPLES.present:
    raise RunError('--max_client_examples: not with --ways (an episode is '
                   'its --shots and --query_shots)')
  if _ALGORITHM.value not in algorithms.META_LEARNING:
    raise RunError(f'--ways: episodes are for meta-learning algorithms, not '
                   f'{_ALGORITHM.value}')
  if _SHOTS.value is None or _SUPPORT_FRACTION.present:
    raise RunError('--ways: give --shots (support examples per class), not '
                   '--support_fraction')
  if not data.task_info(task.name).classes:
    raise RunError(f'--ways: task {task.name} has no classes')
  if _ALGORITHM.value == 'fed_protonet':
    for flag in (_INNER_STEPS, _INNER_LEARNING_RATE, _EVAL_INNER_STEPS,
                 _CLIENT_EPOCHS, _PERSONALIZATION_EVAL):
      if flag.present:
        raise RunError(f'--{flag.name}: fed_protonet does not take it (a '
                       'client step an episode, no adaptation)')
  if _ALGORITHM.value == 'fed_protonet' and task.embedding_fn is None:
    raise RunError(f'--algorithm: task {task.name} has no embedding network '
                   'for fed_protonet')
  if (_EPISODES_PER_CLIENT.value > 1
      and _ALGORITHM.value.startswith('per_fedavg')):
    raise RunError(f'--episodes_per_client: {_ALGORITHM.value} takes one '
                   'task a client (its local steps are on it)')
  if _TRAIN_WAYS.present and _ALGORITHM.value not in algorithms.EPISODIC:
    raise RunError(f'--train_ways: {_ALGORITHM.value} adapts a model of '
                   '--ways outputs; only fed_protonet trains on other ways')
  train, test = (episodes.EpisodeSampler(
      client_data, ways=ways, shots=shots, query_shots=query_shots,
      seed=_SEED.value)
                 for client_data, ways, shots, query_shots in (
                     (task.train, _TRAIN_WAYS.value or _WAYS.value,
                      _TRAIN_SHOTS.value or _SHOTS.value,
                      _QUERY_SHOTS.value or _SHOTS.value),
                     (task.test, _WAYS.value, _SHOTS.value,
                      _EVAL_QUERY_SHOTS.value)))
  # A client too small for an episode is refused now, before any output.
  train.pool(train.client_ids[0])
  test.pool(test.client_ids[0])
  return train, test


def _write_client_metrics(output_dir: str, client_ids, results) -> None:
  """The latest evaluation of each held-out client, to CLIENTS_JSON."""
  metrics = {
      str(cid): {stage: {k: float(v) for k, v in values.items()}
                 for stage, values in result.items()}
      for cid, result in zip(client_ids, results)}
  training_loop.write_json(metrics, os.path.join(output_dir, CLIENTS_JSON))


def build_round_metrics(process, num_clients: int, clients: dict):
  """Round -> its client counts, bytes moved and privacy spent.

  Bytes are measured from the tensors: the broadcast model's, and what a
  client's update encodes to (`fedmeta.aggregation.update_bytes`).
  """
  weights = process.get_model_weights(process.initialize())
  model_bytes = sum(np.asarray(w).nbytes for w in tf.nest.flatten(weights))
  client_bytes = aggregation.update_bytes(
      [tf.TensorSpec(np.shape(w), tf.as_dtype(np.asarray(w).dtype))
       for w in weights.trainable],
      compression_bits=_COMPRESSION_BITS.value, rotation=_ROTATION.value)

  def round_metrics(round_num: int) -> dict:
    sampled, reporting, straggling, poisoners = clients.pop(round_num)
    metrics = {'clients_sampled': sampled, 'clients_reporting': reporting,
               'clients_straggling': straggling,
               'bytes/server_to_client': sampled * model_bytes,
               'bytes/client_to_server': reporting * client_bytes}
    if _DP_NOISE_MULTIPLIER.value is not None:
      metrics['privacy/epsilon'] = privacy.epsilon(
          _DP_NOISE_MULTIPLIER.value, num_clients=num_clients,
          clients_per_round=_CLIENTS_PER_ROUND.value, rounds=round_num,
          target_delta=_DP_TARGET_DELTA.value)
      metrics['privacy/delta'] = _DP_TARGET_DELTA.value
    if poisoners is not None:
      metrics['clients_poisoning'] = poisoners
    return metrics

  return round_metrics


def set_execution_context() -> None:
  """The local C++ runtime, or the TFF workers of --workers."""
  if not _WORKERS.value:
    runtime.set_local_context()
    return
  try:
    runtime.set_remote_context(_WORKERS.value)
  except runtime.WorkerError as e:
    raise RunError(f'--workers: {e}') from e


class DataPoisoning(NamedTuple):
  """The data attack the flags ask for.

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
                   personalize: bool) -> Optional[DataPoisoning]:
  """The data attack of --attack=label_flip or backdoor, or None.

  Raises:
    RunError: For a task or protocol the attack does not apply to.
  """
  attack = _ATTACK.value
  if attack not in DATA_ATTACKS or not _MALICIOUS_FRACTION.value:
    return None
  if samplers:
    raise RunError(f'--attack={attack}: not with --ways (an episode\'s '
                   'labels are a fresh permutation, so flipped or targeted '
                   'labels mean nothing across episodes)')
  label = task.train.element_type_structure['y']
  if label.dtype != tf.int32 or label.shape.rank:
    raise RunError(f'--attack={attack}: task {task.name} has no integer '
                   'class labels')
  num_classes = int(np.shape(task.model_fn().initial_weights[0][-1])[-1])
  attackers = poisoning.attackers(task.train.client_ids,
                                  _MALICIOUS_FRACTION.value, _SEED.value)
  if not attackers:
    raise RunError(f'--malicious_fraction: {_MALICIOUS_FRACTION.value} of '
                   f'the {len(task.train.client_ids)} training clients of '
                   f'task {task.name} rounds to no attacker')
  if attack == 'label_flip':
    return DataPoisoning(
        attackers, lambda cid, dataset: poisoning.flip_labels(
            dataset, num_classes), None, None)
  if personalize:
    raise RunError('--attack=backdoor: its success rate is measured on the '
                   'global model; not with meta-learning or '
                   '--personalization_eval')
  spec = task.train.element_type_structure
  image_shape = (poisoning.image_shape_of(spec) if spec['x'].dtype.is_floating
                 else None)
  if image_shape is None:
    raise RunError(f'--attack=backdoor: task {task.name} has no images for '
                   'a pixel trigger')
  if _BACKDOOR_TARGET.value >= num_classes:
    raise RunError(f'--backdoor_target: {_BACKDOOR_TARGET.value} is not one '
                   f'of task {task.name}\'s {num_classes} classes')
  if min(image_shape) < _TRIGGER_SIZE.value:
    raise RunError(f'--trigger_size: {_TRIGGER_SIZE.value} pixels do not '
                   f'fit task {task.name}\'s {image_shape} images')
  # fedmeta's image tasks scale pixels to [0, 1].
  trigger = poisoning.Trigger(low=0.0, high=1.0, size=_TRIGGER_SIZE.value)

  def transform(cid, dataset):
    return poisoning.backdoor(
        dataset, trigger, target=_BACKDOOR_TARGET.value,
        poison_fraction=_BACKDOOR_FRACTION.value,
        seed=zlib.crc32(f'{_SEED.value}/{cid}'.encode()),
        image_shape=image_shape)

  return DataPoisoning(attackers, transform, trigger, image_shape)


def run_experiment(process_fn=None, name_suffix: str = '') -> str:
  """Runs the experiment the flags describe; returns its output directory.

  Args:
    process_fn: (model, model aggregator) -> the process to run, in place
      of `build_process`'s (a centralized baseline, say).
    name_suffix: Recorded in config.json (a run resumes only with the same)
      and added to the default --experiment_name.
  """
  tf.keras.utils.set_random_seed(_SEED.value)
  task = load_task()
  num_clients = len(task.train.client_ids)
  if _CLIENTS_PER_ROUND.value > num_clients:
    raise RunError(f'--clients_per_round: {_CLIENTS_PER_ROUND.value} is more '
                   f'than the {num_clients} clients of task {task.name}')
  meta = _ALGORITHM.value in algorithms.META_LEARNING
  protonet = _ALGORITHM.value == 'fed_protonet'
  personalize = meta or _PERSONALIZATION_EVAL.value
  train, test = task.train, task.test
  samplers = episode_samplers(task)
  if _EVAL_SUPPORT.value != 'split' and (samplers or not personalize):
    raise RunError('--eval_support: only for personalized evaluation '
                   '(meta-learning or --personalization_eval) without --ways')
  if personalize and not samplers:
    split = support_query_split(task)
    if _EVAL_SUPPORT.value == 'train':
      try:
        test = data.with_training_support(train, test)
      except data.DataError as e:
        raise RunError(f'--eval_support=train: task {task.name}: {e}') from e
    else:
      test = split(test)
    if meta and not _RESAMPLE_SUPPORT.value:
      train = split(train)
  model_aggregator = build_model_aggregator()
  task_name = re.sub(r'[^\w.-]+', '_', _TASK.value)  # tfds:a/b: tfds_a_b
  experiment_name = (_EXPERIMENT_NAME.value or
                     f'{task_name}_{_ALGORITHM.value}{name_suffix}_seed'
                     f'{_SEED.value}')
  config = _key_flags()
  config['task_options'] = _task_options_in_effect()
  if name_suffix:
    config['variant'] = name_suffix
  model_fn = task.embedding_fn if protonet else task.model_fn
  process = (process_fn or build_process)(model_fn(), model_aggregator)
  # After the process: its model draws the seeded initial weights first.
  poison = data_poisoning(task, samplers, personalize)
  output_dir = _output_dir(experiment_name, config)
  set_execution_context()

  if protonet:
    evaluate = algorithms.build_protonet_eval(model_fn(),
                                              distance=_DISTANCE.value)
  elif personalize:
    # Meta-learning is evaluated on held-out clients by adapting to each.
    evaluate = algorithms.build_personalization_eval(
        task.model_fn(), inner_learning_rate=_INNER_LEARNING_RATE.value,
        inner_steps=_EVAL_INNER_STEPS.value or _INNER_STEPS.value,
        learned_rates=_ALGORITHM.value == 'meta_sgd')
  else:
    evaluate = algorithms.build_fed_eval(task.model_fn())
  sample = training_loop.build_uniform_sampler(
      train.client_ids, _CLIENTS_PER_ROUND.value, _SEED.value)

  clients = {}  # Round -> counts of its sampled, reporting, straggling.
  # A batch an episode: a client step each (fed_protonet), or a task each.
  batch_per_episode = protonet or _EPISODES_PER_CLIENT.value > 1
  if batch_per_episode:
    episode_size = samplers[0].ways * (samplers[0].shots
                                       + samplers[0].query_shots)

  def client_datasets(round_num):
    sampled = sample(round_num)
    rng = np.random.default_rng([_SEED.value, round_num, 1])
    reporting = [c for c in sampled if rng.random() >= _DROPOUT_RATE.value]
    datasets, straggling = [], 0
    source = train
    if meta and not samplers and _RESAMPLE_SUPPORT.value:
      source = split(train, round_num)
    for cid in reporting:
      if batch_per_episode:
        dataset = samplers[0].dataset(cid, round_num).batch(episode_size)
        for index in range(1, _EPISODES_PER_CLIENT.value):
          dataset = dataset.concatenate(samplers[0].dataset(
              cid, round_num, index).batch(episode_size))
      else:
        if samplers:
          dataset = samplers[0].dataset(cid, round_num)
        else:
          dataset = source.create_tf_dataset_for_client(cid)
          if poison is not None and cid in poison.attackers:
            dataset = poison.transform(cid, dataset)
        if _MAX_CLIENT_EXAMPLES.value:
          dataset = dataset.take(_MAX_CLIENT_EXAMPLES.value)
        if meta:  # The inner loops see whole support and query sets.
          dataset = dataset.batch(_CLIENT_BATCH_SIZE.value)
        else:
          dataset = task_lib.batch_client_dataset(
              dataset, epochs=_CLIENT_EPOCHS.value,
              batch_size=_CLIENT_BATCH_SIZE.value,
              seed=_SEED.value + round_num)
      if rng.random() < _STRAGGLER_FRACTION.value:
        steps = int(iteration.count(dataset))
        dataset = dataset.take(rng.integers(1, max(steps, 1) + 1))
        straggling += 1
      datasets.append(dataset)
    clients[round_num] = (len(sampled), len(reporting), straggling,
                          None if poison is None else
                          sum(c in poison.attackers for c in reporting))
    return datasets

  round_metrics = build_round_metrics(process, num_clients, clients)
  if samplers:
    test_datasets = [d.batch(256) for d in episodes.evaluation_datasets(
        samplers[1], _EVAL_EPISODES.value,
        test.client_ids[:_EVAL_CLIENTS.value])]
  else:
    test_datasets = [test.create_tf_dataset_for_client(cid).batch(256)
                     for cid in test.client_ids[:_EVAL_CLIENTS.value]]
  if poison is not None and poison.trigger is not None:
    backdoor_datasets = [
        poisoning.triggered_test_set(
            test.create_tf_dataset_for_client(cid), poison.trigger,
            target=_BACKDOOR_TARGET.value,
            image_shape=poison.image_shape).batch(256)
        for cid in test.client_ids[:_EVAL_CLIENTS.value]]

  def evaluation(weights):
    if poison is not None and poison.trigger is not None:
      metrics = evaluate(weights, test_datasets)
      # The global model's accuracy on triggered images labelled with the
      # target is the share it sends to the target: the attack's success.
      triggered = evaluate(weights, backdoor_datasets)
      metrics['backdoor_success_rate'] = next(
          v for k, v in triggered.items() if k.endswith('accuracy'))
      return metrics
    if not personalize or protonet or samplers:
      return evaluate(weights, test_datasets)
    results = evaluate(weights, test_datasets, clients=True)
    _write_client_metrics(output_dir, test.client_ids, results)
    return evaluation_lib.summarize(results)

  training_loop.run(
      process=process,
      client_datasets_fn=client_datasets,
      evaluation_fn=evaluation,
      rounds=_ROUNDS.value,
      eval_every=_EVAL_EVERY.value,
      output_dir=output_dir,
      checkpoint_every=_CHECKPOINT_EVERY.value,
      round_metrics_fn=round_metrics,
      summary_extra={
          'flags': _key_flags(),
          **({'variant': name_suffix} if name_suffix else {}),
          'versions': {'fedmeta': fedmeta.__version__,
                       'tensorflow': tf.__version__,
                       'tensorflow_federated': tff.__version__,
                       'python': platform.python_version()},
      })
  return output_dir


def main(argv, process_fn=None, name_suffix: str = ''):
  """The runner; `run_experiment`'s arguments run another process."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  # The progress line is the console's; library INFO logs (TFF's and
  # TensorFlow's on every checkpoint) only with --verbosity=0 or more.
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel(logging.get_absl_logger().getEffectiveLevel())
  try:
    if _DESCRIBE.value:
      print(data.describe(load_task()))
      return
    output_dir = run_experiment(process_fn, name_suffix)
  except (RunError, data.DataError, partition.PartitionError,
          aggregation.AggregationError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except runtime.WorkerError as e:
    print(f'error: --workers: {e}; rerun the same command to resume from '
          'the last checkpoint', file=sys.stderr)
    sys.exit(1)
  except Exception as e:  # pylint: disable=broad-except
    # A round too small for --byzantine (clients dropped out) fails inside
    # the computation: a grpc.RpcError from TFF's runtime.
    refusal = aggregation.byzantine_refusal(e)
    if refusal is None:
      raise
    print(f'error: --byzantine: {refusal} (clients dropped out); a rerun '
          'meets the same round: run again under another --experiment_name '
          'with a lower --dropout_rate or more --clients_per_round',
          file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print('interrupted; rerun the same command to resume from the last '
          'checkpoint', file=sys.stderr)
    sys.exit(130)
  print(f'Finished. Results in {output_dir}/ (metrics.csv, summary.json, '
        'curves.png, model_weights.npz, tensorboard/, checkpoints/'
        + (f', {CLIENTS_JSON}' if os.path.exists(
            os.path.join(output_dir, CLIENTS_JSON)) else '') + ')')


def run_main():
  """Console-script entry point (`fedmeta-run`)."""
  app.run(main)


if __name__ == '__main__':
  run_main()
