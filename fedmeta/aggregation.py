"""Model-update aggregators: robust, secure, compressed, private, attacked.

Every function returns a `tff.aggregators` factory that any fedmeta builder
takes as `model_aggregator` (unweighted ones are averaged uniformly):

- Robust statistics: `median_factory` (coordinate-wise median) and
  `trimmed_mean_factory` (Yin et al. 2018, "Byzantine-Robust Distributed
  Learning: Towards Optimal Statistical Rates"); norm clipping and zeroing are
  TFF's own `tff.aggregators.clipping_factory` / `zeroing_factory`.
- `secure_mean_factory`: the weighted mean through
  `tff.aggregators.SecureSumFactory` (Bonawitz et al. 2017), whose values
  are clipped to a bound and quantized to 32-bit integers.
- `compressed_mean_factory`: uniform quantization to b bits (Suresh et al.
  2017, "Distributed Mean Estimation with Limited Communication"), with an
  optional random Hadamard rotation, through TFF's `EncodedSumFactory` and
  `HadamardTransformFactory`.
- `dp_mean_factory`: DP-FedAvg's clipped, noised mean (McMahan et al. 2018,
  "Learning Differentially Private Recurrent Language Models"), fixed or
  adaptive clipping, through `tff.aggregators.DifferentiallyPrivateFactory`.
- `MaliciousClientsFactory`: simulates attackers, who send a scaled or
  sign-flipped update in place of their own.

`update_bytes` measures what a client sends, from the encoded tensors.
"""

import collections
import logging
from typing import Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
# The encoders TFF's EncodedSumFactory runs, to measure their output.
from tensorflow_model_optimization.python.core.internal import tensor_encoding as te  # pylint: disable=g-direct-tensorflow-import

Factory = Union[tff.aggregators.UnweightedAggregationFactory,
                tff.aggregators.WeightedAggregationFactory]

ATTACKS = ('sign_flip', 'scale')


def _not_bitpacking_notice(record: logging.LogRecord) -> bool:
  # TF-MOT's bit packing logs this warning on the root logger each time an
  # encoder is traced: dozens of lines per run, nothing the user can act on.
  # Matched on the text alone: under AutoGraph the record's module is a
  # generated one.
  return not str(record.msg).startswith(
      'This code path can temporarily allocate extra memory. If memory')


logging.getLogger().addFilter(_not_bitpacking_notice)


class AggregationError(ValueError):
  """An aggregator argument out of range."""


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise AggregationError(message)


def as_weighted(factory: Factory) -> tff.aggregators.WeightedAggregationFactory:
  """`factory` as a weighted one; an unweighted one ignores the weights."""
  if isinstance(factory, tff.aggregators.WeightedAggregationFactory):
    return factory
  return tff.aggregators.as_weighted_aggregator(factory)


class _SampleStatisticFactory(tff.aggregators.UnweightedAggregationFactory):
  """Collects every client's value at the server and reduces it there."""

  def __init__(self, max_clients: int, statistic):
    _check(max_clients >= 1, f'max_clients: must be >= 1, got {max_clients}')
    self._sampling = tff.aggregators.UnweightedReservoirSamplingFactory(
        sample_size=max_clients)
    self._statistic = statistic

  def create(self, value_type):
    sampling = self._sampling.create(value_type)

    @tff.tensorflow.computation(sampling.next.type_signature.result.result
                                .member)
    def reduce(sample):
      return tf.nest.map_structure(self._statistic, sample)

    state_type, client_value_type = sampling.next.type_signature.parameter

    @tff.federated_computation(state_type, client_value_type)
    def next_fn(state, value):
      output = sampling.next(state, value)
      return tff.templates.MeasuredProcessOutput(
          output.state, tff.federated_map(reduce, output.result),
          tff.federated_value((), tff.SERVER))

    return tff.templates.AggregationProcess(sampling.initialize, next_fn)


def _median(sample: tf.Tensor) -> tf.Tensor:
  """Coordinate-wise median over clients (axis 0); zeros for no client."""
  n = tf.shape(sample)[0]

  def median():
    ordered = tf.sort(sample, axis=0)
    return (tf.gather(ordered, (n - 1) // 2) + tf.gather(ordered, n // 2)) / 2

  return tf.cond(n > 0, median,
                 lambda: tf.zeros(tf.shape(sample)[1:], sample.dtype))


def median_factory(max_clients: int) -> tff.aggregators.UnweightedAggregationFactory:
  """The coordinate-wise median of up to `max_clients` client updates."""
  return _SampleStatisticFactory(max_clients, _median)


def trimmed_mean_factory(
    max_clients: int, trim_fraction: float
) -> tff.aggregators.UnweightedAggregationFactory:
  """Coordinate-wise mean after dropping the `trim_fraction` largest and
  smallest values of each coordinate (the median where nothing is left)."""
  _check(0 <= trim_fraction < 0.5,
         f'trim_fraction: must be in [0, 0.5), got {trim_fraction}')

  def trimmed_mean(sample):
    n = tf.shape(sample)[0]
    k = tf.cast(tf.floor(trim_fraction * tf.cast(n, tf.float32)), tf.int32)
    kept = tf.sort(sample, axis=0)[k:n - k]
    return tf.cond(n - 2 * k > 0, lambda: tf.reduce_mean(kept, axis=0),
                   lambda: _median(sample))

  return _SampleStatisticFactory(max_clients, trimmed_mean)


def secure_mean_factory(
    bound: float) -> tff.aggregators.WeightedAggregationFactory:
  """The weighted mean, summed with `tff.federated_secure_sum_bitwidth`.

  Clients clip each weighted value to [-bound, bound] and quantize it to 32
  bits, so the mean is exact to (2 * bound / (2**32 - 1)) per client and
  coordinate. Weights (example counts) are summed securely up to 2**20 - 1.
  """
  _check(bound > 0, f'bound: must be > 0, got {bound}')
  return tff.aggregators.MeanFactory(
      value_sum_factory=tff.aggregators.SecureSumFactory(
          float(bound), -float(bound)),
      weight_sum_factory=tff.aggregators.SecureSumFactory(
          float(2**20 - 1), 0.0))


def compressed_mean_factory(
    bits: int, *, rotation: bool = False
) -> tff.aggregators.WeightedAggregationFactory:
  """The weighted mean of updates quantized to `bits` bits per coordinate.

  Each tensor is quantized between its own min and max, with stochastic
  rounding (unbiased); with `rotation`, after a random Hadamard rotation,
  which spreads the coordinates' range and so shrinks the error.
  """
  _check(1 <= bits <= 16, f'bits: must be in [1, 16], got {bits}')
  inner = tff.aggregators.EncodedSumFactory.quantize_above_threshold(
      quantization_bits=bits, threshold=0)
  if rotation:
    inner = tff.aggregators.HadamardTransformFactory(inner)
  return tff.aggregators.MeanFactory(value_sum_factory=inner)


def dp_mean_factory(
    noise_multiplier: float, clients_per_round: int, *,
    clip: Optional[float] = None
) -> tff.aggregators.UnweightedAggregationFactory:
  """DP-FedAvg's mean: clip each update to L2 norm `clip` (adaptive, towards
  the median norm, when None), sum, add N(0, (clip * noise_multiplier)^2) and
  divide by `clients_per_round`.

  Clients are weighted uniformly, as the privacy guarantee requires.
  """
  _check(noise_multiplier >= 0,
         f'noise_multiplier: must be >= 0, got {noise_multiplier}')
  if clip is None:
    return tff.aggregators.DifferentiallyPrivateFactory.gaussian_adaptive(
        noise_multiplier, clients_per_round)
  _check(clip > 0, f'clip: must be > 0, got {clip}')
  return tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
      noise_multiplier, clients_per_round, clip)


def _attack_seed(seed: int, round_num, value) -> tf.Tensor:
  """A stateless seed per (seed, round, client): the client is told apart by
  the bits of its own update, which no other client shares."""
  first = tf.reshape(tf.nest.flatten(value)[0], [-1])
  fingerprint = tf.bitcast(tf.reduce_sum(first * tf.cast(
      tf.range(1, tf.size(first) + 1), first.dtype)), tf.int32)
  return tf.stack([tf.constant(seed, tf.int32) + round_num, fingerprint])


class MaliciousClientsFactory(tff.aggregators.WeightedAggregationFactory):
  """Wraps a weighted factory; each client is, with probability `fraction`
  per round, an attacker that sends `attack(update)`:

  - 'sign_flip': -scale * update;
  - 'scale': scale * update.

  Draws are seeded by `seed`, the round and the client's update, so a run is
  reproducible and resumable. Measurements add `malicious_clients`.
  """

  def __init__(self, inner: Factory, *, fraction: float, attack: str,
               scale: float, seed: int = 0):
    _check(0 <= fraction <= 1, f'fraction: must be in [0, 1], got {fraction}')
    _check(attack in ATTACKS, f'attack: must be one of {ATTACKS}, got '
           f'{attack!r}')
    self._inner = as_weighted(inner)
    self._fraction = fraction
    self._factor = -scale if attack == 'sign_flip' else scale
    self._seed = seed

  def create(self, value_type, weight_type):
    inner = self._inner.create(value_type, weight_type)
    state_type = collections.OrderedDict(
        round=np.int32, inner=inner.initialize.type_signature.result.member)

    @tff.federated_computation
    def init_fn():
      return tff.federated_zip(collections.OrderedDict(
          round=tff.federated_value(np.int32(0), tff.SERVER),
          inner=inner.initialize()))

    @tff.tensorflow.computation(value_type, np.int32)
    def attack(value, round_num):
      draw = tf.random.stateless_uniform(
          [], _attack_seed(self._seed, round_num, value))
      malicious = draw < self._fraction
      factor = tf.where(malicious, self._factor, 1.0)
      attacked = tf.nest.map_structure(
          lambda v: v * tf.cast(factor, v.dtype), value)
      return attacked, tf.cast(malicious, tf.int32)

    @tff.tensorflow.computation(np.int32)
    def increment(round_num):
      return round_num + 1

    @tff.federated_computation(
        tff.FederatedType(state_type, tff.SERVER),
        tff.FederatedType(value_type, tff.CLIENTS),
        tff.FederatedType(weight_type, tff.CLIENTS))
    def next_fn(state, value, weight):
      attacked, malicious = tff.federated_map(
          attack, (value, tff.federated_broadcast(state.round)))
      output = inner.next(state.inner, attacked, weight)
      new_state = tff.federated_zip(collections.OrderedDict(
          round=tff.federated_map(increment, state.round),
          inner=output.state))
      measurements = tff.federated_zip(collections.OrderedDict(
          malicious_clients=tff.federated_sum(malicious),
          inner=output.measurements))
      return tff.templates.MeasuredProcessOutput(
          new_state, output.result, measurements)

    return tff.templates.AggregationProcess(init_fn, next_fn)


def update_bytes(update_specs, *, compression_bits: int = 0,
                 rotation: bool = False) -> int:
  """Bytes one client sends for an update of `update_specs`, measured.

  Without compression, the float tensors and a float32 weight. With it, the
  tensors TFF's uniform-quantization encoder emits (bit-packed values and
  each tensor's min and max), for a tensor padded as the Hadamard rotation
  pads it when `rotation`.

  Args:
    update_specs: A structure of `tf.TensorSpec` (the trainable weights).
    compression_bits: 0, or the quantization bits.
    rotation: Whether a Hadamard rotation precedes quantization.
  """
  total = 4  # The update weight, a float32.
  for spec in tf.nest.flatten(update_specs):
    size = int(np.prod(spec.shape))
    if not compression_bits:
      total += size * spec.dtype.size
      continue
    if rotation:
      size = 1 << max(size - 1, 0).bit_length()
    encoder = te.encoders.as_simple_encoder(
        te.encoders.uniform_quantization(compression_bits),
        tf.TensorSpec([size], tf.float32))
    encoded, _ = encoder.encode(tf.random.stateless_normal([size], [0, size]),
                                encoder.initial_state())
    total += sum(int(np.prod(t.shape)) * t.dtype.size
                 for t in tf.nest.flatten(encoded))
  return total
