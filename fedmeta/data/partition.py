"""Partitioners: split a labelled array dataset across simulated clients.

Each returns one index array per client; every example is assigned to exactly
one client, and the result is a pure function of its arguments and seed.
"""

import numpy as np


class PartitionError(ValueError):
  """Arguments cannot produce the requested partition."""


def _check(labels: np.ndarray, num_clients: int) -> None:
  if num_clients < 1:
    raise PartitionError(f'num_clients: must be >= 1, got {num_clients}')
  if len(labels) < num_clients:
    raise PartitionError(
        f'num_clients: {num_clients} clients need at least as many examples, '
        f'got {len(labels)}')


def iid(labels: np.ndarray, num_clients: int, seed: int) -> list[np.ndarray]:
  """Shuffles the examples and deals them into equal-sized clients."""
  _check(labels, num_clients)
  order = np.random.default_rng(seed).permutation(len(labels))
  return [np.sort(part) for part in np.array_split(order, num_clients)]


def dirichlet(labels: np.ndarray, num_clients: int, alpha: float,
              seed: int) -> list[np.ndarray]:
  """Label skew: each class is split over clients in Dirichlet(alpha) shares.

  Hsu et al. 2019, https://arxiv.org/abs/1909.06335. Small alpha gives each
  client few classes; large alpha approaches IID. Redraws (bounded) until
  every client has at least one example.
  """
  _check(labels, num_clients)
  if alpha <= 0:
    raise PartitionError(f'alpha: must be > 0, got {alpha}')
  rng = np.random.default_rng(seed)
  for _ in range(100):
    parts = [[] for _ in range(num_clients)]
    for c in np.unique(labels):
      idx = rng.permutation(np.flatnonzero(labels == c))
      shares = rng.dirichlet(np.full(num_clients, alpha))
      cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
      for client, chunk in enumerate(np.split(idx, cuts)):
        parts[client].extend(chunk)
    if all(parts):
      return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
  raise PartitionError(
      f'alpha: Dirichlet({alpha}) left a client empty in 100 draws; use '
      'fewer clients or a larger alpha')


def shards(labels: np.ndarray, num_clients: int, shards_per_client: int,
           seed: int) -> list[np.ndarray]:
  """McMahan et al. 2017's pathological non-IID split.

  Sorts examples by label, cuts them into `num_clients * shards_per_client`
  contiguous shards and gives each client `shards_per_client` random shards.
  """
  _check(labels, num_clients)
  num_shards = num_clients * shards_per_client
  if shards_per_client < 1 or num_shards > len(labels):
    raise PartitionError(
        f'shards_per_client: {shards_per_client} x {num_clients} clients '
        f'does not fit {len(labels)} examples')
  rng = np.random.default_rng(seed)
  order = np.argsort(labels, kind='stable')
  pieces = np.array_split(order, num_shards)
  assignment = rng.permutation(num_shards).reshape(num_clients, -1)
  return [np.sort(np.concatenate([pieces[s] for s in row]))
          for row in assignment]
