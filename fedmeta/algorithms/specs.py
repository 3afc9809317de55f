"""What a runner needs to know of an algorithm, declared beside its builder.

Each algorithm module holds `SPECS`, {runner name: `AlgorithmSpec`}, and
`fedmeta.algorithms.ALGORITHMS` registers each module's with one line. A
runner (`fedmeta.experiments.run`) builds any registered algorithm from its
spec and a `Hyperparameters`, with no switch on algorithm names.
"""

import dataclasses
import enum
from typing import Callable, Optional

import tensorflow_federated as tff


class Data(enum.Enum):
  """The client datasets an algorithm trains on."""
  # Batched examples, several local epochs (the FedAvg family).
  PLAIN = 'plain'
  # A task a client: whole batches with a boolean `support` per example,
  # from a support/query split or an N-way K-shot episode.
  SUPPORT = 'support'
  # N-way K-shot episodes only, a batch an episode.
  EPISODIC = 'episodic'


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
  """The hyperparameters a runner gives every algorithm; each spec's
  `kwargs` takes the ones its builder has."""
  client_learning_rate: float = 0.1
  inner_learning_rate: float = 0.01
  inner_steps: int = 1
  proximal_strength: float = 0.01
  distance: str = 'squared_euclidean'
  # Tasks a client trains on each round (its batches, with `Data.SUPPORT`).
  episodes_per_client: int = 1
  # One of INNER_OPTIMIZERS, and the support minibatch of an inner step
  # (None: all of it), for specs with `inner_optimizers`.
  inner_optimizer: str = 'sgd'
  inner_batch_size: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class AlgorithmSpec:
  """An algorithm as a runner sees it.

  Attributes:
    builder: `build_<name>(model_fn, *, ...)`, taking `model_aggregator` and,
      unless `server_optimizer` is None, `server_optimizer`.
    kwargs: `Hyperparameters` -> the builder's other keyword arguments.
    data: The client datasets it trains on.
    server_optimizer: The kind ('sgd', 'adam') of the builder's default
      server optimizer, which a new learning rate alone keeps; None where the
      builder fixes its optimizer and takes only `server_learning_rate`.
    embedding: Trains the task's embedding network, evaluated by class
      prototypes of held-out episodes without adaptation (else the task's
      model, adapted to each held-out client when `data` is not PLAIN).
    learned_rates: The trained weights carry per-parameter inner rates
      after the model's (Meta-SGD), which adaptation at evaluation uses.
    tasks_per_client: Takes several tasks (batches) a client a round.
    inner_optimizers: Takes `Hyperparameters.inner_optimizer` and
      `inner_batch_size` (first-order inner loops: Reptile); adaptation at
      evaluation uses the same optimizer.
    per_client_models: Makes each client its own model (pFedHN): the builder
      takes `num_clients` and `seed` instead of `model_aggregator`, and a
      round takes each client's key, its index among the training clients
      (`fedmeta.algorithms.pfedhn.PFedHNProcess`).
  """
  builder: Callable[..., tff.learning.templates.LearningProcess]
  kwargs: Callable[[Hyperparameters], dict]
  data: Data = Data.PLAIN
  server_optimizer: Optional[str] = 'sgd'
  embedding: bool = False
  learned_rates: bool = False
  tasks_per_client: bool = True
  inner_optimizers: bool = False
  per_client_models: bool = False

  @property
  def meta_learning(self) -> bool:
    """Trains on tasks and is evaluated on held-out tasks."""
    return self.data is not Data.PLAIN


# Inner (and adaptation) optimizers by name. 'adam' is Nichol et al.'s
# (2018) Omniglot optimizer, TF1's Adam with beta_1 = 0 (epsilon 1e-8).
INNER_OPTIMIZERS = ('sgd', 'adam')


def inner_optimizer(hyperparameters: Hyperparameters
                    ) -> Optional[tff.learning.optimizers.Optimizer]:
  """`Hyperparameters.inner_optimizer` at the inner learning rate; None for
  plain SGD, which the inner loops run themselves."""
  if hyperparameters.inner_optimizer == 'sgd':
    return None
  if hyperparameters.inner_optimizer == 'adam':
    return tff.learning.optimizers.build_adam(
        hyperparameters.inner_learning_rate, beta_1=0.0, epsilon=1e-8)
  raise ValueError(
      f'inner_optimizer: one of {INNER_OPTIMIZERS}, got '
      f'{hyperparameters.inner_optimizer!r}')


def client_sgd(hyperparameters: Hyperparameters) -> dict:
  """`client_optimizer`: SGD at the client learning rate."""
  return {'client_optimizer': tff.learning.optimizers.build_sgdm(
      hyperparameters.client_learning_rate)}


def inner_loop(hyperparameters: Hyperparameters) -> dict:
  """A MAML-style builder's inner rate and steps, and `task_per_batch`
  where a client trains on several tasks."""
  return {'inner_learning_rate': hyperparameters.inner_learning_rate,
          'inner_steps': hyperparameters.inner_steps,
          'task_per_batch': hyperparameters.episodes_per_client > 1}
