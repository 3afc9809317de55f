"""One model aggregator from a typed description: defence, privacy, secure
sum, compression and simulated attackers composed the one way they combine.

`build_model_aggregator(AggregatorConfig(...))` is what the runner's
aggregation flags describe; each field has its flag's name, and each error
names the field it is about. The factories themselves are in
`fedmeta.aggregation`.
"""

import dataclasses
from typing import Optional

import tensorflow_federated as tff

from fedmeta import aggregation

KINDS = ('mean', 'clip', 'zeroing', 'median', 'trimmed_mean', 'krum',
         'multi_krum', 'bulyan', 'geometric_median', 'centered_clip')
# Kinds assuming `byzantine` attackers.
BYZANTINE_RULES = ('krum', 'multi_krum', 'bulyan')
# Kinds that see every update in the clear, at the server.
STATISTICS = ('median', 'trimmed_mean', 'krum', 'multi_krum', 'bulyan',
              'geometric_median', 'centered_clip')
# --attack=ipm's default scale: Xie et al.'s epsilon against Krum and the
# median (sign_flip's 10 would send a scaled reversed mean).
IPM_SCALE = 0.1
SIGN_FLIP_SCALE = 10.0
# Options of one kind each; None means that kind's default (RFA's code runs
# 4 Weiszfeld iterations; Karimireddy et al. one clipping iteration).
_OWN_OPTIONS = {'multi_krum_keep': 'multi_krum',
                'weiszfeld_iterations': 'geometric_median',
                'weiszfeld_tolerance': 'geometric_median',
                'centered_clip_iterations': 'centered_clip'}
DEFAULTS = {'weiszfeld_iterations': 4, 'weiszfeld_tolerance': 1e-6,
                 'centered_clip_iterations': 1}


@dataclasses.dataclass(frozen=True)
class AggregatorConfig:
  """How client updates are combined (fields named as the runner's flags).

  Attributes:
    clients_per_round: The round's clients, which the sample statistics and
      DP's accounting size themselves by.
    aggregation: One of `KINDS`.
    clip_norm: L2 norm of `clip` and `zeroing`; the radius of
      `centered_clip`.
    byzantine: f, the attackers `krum`, `multi_krum` and `bulyan` assume.
    multi_krum_keep: `multi_krum`'s updates averaged; n - f if None.
    weiszfeld_iterations, weiszfeld_tolerance: `geometric_median`'s.
    centered_clip_iterations: `centered_clip`'s.
    trim_fraction: `trimmed_mean`'s share cut from each end.
    secure_aggregation, secure_bound: TFF's secure sum, and its bound.
    compression_bits, rotation: Quantized updates (0: none), Hadamard
      rotation first.
    dp_noise_multiplier, dp_clip: DP-FedAvg (off if the multiplier is None);
      adaptive clipping if `dp_clip` is None.
    malicious_fraction: Probability that a sampled client attacks.
    attack: One of `fedmeta.aggregation.ATTACKS` when `malicious_fraction`
      > 0.
    attack_scale: The attack's factor; 10, or `IPM_SCALE` for ipm, if None.
    alie_z: alie's z; the paper's z_max if None.
    seed: Seeds the attackers' draw.
  """
  clients_per_round: int
  aggregation: str = 'mean'
  clip_norm: Optional[float] = None
  byzantine: Optional[int] = None
  multi_krum_keep: Optional[int] = None
  weiszfeld_iterations: Optional[int] = None
  weiszfeld_tolerance: Optional[float] = None
  centered_clip_iterations: Optional[int] = None
  trim_fraction: float = 0.1
  secure_aggregation: bool = False
  secure_bound: float = 1000.0
  compression_bits: int = 0
  rotation: bool = False
  dp_noise_multiplier: Optional[float] = None
  dp_clip: Optional[float] = None
  malicious_fraction: float = 0.0
  attack: str = 'sign_flip'
  attack_scale: Optional[float] = None
  alie_z: Optional[float] = None
  seed: int = 0


class ConfigError(aggregation.AggregationError):
  """Fields of an `AggregatorConfig` that do not combine.

  Attributes:
    field: The field the error is about, first in the message.
    message: The rest of the message.
    mentions: The other fields the message names (a runner shows them as its
      flags).
  """

  def __init__(self, field: str, message: str, mentions: tuple = ()):
    super().__init__(f'{field}: {message}')
    self.field, self.message, self.mentions = field, message, mentions


def _check(condition: bool, field: str, message: str, *mentions: str) -> None:
  if not condition:
    raise ConfigError(field, message, mentions)


def _option(config: AggregatorConfig, name: str):
  value = getattr(config, name)
  return DEFAULTS.get(name) if value is None else value


def _statistic(config: AggregatorConfig):
  kind, clients = config.aggregation, config.clients_per_round
  byzantine = config.byzantine
  if kind in BYZANTINE_RULES:
    _check(byzantine is not None, 'byzantine', f'aggregation={kind} needs it',
           'aggregation')
    try:
      aggregation.check_byzantine_clients(kind, clients, byzantine,
                                          keep=config.multi_krum_keep)
    except aggregation.AggregationError as e:
      raise ConfigError('clients_per_round', str(e)) from e
  if kind == 'centered_clip':
    _check(bool(config.clip_norm), 'clip_norm',
           'aggregation=centered_clip needs it > 0 (the radius)',
           'aggregation')
  builders = {
      'median': lambda: aggregation.median_factory(clients),
      'trimmed_mean': lambda: aggregation.trimmed_mean_factory(
          clients, config.trim_fraction),
      'krum': lambda: aggregation.krum_factory(clients, byzantine=byzantine),
      'multi_krum': lambda: aggregation.multi_krum_factory(
          clients, byzantine=byzantine, keep=config.multi_krum_keep),
      'bulyan': lambda: aggregation.bulyan_factory(clients,
                                                   byzantine=byzantine),
      'geometric_median': lambda: aggregation.geometric_median_factory(
          clients, max_iterations=_option(config, 'weiszfeld_iterations'),
          tolerance=_option(config, 'weiszfeld_tolerance')),
      'centered_clip': lambda: aggregation.centered_clip_factory(
          clients, radius=config.clip_norm,
          iterations=_option(config, 'centered_clip_iterations')),
  }
  return builders[kind]()


def _inner_mean(config: AggregatorConfig):
  """The factory under any clipping wrapper and the attackers."""
  kind = config.aggregation
  if config.dp_noise_multiplier is not None:
    for field, on in (('aggregation', kind != 'mean'),
                      ('secure_aggregation', config.secure_aggregation),
                      ('compression_bits', config.compression_bits)):
      _check(not on, field, 'not with dp_noise_multiplier, whose '
             'aggregator clips and averages by itself', 'dp_noise_multiplier')
    return aggregation.dp_mean_factory(
        config.dp_noise_multiplier, config.clients_per_round,
        clip=config.dp_clip)
  _check(config.dp_clip is None, 'dp_clip', 'needs dp_noise_multiplier',
         'dp_noise_multiplier')
  if kind in STATISTICS:
    for field, on in (('secure_aggregation', config.secure_aggregation),
                      ('compression_bits', config.compression_bits)):
      _check(not on, field, f'not with aggregation={kind}, which needs '
             'every update in the clear', 'aggregation')
    return _statistic(config)
  if config.secure_aggregation:
    _check(not config.compression_bits, 'compression_bits',
           'not with secure_aggregation', 'secure_aggregation')
    return aggregation.secure_mean_factory(config.secure_bound)
  if config.compression_bits:
    return aggregation.compressed_mean_factory(config.compression_bits,
                                               rotation=config.rotation)
  return aggregation.FusedMeanFactory()


def build_model_aggregator(config: AggregatorConfig):
  """The aggregation factory `config` describes.

  The order of composition, outermost first: the simulated attackers
  (`MaliciousClientsFactory`, whose forged updates go through everything
  below), the clipping or zeroing wrapper, then one of DP's mean, a sample
  statistic, the secure sum, the compressed mean or the weighted mean.

  Raises:
    ConfigError: For fields that do not combine.
  """
  kind = config.aggregation
  _check(kind in KINDS, 'aggregation',
         f'one of {", ".join(KINDS)}, got {kind!r}')
  _check(config.byzantine is None or kind in BYZANTINE_RULES, 'byzantine',
         'needs aggregation=krum, multi_krum or bulyan', 'aggregation')
  for name, owner in _OWN_OPTIONS.items():
    _check(getattr(config, name) is None or kind == owner, name,
           f'needs aggregation={owner}', 'aggregation')
  factory = _inner_mean(config)
  _check(not config.rotation or config.compression_bits, 'rotation',
         'needs compression_bits', 'compression_bits')
  if kind in ('clip', 'zeroing'):
    _check(config.clip_norm is not None, 'clip_norm',
           f'aggregation={kind} needs it', 'aggregation')
    wrap = (tff.aggregators.clipping_factory if kind == 'clip'
            else tff.aggregators.zeroing_factory)
    factory = wrap(config.clip_norm, factory)
  else:
    _check(config.clip_norm is None or kind == 'centered_clip', 'clip_norm',
           'needs aggregation=clip, zeroing or centered_clip', 'aggregation')
  if config.malicious_fraction:
    scale = config.attack_scale
    if scale is None:
      scale = IPM_SCALE if config.attack == 'ipm' else SIGN_FLIP_SCALE
    factory = aggregation.MaliciousClientsFactory(
        factory, fraction=config.malicious_fraction, attack=config.attack,
        scale=scale, seed=config.seed, alie_z=config.alie_z)
  return factory
