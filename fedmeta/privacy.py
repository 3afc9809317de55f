"""Privacy accounting for DP-FedAvg-style training (user-level DP).

Each round samples clients and releases a Gaussian-noised mean of their
clipped updates (`fedmeta.aggregation.dp_mean_factory`): a subsampled Gaussian
mechanism with the round's noise multiplier z (for adaptive clipping, z is
the effective total, as `tff.aggregators.DifferentiallyPrivateFactory`
documents). `epsilon` composes the rounds with the RDP accountant of
`dp_accounting` (Mironov 2017; Mironov, Talwar and Zhang 2019).
"""

import dp_accounting

SAMPLING = ('fixed', 'poisson')


def dp_event(noise_multiplier: float, *, num_clients: int,
             clients_per_round: int, rounds: int,
             sampling: str = 'fixed') -> dp_accounting.DpEvent:
  """The DP event of `rounds` rounds.

  Args:
    noise_multiplier: z; the noise's stddev over the clip norm.
    num_clients: The population sampled from.
    clients_per_round: Clients per round (the expected number for Poisson).
    rounds: Rounds run.
    sampling: 'fixed' (a uniform draw of exactly `clients_per_round` without
      replacement, as the runner samples; replace-one neighbours) or
      'poisson' (each client with probability clients_per_round /
      num_clients; add-or-remove-one neighbours).

  Raises:
    ValueError: For a sampling not in SAMPLING, or out-of-range counts.
  """
  if sampling not in SAMPLING:
    raise ValueError(f'sampling: must be one of {SAMPLING}, got {sampling!r}')
  if not 0 < clients_per_round <= num_clients:
    raise ValueError(f'clients_per_round: must be in [1, num_clients='
                     f'{num_clients}], got {clients_per_round}')
  # Replace-one neighbours swap one clipped update for another: the sum
  # moves by up to twice the clip norm, so the noise is half as large
  # relative to that sensitivity. Add-or-remove moves it by one clip norm.
  sensitivity = 2 if sampling == 'fixed' else 1
  gaussian = dp_accounting.GaussianDpEvent(noise_multiplier / sensitivity)
  if clients_per_round == num_clients:
    round_event = gaussian
  elif sampling == 'fixed':
    round_event = dp_accounting.SampledWithoutReplacementDpEvent(
        num_clients, clients_per_round, gaussian)
  else:
    round_event = dp_accounting.PoissonSampledDpEvent(
        clients_per_round / num_clients, gaussian)
  return dp_accounting.SelfComposedDpEvent(round_event, rounds)


def epsilon(noise_multiplier: float, *, num_clients: int,
            clients_per_round: int, rounds: int, target_delta: float,
            sampling: str = 'fixed') -> float:
  """The (epsilon, `target_delta`) guarantee after `rounds` rounds.

  Arguments as `dp_event`; infinite for z = 0.
  """
  if noise_multiplier == 0:
    return float('inf')
  relation = (dp_accounting.NeighboringRelation.REPLACE_ONE
              if sampling == 'fixed'
              else dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE)
  accountant = dp_accounting.rdp.RdpAccountant(neighboring_relation=relation)
  accountant.compose(dp_event(
      noise_multiplier, num_clients=num_clients,
      clients_per_round=clients_per_round, rounds=rounds, sampling=sampling))
  return accountant.get_epsilon(target_delta)
