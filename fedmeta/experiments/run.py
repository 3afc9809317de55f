r"""fedmeta's experiment runner: any task with any algorithm, round by round.

  python -m fedmeta.experiments.run --task=digits --algorithm=fed_avg
  fedmeta-run --flagfile=experiments/configs/demo.flags

Writes <root_output_dir>/<experiment_name>/: config.json (the flags),
metrics.csv (a row per round), tensorboard/, checkpoints/, and at the end
summary.json and curves.png. Rerunning the same command after a crash or
Ctrl-C resumes from the last checkpoint; a larger --rounds continues a
finished run.

This module is wiring: `main` reads the flags once into an
`ExperimentConfig` (`config`), and the algorithm's spec
(`fedmeta.algorithms.ALGORITHMS`) says how it is built (`builders`), what its
clients train on (`client_data`) and how it is evaluated.
"""

import os
import platform
import re
import sys
from typing import Callable, NamedTuple, Optional

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
from fedmeta import data
from fedmeta import privacy
from fedmeta.algorithms import evaluation as evaluation_lib
from fedmeta.algorithms import fed_protonet
from fedmeta.algorithms import specs
from fedmeta.data import episodes
from fedmeta.data import partition
from fedmeta.data import poisoning
from fedmeta.experiments import builders
from fedmeta.experiments import client_data
from fedmeta.experiments import config as config_lib
from fedmeta.experiments import resume
from fedmeta.experiments import training_loop

import numpy as np  # pylint: disable=g-bad-import-order
import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order

RunError = config_lib.RunError
CONFIG_JSON = resume.CONFIG_JSON
# Each held-out client's metrics at the latest personalized evaluation.
CLIENTS_JSON = 'eval_clients.json'

flags.DEFINE_string(
    'task', 'digits', f'Federated task (dataset and model): one of '
    f'{", ".join(data.TASKS)}, or {data.TFDS_PREFIX}<dataset> for a '
    'TensorFlow Datasets classification or text dataset (its options: '
    'fedmeta/data/tfds.py).')
flags.register_validator(
    'task', data.is_task_name,
    message=f'must be one of {", ".join(data.TASKS)} or '
    f'{data.TFDS_PREFIX}<dataset>')
flags.DEFINE_enum('algorithm', 'fed_avg', sorted(algorithms.ALGORITHMS),
                  'Federated algorithm (fedmeta.algorithms.ALGORITHMS).')
flags.DEFINE_string(
    'data_dir', None,
    'Dataset root; default $FEDMETA_DATA_DIR when set, else ../shared/data '
    'beside the repository.')
flags.DEFINE_integer('rounds', 10, 'Number of rounds.', lower_bound=1)
flags.DEFINE_integer(
    'clients_per_round', 10, 'Clients sampled per round, uniformly without '
    'replacement.', lower_bound=1)
flags.DEFINE_integer(
    'num_clients', None, 'Training clients, for tasks without natural '
    'clients (digits, sinusoid, credit with a Dirichlet or IID partition); '
    "default the task's own.", lower_bound=1)
flags.DEFINE_multi_string(
    'task_option', [], "key=value for the task's loader, repeatable, e.g. "
    '--task_option=alpha=0.5 --task_option=beta=0.5 for synthetic; the '
    "options are the keyword arguments of fedmeta/data/<task>.py's load().")
flags.DEFINE_bool(
    'describe', False, "Print the task's clients, examples per client and "
    'label skew, then exit without training.')
flags.DEFINE_integer('client_epochs', 1, 'Local epochs per round.',
                     lower_bound=1)
flags.DEFINE_integer('client_batch_size', 20, 'Local batch size.',
                     lower_bound=1)
flags.DEFINE_float(
    'client_learning_rate', 0.1, 'Client SGD learning rate.', lower_bound=0.0)
flags.DEFINE_enum(
    'server_optimizer', 'sgd', list(builders.SERVER_OPTIMIZERS),
    "Server optimizer; unset, the algorithm's own (SGD(1.0) for fed_avg and "
    'fed_prox, SGD(0.1) for fed_sgd, Adam(0.001) for fed_maml, fo_maml and '
    'meta_sgd and fed_protonet, SGD(1.0) for reptile and Per-FedAvg; '
    'fed_adam, fed_yogi, '
    'fed_adagrad and fed_avgm fix theirs). Given, with '
    '--server_learning_rate (1.0 when unset).')
flags.DEFINE_float(
    'server_learning_rate', builders.DEFAULT_SERVER_LEARNING_RATE,
    "Server learning rate; unset, the "
    "algorithm's own. Alone, it rescales the algorithm's own optimizer "
    '(Adam stays Adam).', lower_bound=0.0)
flags.DEFINE_enum(
    'server_learning_rate_decay', 'none', list(builders.LEARNING_RATE_DECAYS),
    'With --server_learning_rate: its schedule over rounds. linear: round '
    'i + 1 at (1 - i / N) of the rate, N = '
    '--server_learning_rate_decay_rounds, 0 from round N + 1 on '
    "(Reptile's annealed outer step, Nichol et al. 2018); step: times "
    '--server_learning_rate_decay_factor every '
    "--server_learning_rate_decay_rounds rounds (Snell et al. halve ProtoNets' "
    'rate every 2,000 episodes). The schedule is in the server state, so a '
    'resumed run keeps it.')
flags.DEFINE_integer(
    'server_learning_rate_decay_rounds', None, 'With '
    '--server_learning_rate_decay: the rounds of the schedule.',
    lower_bound=1)
flags.DEFINE_float(
    'server_learning_rate_decay_factor', 0.5, 'With '
    '--server_learning_rate_decay=step: the factor of each step.',
    lower_bound=0.0)
flags.DEFINE_float(
    'proximal_strength', 0.01, "FedProx's mu.", lower_bound=0.0)
flags.DEFINE_integer(
    'inner_steps', 1, 'Meta-learning: inner SGD steps on the support set '
    '(Per-FedAvg: local steps tau).', lower_bound=1)
flags.DEFINE_float(
    'inner_learning_rate', 0.01, 'Meta-learning: inner SGD rate (MAML\'s '
    'alpha; the initial rates of Meta-SGD). Per-FedAvg\'s beta is '
    '--client_learning_rate.', lower_bound=0.0)
flags.DEFINE_enum(
    'inner_optimizer', 'sgd', list(specs.INNER_OPTIMIZERS),
    'reptile: the inner optimizer, at --inner_learning_rate, its state fresh '
    "on every task; adam is Nichol et al.'s Omniglot optimizer (beta_1 = 0; "
    'theirs carries its moments across training tasks, a client keeps '
    'none). Held-out tasks adapt with it too.')
flags.DEFINE_integer(
    'inner_batch_size', None, 'reptile: each inner step takes the next '
    'minibatch of at most this many support examples (a fixed split, a '
    'pass over the support set without replacement every ceil(support / '
    'size) steps; class-balanced on episodes where the minibatches divide '
    'the shots); default the whole support set. Adaptation at evaluation '
    'takes the whole support set.', lower_bound=1)
flags.DEFINE_float(
    'support_fraction', 0.5, "Meta-learning: share of each client's examples "
    'in its support set; the rest is its query set.', lower_bound=0.0,
    upper_bound=1.0)
flags.DEFINE_integer(
    'shots', None, 'Meta-learning: K support examples per class (K-shot) '
    'instead of --support_fraction.', lower_bound=1)
flags.DEFINE_bool(
    'resample_support', True, 'Meta-learning with --support_fraction or '
    "--shots: draw each training client's support/query split afresh every "
    "round, as FedMeta samples it; --noresample_support keeps one split per "
    'client. Held-out clients keep one split.')
flags.DEFINE_integer(
    'ways', None, 'Meta-learning on episodes (fedmeta.data.episodes): each '
    'round, every sampled client draws a fresh N-way episode from its own '
    'classes, labels permuted, with --shots support and --query_shots query '
    'examples per class; held-out clients are scored on --eval_episodes such '
    "episodes. Off when unset. Loaders with a ways option get it too.",
    lower_bound=2)
flags.DEFINE_integer(
    'query_shots', None, 'With --ways: query examples per class of a '
    "training episode; default --shots (MAML's protocol).", lower_bound=1)
flags.DEFINE_integer(
    'train_ways', None, 'With --ways: classes of a training episode, where '
    'they differ from the held-out ones (Snell et al. train ProtoNets '
    '60-way and test 5-way); default --ways.', lower_bound=2)
flags.DEFINE_integer(
    'train_shots', None, 'With --ways: support examples per class of a '
    'training episode, where they differ from the held-out ones (Reptile '
    'trains its Omniglot 1-shot model on 10 shots); default --shots.',
    lower_bound=1)
flags.DEFINE_integer(
    'episodes_per_client', 1, 'With --ways: episodes a sampled client draws '
    'each round; fed_protonet takes one client step per episode, the MAML '
    'family and Reptile average their updates over them (tasks of the '
    'meta-batch).',
    lower_bound=1)
flags.DEFINE_enum(
    'distance', 'squared_euclidean', fed_protonet.DISTANCES,
    "fed_protonet: the distance to the prototypes (Snell et al.'s squared "
    'Euclidean, or cosine).')
flags.DEFINE_integer(
    'eval_episodes', 600, 'With --ways: held-out episodes scored at each '
    'evaluation (mean and 95% confidence interval, as the few-shot papers '
    'report).', lower_bound=1)
flags.DEFINE_integer(
    'eval_query_shots', 15, 'With --ways: query examples per class of a '
    'held-out episode.', lower_bound=1)
flags.DEFINE_integer('eval_every', 1, 'Evaluate every this many rounds.',
                     lower_bound=1)
flags.DEFINE_bool(
    'personalization_eval', False, 'Evaluate a FedAvg-family model as '
    'meta-learning ones are: adapt it to each held-out client\'s support '
    'set with --inner_steps SGD steps at --inner_learning_rate and report '
    'query metrics before and after (the FedMeta paper\'s FedAvg(Meta) '
    'baseline).')
flags.DEFINE_enum(
    'eval_support', 'split', ['split', 'train'], 'Where a held-out client '
    "adapts from: 'split', a support set drawn from its test data by "
    "--shots or --support_fraction; 'train', its own training data, scored "
    'on all its test data (tasks whose test clients are training clients: '
    "a room's later weeks, a hospital's test rows).")
flags.DEFINE_integer(
    'eval_inner_steps', None, 'Adaptation steps on each held-out client at '
    'evaluation; default --inner_steps.', lower_bound=1)
flags.DEFINE_integer(
    'eval_clients', None, 'Evaluate on the first this many held-out '
    'clients only (faster; default all).', lower_bound=1)
flags.DEFINE_integer(
    'checkpoint_every', 1, 'Checkpoint the full process state every this '
    'many rounds (and after the last); rerunning the same command resumes '
    'from the last checkpoint.', lower_bound=1)
flags.DEFINE_integer('seed', 0, 'Seed of data, model and sampling.')

# Privacy, security, robustness, compression (fedmeta.aggregation).
flags.DEFINE_enum(
    'aggregation', 'mean', aggregators.KINDS,
    'How client updates are combined: mean (weighted), clip (each update '
    'clipped to L2 norm --clip_norm, then the mean), zeroing (updates with '
    'L2 norm over --clip_norm zeroed), median (coordinate-wise), '
    'trimmed_mean (coordinate-wise, without the --trim_fraction largest and '
    'smallest), krum, multi_krum, bulyan (against --byzantine attackers), '
    'geometric_median (RFA, weighted, by Weiszfeld iterations) or '
    'centered_clip (radius --clip_norm, from the last aggregate); '
    'fedmeta.aggregation has their papers.')
flags.DEFINE_float(
    'clip_norm', None, 'L2 norm for --aggregation=clip or zeroing; the radius '
    'of --aggregation=centered_clip.', lower_bound=0.0)
flags.DEFINE_integer(
    'byzantine', None, 'f, the attackers a round is assumed to hold, for '
    '--aggregation=krum, multi_krum and bulyan (which need rounds of 2f + 3, '
    '2f + 3 and 4f + 3 clients).', lower_bound=0)
flags.DEFINE_integer(
    'multi_krum_keep', None, '--aggregation=multi_krum: the updates of least '
    'Krum score averaged; default n - f.', lower_bound=1)
flags.DEFINE_integer(
    'weiszfeld_iterations', aggregators.DEFAULTS['weiszfeld_iterations'],
    "--aggregation=geometric_median: most Weiszfeld iterations (RFA's code: "
    '4).', lower_bound=1)
flags.DEFINE_float(
    'weiszfeld_tolerance', aggregators.DEFAULTS['weiszfeld_tolerance'],
    '--aggregation=geometric_median: stop when the objective falls by less '
    'than this share of itself.', lower_bound=0.0)
flags.DEFINE_integer(
    'centered_clip_iterations',
    aggregators.DEFAULTS['centered_clip_iterations'],
    '--aggregation=centered_clip: clipping iterations a round.',
    lower_bound=1)
flags.DEFINE_float(
    'trim_fraction', 0.1, 'Share trimmed from each end by '
    '--aggregation=trimmed_mean.', lower_bound=0.0, upper_bound=0.49)
flags.DEFINE_bool(
    'secure_aggregation', False, 'Sum weighted updates with TFF\'s '
    'SecureSumFactory: clipped to +-(--secure_bound), quantized to 32 bits.')
flags.DEFINE_float(
    'secure_bound', 1000.0, 'Bound of a weighted update coordinate under '
    '--secure_aggregation.', lower_bound=0.0)
flags.DEFINE_integer(
    'compression_bits', 0, 'Quantize client updates to this many bits per '
    'coordinate (0: no compression).', lower_bound=0, upper_bound=16)
flags.DEFINE_bool(
    'rotation', False, 'With --compression_bits: a random Hadamard rotation '
    'before quantizing.')
flags.DEFINE_float(
    'dp_noise_multiplier', None, 'DP-FedAvg: Gaussian noise stddev over the '
    'clip norm; clients are then weighted uniformly. Off when unset.',
    lower_bound=0.0)
flags.DEFINE_float(
    'dp_clip', None, 'DP-FedAvg: fixed L2 clip norm of client updates; '
    'adaptive (towards the median norm) when unset.', lower_bound=0.0)
flags.DEFINE_float(
    'dp_target_delta', 1e-5, 'DP-FedAvg: the delta of the reported '
    '(epsilon, delta).', lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float(
    'malicious_fraction', 0.0, 'Simulated attack: each sampled client is an '
    'attacker with this probability per round (update attacks); for the data '
    'attacks, this share of the training clients (a fixed, seeded set) '
    'poisons its data.', lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_enum(
    'attack', 'sign_flip', aggregation.ATTACKS + config_lib.DATA_ATTACKS,
    'What an attacker sends: '
    'sign_flip (-attack_scale * update), scale (attack_scale * update), '
    'alie ("a little is enough": the mean of the round\'s updates minus z '
    'standard deviations) or ipm (inner product manipulation: -attack_scale '
    'times their mean); or what it trains on: label_flip (label y as '
    'classes - 1 - y) or backdoor (a --backdoor_fraction of its examples '
    'with a pixel-pattern trigger and label --backdoor_target; the attack '
    "success rate, the global model's accuracy on triggered test images of "
    'other classes, is reported as eval/backdoor_success_rate).')
flags.DEFINE_integer(
    'backdoor_target', 0, '--attack=backdoor: the label triggered images '
    'get.', lower_bound=0)
flags.DEFINE_float(
    'backdoor_fraction', 0.5, "--attack=backdoor: share of an attacker's "
    'examples poisoned (the rest keep the main task).', lower_bound=0.0,
    upper_bound=1.0)
flags.DEFINE_integer(
    'trigger_size', 3, '--attack=backdoor: side in pixels of the '
    'checkerboard trigger in the bottom-right corner.', lower_bound=1)
flags.DEFINE_float(
    'attack_scale', aggregators.SIGN_FLIP_SCALE,
    "Factor of an attacker's update (sign_flip, scale) or of the mean update "
    '(ipm; unset, 0.1, as Xie et al.).')
flags.DEFINE_float(
    'alie_z', None, "--attack=alie: z; default the paper's z_max for the "
    'round\'s clients and --malicious_fraction.')

# System heterogeneity, simulated on the sampled clients.
flags.DEFINE_float(
    'dropout_rate', 0.0, 'Probability that a sampled client fails to report.',
    lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float(
    'straggler_fraction', 0.0, 'Probability that a sampled client is a '
    'straggler, which runs a uniformly random number of its local steps '
    '(batches), from 1 to all.', lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer(
    'max_client_examples', None, 'Cap on the examples a client trains on '
    'per round (its first ones).', lower_bound=1)
flags.DEFINE_list(
    'workers', [], 'host:port of TFF workers (`fedmeta-worker --port=N`) '
    "across which each round's clients are split; the local C++ runtime "
    'when empty.')
flags.DEFINE_integer(
    'intra_op_threads', None, "Threads one TensorFlow op may use in the local "
    "runtime's worker; TensorFlow's default (one per core) when unset. 1 "
    'runs small clients (few-shot episodes) faster.', lower_bound=1)
# Not '/tmp/fedmeta': a directory named like the package would shadow it for
# any Python started in /tmp.
flags.DEFINE_string('root_output_dir', '/tmp/fedmeta_runs',
                    'Root of experiment outputs.')
flags.DEFINE_string('experiment_name', None, 'Output subdirectory; default '
                    '<task>_<algorithm>_seed<seed>.')




def _runner_flags() -> list:
  return flags.FLAGS.get_key_flags_for_module(sys.modules[__name__])


def config_from_flags() -> config_lib.ExperimentConfig:
  """The parsed runner flags, read once."""
  runner_flags = _runner_flags()
  return config_lib.from_flags(
      {f.name: f.value for f in runner_flags},
      frozenset(f.name for f in runner_flags if f.present),
      {f.name: f.default for f in runner_flags})


def _write_client_metrics(output_dir: str, client_ids, results) -> None:
  """The latest evaluation of each held-out client, to CLIENTS_JSON."""
  metrics = {
      str(cid): {stage: {k: float(v) for k, v in values.items()}
                 for stage, values in result.items()}
      for cid, result in zip(client_ids, results)}
  training_loop.write_json(metrics, os.path.join(output_dir, CLIENTS_JSON))


def _summarize_stages(results: list) -> dict:
  """`evaluation.summarize` of each stage's clients (a client has one)."""
  summary = {}
  for stage in dict.fromkeys(s for r in results for s in r):
    stage_summary = evaluation_lib.summarize(
        [r for r in results if stage in r])
    summary[stage] = {'num_clients': stage_summary['num_clients'],
                      **stage_summary.get(stage, {})}
  return summary


def build_round_metrics(process, num_clients: int, clients: dict,
                        config: config_lib.ExperimentConfig):
  """Round -> its client counts, bytes moved and privacy spent.

  Bytes are measured from the tensors: the model a client receives, and what
  its update encodes to (`fedmeta.aggregation.update_bytes`); with
  per-client models, the update is a row of a [slots, ...] sum, a slot for
  each of the round's clients (its count vector aside).
  """
  per_client = config.spec.per_client_models
  state = process.initialize()
  weights = (process.client_weights(process.get_model_weights(state), 0)
             if per_client else process.get_model_weights(state))
  model_bytes = sum(np.asarray(w).nbytes for w in tf.nest.flatten(weights))
  aggregator = config.aggregator
  client_bytes = aggregation.update_bytes(
      [tf.TensorSpec(np.shape(w), tf.as_dtype(np.asarray(w).dtype))
       for w in weights.trainable],
      compression_bits=aggregator.compression_bits,
      rotation=aggregator.rotation) * (
          process.clients_per_round if per_client else 1)

  def round_metrics(round_num: int) -> dict:
    sampled, reporting, straggling, poisoners = clients.pop(round_num)
    metrics = {'clients_sampled': sampled, 'clients_reporting': reporting,
               'clients_straggling': straggling,
               'bytes/server_to_client': sampled * model_bytes,
               'bytes/client_to_server': reporting * client_bytes}
    if aggregator.dp_noise_multiplier is not None:
      metrics['privacy/epsilon'] = privacy.epsilon(
          aggregator.dp_noise_multiplier, num_clients=num_clients,
          clients_per_round=config.clients_per_round, rounds=round_num,
          target_delta=config.dp_target_delta)
      metrics['privacy/delta'] = config.dp_target_delta
    if poisoners is not None:
      metrics['clients_poisoning'] = poisoners
    return metrics

  return round_metrics


def set_execution_context(config: config_lib.ExperimentConfig) -> None:
  """The local C++ runtime, or the TFF workers of --workers."""
  if not config.workers:
    runtime.set_local_context(intra_op_threads=config.intra_op_threads)
    return
  if config.intra_op_threads is not None:
    raise RunError('--intra_op_threads: sets the local runtime\'s worker; '
                   'give TFF workers TF_NUM_INTRAOP_THREADS in their own '
                   'environment')
  try:
    runtime.set_remote_context(list(config.workers))
  except runtime.WorkerError as e:
    raise RunError(f'--workers: {e}') from e


ProcessFn = Callable[..., tff.learning.templates.LearningProcess]


class Experiment(NamedTuple):
  """An experiment checked and built, before it writes anything.

  Attributes:
    config: Its config.
    task: The task loaded.
    train: Training clients (support-flagged where the split is fixed).
    test: Held-out clients (support-flagged for personalized evaluation).
    samplers: (training, held-out) episode samplers, or None.
    process: The learning process.
    poison: The data attack, or None.
    client_datasets: round -> the reporting clients' datasets.
    clients: Round -> its `client_data.RoundClients`, filled in by
      `client_datasets`.
    experiment_name: Its directory under --root_output_dir.
    recorded_config: What config.json records.
  """
  config: config_lib.ExperimentConfig
  task: data.Task
  train: object
  test: object
  samplers: Optional[tuple]
  process: tff.learning.templates.LearningProcess
  poison: Optional[client_data.DataPoisoning]
  client_datasets: Callable[[int], list]
  clients: dict
  experiment_name: str
  recorded_config: dict


def prepare(config: config_lib.ExperimentConfig,
            process_fn: Optional[ProcessFn] = None, name_suffix: str = '',
            task: Optional[data.Task] = None) -> Experiment:
  """Checks and builds `config`'s experiment (`run_experiment`'s arguments;
  `task`, if given, is the loaded task of `config`).

  Raises:
    RunError, DataError, AggregationError: For flags that do not combine,
      in one line.
  """
  spec = config.spec
  tf.keras.utils.set_random_seed(config.seed)
  task = task or client_data.load_task(config)
  num_clients = len(task.train.client_ids)
  if config.clients_per_round > num_clients:
    raise RunError(f'--clients_per_round: {config.clients_per_round} is more '
                   f'than the {num_clients} clients of task {task.name}')
  train, test = task.train, task.test
  samplers = client_data.episode_samplers(task, config)
  if config.evaluation.support != 'split' and (samplers
                                               or not config.personalize):
    raise RunError('--eval_support: only for personalized evaluation '
                   '(meta-learning or --personalization_eval) without --ways')
  if spec.per_client_models and config.evaluation.personalization:
    raise RunError(f'--personalization_eval: {config.algorithm} evaluates '
                   "each client's own model already")
  fresh_split = None  # A support/query split drawn afresh each round.
  if config.personalize and not samplers:
    split = client_data.support_query_split(task, config)
    if config.evaluation.support == 'train':
      try:
        test = data.with_training_support(train, test)
      except data.DataError as e:
        raise RunError(f'--eval_support=train: task {task.name}: {e}') from e
    else:
      test = split(test)
    if spec.meta_learning:
      if config.support.resample:
        fresh_split = split
      else:
        train = split(train)
  builders.check_inner_optimizer(config)
  model_aggregator = builders.build_model_aggregator(config)
  task_name = re.sub(r'[^\w.-]+', '_', config.task.name)  # tfds:a/b: tfds_a_b
  experiment_name = (config.output.experiment_name or
                     f'{task_name}_{config.algorithm}{name_suffix}_seed'
                     f'{config.seed}')
  model_fn = task.embedding_fn if spec.embedding else task.model_fn
  if process_fn:
    process = process_fn(model_fn(), model_aggregator, config)
  else:
    process = builders.build_process(model_fn(), model_aggregator, config,
                                     num_clients=num_clients)
  # After the process: its model draws the seeded initial weights first.
  poison = client_data.data_poisoning(task, samplers, config)
  sample = training_loop.build_uniform_sampler(
      train.client_ids, config.clients_per_round, config.seed)
  clients = {}
  return Experiment(
      config=config, task=task, train=train, test=test, samplers=samplers,
      process=process, poison=poison,
      client_datasets=client_data.build_client_datasets(
          train, sample, samplers, fresh_split, poison, config, clients),
      clients=clients, experiment_name=experiment_name,
      recorded_config=resume.recorded(config, name_suffix))


def run_experiment(config: config_lib.ExperimentConfig,
                   process_fn: Optional[ProcessFn] = None,
                   name_suffix: str = '') -> str:
  """Runs an experiment; returns its output directory.

  Args:
    config: The experiment (`config_from_flags`).
    process_fn: (model, model aggregator, config) -> the process to run, in
      place of `builders.build_process`'s (a centralized baseline, say).
    name_suffix: Recorded in config.json (a run resumes only with the same)
      and added to the default --experiment_name.
  """
  experiment = prepare(config, process_fn, name_suffix)
  task, test, samplers, process, poison = (
      experiment.task, experiment.test, experiment.samplers,
      experiment.process, experiment.poison)
  spec = config.spec
  output_dir = resume.output_dir(config, experiment.experiment_name,
                                 experiment.recorded_config)
  set_execution_context(config)

  if spec.per_client_models:
    evaluate = builders.build_per_client_evaluation(
        task, config, process, client_data.support_query_split(task, config))
  else:
    evaluate = builders.build_evaluation(task, config)
  round_metrics = build_round_metrics(
      process, len(task.train.client_ids), experiment.clients, config)
  eval_ids = test.client_ids[:config.evaluation.clients]
  if samplers:
    test_datasets = [d.batch(256) for d in episodes.evaluation_datasets(
        samplers[1], config.episodes.eval_episodes, eval_ids)]
  else:
    test_datasets = [test.create_tf_dataset_for_client(cid).batch(256)
                     for cid in eval_ids]
  backdoor = poison is not None and poison.trigger is not None
  if backdoor:
    backdoor_datasets = [
        poisoning.triggered_test_set(
            test.create_tf_dataset_for_client(cid), poison.trigger,
            target=config.attack.backdoor_target,
            image_shape=poison.image_shape).batch(256)
        for cid in eval_ids]

  def evaluation(weights):
    if backdoor:
      metrics = evaluate(weights, test_datasets)
      # The global model's accuracy on triggered images labelled with the
      # target is the share it sends to the target: the attack's success.
      triggered = evaluate(weights, backdoor_datasets)
      metrics['backdoor_success_rate'] = next(
          v for k, v in triggered.items() if k.endswith('accuracy'))
      return metrics
    if spec.per_client_models:
      results = evaluate(weights, eval_ids)
      _write_client_metrics(output_dir, eval_ids, results)
      return _summarize_stages(results)
    if not config.personalize or spec.embedding or samplers:
      return evaluate(weights, test_datasets)
    results = evaluate(weights, test_datasets, clients=True)
    _write_client_metrics(output_dir, test.client_ids, results)
    return evaluation_lib.summarize(results)

  training_loop.run(
      process=process,
      client_datasets_fn=experiment.client_datasets,
      evaluation_fn=evaluation,
      rounds=config.rounds,
      eval_every=config.evaluation.every,
      output_dir=output_dir,
      checkpoint_every=config.output.checkpoint_every,
      round_metrics_fn=round_metrics,
      summary_extra={
          'flags': dict(config.flags),
          **({'variant': name_suffix} if name_suffix else {}),
          'versions': {'fedmeta': fedmeta.__version__,
                       'tensorflow': tf.__version__,
                       'tensorflow_federated': tff.__version__,
                       'python': platform.python_version()},
      })
  return output_dir


def main(argv, process_fn: Optional[ProcessFn] = None,
         name_suffix: str = ''):
  """The runner; `run_experiment`'s arguments run another process."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  # The progress line is the console's; library INFO logs (TFF's and
  # TensorFlow's on every checkpoint) only with --verbosity=0 or more.
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel(logging.get_absl_logger().getEffectiveLevel())
  config = config_from_flags()
  try:
    if config.describe:
      print(data.describe(client_data.load_task(config)))
      return
    output_dir = run_experiment(config, process_fn, name_suffix)
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
