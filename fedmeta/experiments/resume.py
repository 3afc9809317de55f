"""A run's output directory: created with its config.json, or checked so
that a rerun resumes only the run its flags describe."""

import json
import os

from fedmeta import algorithms
from fedmeta.experiments import client_data
from fedmeta.experiments import config as config_lib
from fedmeta.experiments import training_loop

RunError = config_lib.RunError

# config.json records the flags of a run; a rerun resumes only with the same
# ones, except these, which leave the rounds already run as they are.
CONFIG_JSON = 'config.json'
_MAY_CHANGE_ON_RESUME = frozenset({
    'rounds', 'eval_every', 'checkpoint_every', 'data_dir', 'describe',
    'root_output_dir', 'experiment_name', 'workers', 'intra_op_threads'})
# Flags added after runs were made, with the value those runs ran as (a
# fixed support/query split was all there was).
_BEFORE = {'resample_support': False, 'ways': None}
# Flags added since, which change nothing at their defaults.
_ADDED_AT_DEFAULT = (
    'eval_support', 'backdoor_target', 'backdoor_fraction', 'trigger_size',
    'train_ways', 'episodes_per_client', 'distance', 'byzantine',
    'multi_krum_keep', 'weiszfeld_iterations', 'weiszfeld_tolerance',
    'centered_clip_iterations', 'alie_z', 'train_shots',
    'server_learning_rate_decay', 'server_learning_rate_decay_rounds',
    'server_learning_rate_decay_factor', 'inner_optimizer',
    'inner_batch_size')
# Loader defaults that have changed, with the value that runs made before
# the change ran with (config.json had no 'task_options' then).
_TASK_DEFAULTS_BEFORE = {'shakespeare': {'source': 'tiny'}}
# Flags that matter only with episodes.
_EPISODE_FLAGS = ('query_shots', 'eval_episodes', 'eval_query_shots',
                  'train_ways', 'train_shots', 'episodes_per_client')


def recorded(config: config_lib.ExperimentConfig, name_suffix: str) -> dict:
  """What config.json records: every flag, the loader options in effect,
  and the variant (a baseline's suffix), if any."""
  recorded_config = {**config.flags,
                     'task_options': client_data.task_options_in_effect(
                         config)}
  if name_suffix:
    recorded_config['variant'] = name_suffix
  return recorded_config


def output_dir(config: config_lib.ExperimentConfig, experiment_name: str,
               recorded_config: dict) -> str:
  """Creates the run's directory, or checks that a rerun may resume there.

  A rerun resumes when the directory holds this runner's config.json and the
  flags that decide the result are the same; it may ask for more --rounds.

  Args:
    config: The experiment.
    experiment_name: Its directory under --root_output_dir.
    recorded_config: `recorded`'s, written to config.json.

  Raises:
    RunError: Where the directory cannot be written, or holds a run that
      this one must not touch.
  """
  root = config.output.root_dir
  if os.path.exists(root) and not os.path.isdir(root):
    raise RunError(f'--root_output_dir: {root} is a file, not a directory')
  path = os.path.join(root, experiment_name)
  config_path = os.path.join(path, CONFIG_JSON)
  if os.path.exists(config_path):
    _check_resumable(path, config_path, config, recorded_config)
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
    training_loop.write_json(recorded_config, config_path)
  return path


def _ignored_on_resume(name: str, recorded_config: dict) -> bool:
  """Whether flag `name` may differ on resume: it leaves the rounds already
  run as they are, or does nothing for this run."""
  if name in _MAY_CHANGE_ON_RESUME:
    return True
  spec = algorithms.ALGORITHMS[recorded_config['algorithm']]
  if name == 'resample_support':
    return (not spec.meta_learning
            or recorded_config.get('ways') is not None)
  if name in _EPISODE_FLAGS:
    return recorded_config.get('ways') is None
  if name == 'distance':
    return not spec.embedding
  return False


def _check_task_options(path: str, previous: dict,
                        config: config_lib.ExperimentConfig,
                        now: dict) -> None:
  """The loader options in effect must be the run's, however given."""
  if previous.get('task') != config.task.name:
    return  # Refused as a different --task.
  if 'task_options' in previous:
    # Options added to the loader since ran as their defaults do.
    before = {**client_data.task_options_in_effect(config, []),
              **previous['task_options']}
  else:  # Made before config.json recorded them.
    before = client_data.task_options_in_effect(
        config, previous.get('task_option', []),
        _TASK_DEFAULTS_BEFORE.get(config.task.name))
  for key in sorted(set(before) | set(now)):
    if before.get(key) != now.get(key):
      rerun = (f'without --task_option={key}' if before.get(key) is None
               else f'with --task_option={key}={before.get(key)}')
      raise RunError(
          f'--task_option: {key}={before.get(key)} in the run in {path}, '
          f'{key}={now.get(key)} now; rerun {rerun} to resume it, or choose '
          'another --experiment_name')


def _check_resumable(path: str, config_path: str,
                     config: config_lib.ExperimentConfig,
                     recorded_config: dict) -> None:
  try:
    with open(config_path) as f:
      previous = json.load(f)
  except (OSError, ValueError) as e:
    raise RunError(f'--experiment_name: {config_path} is unreadable ({e}); '
                   'choose another name') from e
  _check_task_options(path, previous, config,
                      recorded_config['task_options'])
  before_flags = {**_BEFORE,
                  **{name: config.defaults[name]
                     for name in _ADDED_AT_DEFAULT}}
  for name in sorted(set(recorded_config) | set(previous)):
    if (_ignored_on_resume(name, recorded_config)
        or name in ('task_option', 'task_options')):
      continue
    if name not in previous and name in before_flags:
      # The run was made before the flag existed, and ran as it says.
      before = before_flags[name]
      if recorded_config.get(name) != before:
        value = (f'--no{name}' if before is False else f'--{name}={before}')
        raise RunError(
            f'--{name}: the run in {path} was made before this flag and ran '
            f'as {value}; rerun with {value} to resume it, or choose another '
            '--experiment_name')
    elif recorded_config.get(name) != previous.get(name):
      what = 'the variant' if name == 'variant' else f'--{name}'
      raise RunError(
          f'{what}: {recorded_config.get(name)!r} differs from the '
          f'{previous.get(name)!r} of the run in {path}; rerun with the same '
          'flags to resume it, or choose another --experiment_name')
  done = training_loop.last_checkpoint_round(path)
  if done is not None and done >= config.rounds:
    raise RunError(f'--rounds: the run in {path} has finished {done} rounds; '
                   'ask for more to continue it, or choose another '
                   '--experiment_name')
