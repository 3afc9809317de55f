"""The runner's experiment as one frozen, typed config, read from its flags
once.

`from_flags(values, given)` maps the runner's flag values (name -> value)
and the names given on the command line to an `ExperimentConfig`; all that
runs after `fedmeta.experiments.run.main` reads the config, never a flag.
Its groups follow the flags' families (`client_`, `server_`, `inner_`,
`eval_`, the aggregation and attack flags).
"""

import dataclasses
import types
from typing import Any, Mapping, Optional

from fedmeta import aggregators
from fedmeta import algorithms
from fedmeta.algorithms import specs

# Data attacks: the attackers' clients train on poisoned examples. The other
# attacks replace an attacker's update (`fedmeta.aggregation.ATTACKS`).
DATA_ATTACKS = ('label_flip', 'backdoor')


class RunError(Exception):
  """A flag or input problem, reported as one line."""


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """--task, --data_dir, --num_clients (None: the task's own) and the
  --task_option key=value texts."""
  name: str
  data_dir: Optional[str]
  num_clients: Optional[int]
  options: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ClientConfig:
  """The --client_* flags, and the simulated system heterogeneity."""
  epochs: int
  batch_size: int
  max_examples: Optional[int]
  dropout_rate: float
  straggler_fraction: float


@dataclasses.dataclass(frozen=True)
class ServerConfig:
  """--server_optimizer and --server_learning_rate, None where not given
  (the algorithm's own), and the rate's --server_learning_rate_decay
  schedule."""
  optimizer: Optional[str]
  learning_rate: Optional[float]
  decay: str = 'none'
  decay_rounds: Optional[int] = None
  decay_factor: float = 0.5


@dataclasses.dataclass(frozen=True)
class SupportConfig:
  """Meta-learning's support sets: --support_fraction or --shots (K per
  class), and --resample_support."""
  fraction: float
  shots: Optional[int]
  resample: bool


@dataclasses.dataclass(frozen=True)
class EpisodeConfig:
  """N-way episodes (off when `ways` is None); the support shots are
  `SupportConfig.shots`, each client's episodes a round
  `Hyperparameters.episodes_per_client`."""
  ways: Optional[int]
  query_shots: Optional[int]
  train_ways: Optional[int]
  train_shots: Optional[int]
  eval_episodes: int
  eval_query_shots: int


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
  """--eval_every, --personalization_eval, --eval_support,
  --eval_inner_steps, --eval_clients."""
  every: int
  personalization: bool
  support: str
  inner_steps: Optional[int]
  clients: Optional[int]


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """The simulated attack: --attack at --malicious_fraction (update attacks
  also reach `ExperimentConfig.aggregator`), and the backdoor's flags."""
  kind: str
  malicious_fraction: float
  backdoor_target: int
  backdoor_fraction: float
  trigger_size: int

  @property
  def poisons_data(self) -> bool:
    return self.kind in DATA_ATTACKS and self.malicious_fraction > 0


@dataclasses.dataclass(frozen=True)
class OutputConfig:
  """--root_output_dir, --experiment_name (None: from the task, algorithm
  and seed), --checkpoint_every."""
  root_dir: str
  experiment_name: Optional[str]
  checkpoint_every: int


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """One run of the runner.

  Attributes:
    given: The flags given (on the command line or in a flag file), which
      the runner's refusals are about.
    flags: Every runner flag's value, as config.json records it.
    defaults: Every runner flag's default (what a run made before a flag
      existed ran as, for most).
  """
  algorithm: str
  rounds: int
  clients_per_round: int
  seed: int
  task: TaskConfig
  client: ClientConfig
  server: ServerConfig
  hyperparameters: specs.Hyperparameters
  support: SupportConfig
  episodes: EpisodeConfig
  evaluation: EvaluationConfig
  aggregator: aggregators.AggregatorConfig
  dp_target_delta: float
  attack: AttackConfig
  output: OutputConfig
  workers: tuple[str, ...]
  intra_op_threads: int | None
  describe: bool
  given: frozenset[str]
  flags: Mapping[str, Any]
  defaults: Mapping[str, Any]

  @property
  def spec(self) -> specs.AlgorithmSpec:
    return algorithms.ALGORITHMS[self.algorithm]

  @property
  def personalize(self) -> bool:
    """Evaluated by adapting to each held-out client (or episode)."""
    return self.spec.meta_learning or self.evaluation.personalization


def _frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
  # Copies of the lists (--task_option, --workers), not the flags' own.
  return types.MappingProxyType(
      {k: list(v) if isinstance(v, list) else v for k, v in values.items()})


def from_flags(values: Mapping[str, Any], given: frozenset[str],
               defaults: Mapping[str, Any]) -> ExperimentConfig:
  """The config of the runner's flag `values` (every flag), of which the
  names in `given` were given; `defaults` are the flags' defaults."""

  def given_or_none(name):
    return values[name] if name in given else None

  attack = AttackConfig(
      kind=values['attack'], malicious_fraction=values['malicious_fraction'],
      backdoor_target=values['backdoor_target'],
      backdoor_fraction=values['backdoor_fraction'],
      trigger_size=values['trigger_size'])
  return ExperimentConfig(
      algorithm=values['algorithm'],
      rounds=values['rounds'],
      clients_per_round=values['clients_per_round'],
      seed=values['seed'],
      task=TaskConfig(name=values['task'], data_dir=values['data_dir'],
                      num_clients=given_or_none('num_clients'),
                      options=tuple(values['task_option'])),
      client=ClientConfig(
          epochs=values['client_epochs'],
          batch_size=values['client_batch_size'],
          max_examples=values['max_client_examples'],
          dropout_rate=values['dropout_rate'],
          straggler_fraction=values['straggler_fraction']),
      server=ServerConfig(
          optimizer=given_or_none('server_optimizer'),
          learning_rate=given_or_none('server_learning_rate'),
          decay=values['server_learning_rate_decay'],
          decay_rounds=values['server_learning_rate_decay_rounds'],
          decay_factor=values['server_learning_rate_decay_factor']),
      hyperparameters=specs.Hyperparameters(
          client_learning_rate=values['client_learning_rate'],
          inner_learning_rate=values['inner_learning_rate'],
          inner_steps=values['inner_steps'],
          proximal_strength=values['proximal_strength'],
          distance=values['distance'],
          episodes_per_client=values['episodes_per_client'],
          inner_optimizer=values['inner_optimizer'],
          inner_batch_size=values['inner_batch_size']),
      support=SupportConfig(fraction=values['support_fraction'],
                            shots=values['shots'],
                            resample=values['resample_support']),
      episodes=EpisodeConfig(
          ways=values['ways'], query_shots=values['query_shots'],
          train_ways=values['train_ways'], train_shots=values['train_shots'],
          eval_episodes=values['eval_episodes'],
          eval_query_shots=values['eval_query_shots']),
      evaluation=EvaluationConfig(
          every=values['eval_every'],
          personalization=values['personalization_eval'],
          support=values['eval_support'],
          inner_steps=values['eval_inner_steps'],
          clients=values['eval_clients']),
      aggregator=aggregators.AggregatorConfig(
          clients_per_round=values['clients_per_round'],
          aggregation=values['aggregation'],
          clip_norm=values['clip_norm'],
          byzantine=values['byzantine'],
          multi_krum_keep=values['multi_krum_keep'],
          weiszfeld_iterations=given_or_none('weiszfeld_iterations'),
          weiszfeld_tolerance=given_or_none('weiszfeld_tolerance'),
          centered_clip_iterations=given_or_none('centered_clip_iterations'),
          trim_fraction=values['trim_fraction'],
          secure_aggregation=values['secure_aggregation'],
          secure_bound=values['secure_bound'],
          compression_bits=values['compression_bits'],
          rotation=values['rotation'],
          dp_noise_multiplier=values['dp_noise_multiplier'],
          dp_clip=values['dp_clip'],
          # A data attacker sends its honest update on poisoned data.
          malicious_fraction=(0.0 if attack.kind in DATA_ATTACKS
                              else attack.malicious_fraction),
          attack=attack.kind,
          attack_scale=given_or_none('attack_scale'),
          alie_z=values['alie_z'],
          seed=values['seed']),
      dp_target_delta=values['dp_target_delta'],
      attack=attack,
      output=OutputConfig(root_dir=values['root_output_dir'],
                          experiment_name=values['experiment_name'],
                          checkpoint_every=values['checkpoint_every']),
      workers=tuple(values['workers']),
      intra_op_threads=values['intra_op_threads'],
      describe=values['describe'],
      given=frozenset(given),
      flags=_frozen(values),
      defaults=_frozen(defaults))
