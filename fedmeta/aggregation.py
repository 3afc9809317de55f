"""Model-update aggregators: robust, secure, compressed, private, attacked.

Every function returns a `tff.aggregators` factory that any fedmeta builder
takes as `model_aggregator` (unweighted ones are averaged uniformly):

- `FusedMeanFactory`, the builders' default: TFF's weighted mean, bit for bit,
  with one federated sum a round instead of two.
- Robust statistics: `median_factory` (coordinate-wise median) and
  `trimmed_mean_factory` (Yin et al. 2018, "Byzantine-Robust Distributed
  Learning: Towards Optimal Statistical Rates"); norm clipping and zeroing are
  TFF's own `tff.aggregators.clipping_factory` / `zeroing_factory`.
- Byzantine-robust rules on whole updates: `krum_factory` and
  `multi_krum_factory` (Blanchard et al. 2017, "Machine Learning with
  Adversaries: Byzantine Tolerant Gradient Descent"), `bulyan_factory`
  (El Mhamdi et al. 2018, "The Hidden Vulnerability of Distributed Learning in
  Byzantium"), `geometric_median_factory` (RFA: Pillutla et al. 2022, "Robust
  Aggregation for Federated Learning") and `centered_clip_factory`
  (Karimireddy et al. 2021, "Learning from History for Byzantine Robust
  Optimization"). A round too small for Krum's or Bulyan's f fails at run
  time (`byzantine_refusal` reads the error); `check_byzantine_clients`
  refuses such a round size before a run. Every client counts in these
  rules, also one the client work zero-weighted (no example, or a
  non-finite update), whose update is zeros; the geometric median alone
  weighs clients.
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
  sign-flipped update in place of their own, or, omniscient, one forged from
  all the round's updates: "A Little Is Enough" (Baruch et al. 2019) or inner
  product manipulation (Xie et al. 2020, "Fall of Empires").

`update_bytes` measures what a client sends, from the encoded tensors.
"""

import collections
import logging
import re
from typing import Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
# The encoders TFF's EncodedSumFactory runs, to measure their output.
from tensorflow_model_optimization.python.core.internal import tensor_encoding as te  # pylint: disable=g-direct-tensorflow-import

Factory = Union[tff.aggregators.UnweightedAggregationFactory,
                tff.aggregators.WeightedAggregationFactory]

ATTACKS = ('sign_flip', 'scale', 'alie', 'ipm')
# Attacks that forge one update from all the round's updates.
OMNISCIENT_ATTACKS = ('alie', 'ipm')


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


class FusedMeanFactory(tff.aggregators.MeanFactory):
  """TFF's `MeanFactory` with values and weights summed in one
  `tff.federated_sum`.

  TFF's C++ runtime runs a federated sum as a chain of one accumulate call
  per client, and waits for the chain before it goes on, so `MeanFactory`'s
  two sums (the weighted values, then the weights) cost a round two chains.
  The products, the sums (in client order) and the division are
  `MeanFactory`'s, so the mean is the same bit for bit, and so are the
  process's state and measurement types: a checkpoint of either resumes with
  the other. With other inner sum factories (secure, encoded) it is
  `MeanFactory` itself.
  """

  def create(self, value_type, weight_type):
    reference = super().create(value_type, weight_type)
    if not (type(self._value_sum_factory) is tff.aggregators.SumFactory and
            type(self._weight_sum_factory) is tff.aggregators.SumFactory):
      return reference
    divide = (tf.math.divide_no_nan if self._no_nan_division
              else tf.math.divide)

    @tff.tensorflow.computation
    def weigh(value, weight):
      return (tf.nest.map_structure(lambda x: x * tf.cast(weight, x.dtype),
                                    value), weight)

    @tff.tensorflow.computation
    def mean(value_sum, weight_sum):
      return tf.nest.map_structure(
          lambda x: divide(x, tf.cast(weight_sum, x.dtype)), value_sum)

    @tff.federated_computation(*reference.next.type_signature.parameter)
    def next_fn(state, value, weight):
      sums = tff.federated_sum(tff.federated_map(weigh, (value, weight)))
      # SumFactory's state and measurements are empty: MeanFactory's state
      # passes through unchanged, and its measurements are these.
      return tff.templates.MeasuredProcessOutput(
          state, tff.federated_map(mean, sums),
          tff.federated_value(
              collections.OrderedDict(mean_value=(), mean_weight=()),
              tff.SERVER))

    return tff.templates.AggregationProcess(reference.initialize, next_fn)


class _SampleStatistic:
  """Collects every client's value at the server and reduces it there.

  `statistic(sample)` reduces each tensor's [n, ...] sample over clients
  (axis 0). With `whole`, it sees each client's whole update instead, its
  tensors flattened and concatenated, as rules comparing updates need:
  `statistic(updates, **inputs)` maps the [n, D] updates to a [D] aggregate
  and measurements. `inputs` are the clients' [n] `weights` in a weighted
  factory and, with `history`, `previous`: the last round's [D] aggregate
  (zeros in round 1), which the process state keeps.
  """

  def __init__(self, max_clients: int, statistic, *, whole: bool = False,
               history: bool = False):
    _check(max_clients >= 1, f'max_clients: must be >= 1, got {max_clients}')
    self._sampling = tff.aggregators.UnweightedReservoirSamplingFactory(
        sample_size=max_clients)
    self._statistic = statistic
    self._whole = whole
    self._history = history

  def _process(self, value_type, weight_type=None):
    # A weight is sampled with its client's value, as one structure.
    sampling = self._sampling.create(value_type if weight_type is None else (
        tff.StructWithPythonType([value_type, weight_type], tuple)))
    state_type = value_type if self._history else ()

    @tff.tensorflow.computation(
        sampling.next.type_signature.result.result.member, state_type)
    def reduce(sample, previous):
      if not self._whole:
        return tf.nest.map_structure(self._statistic, sample), ()
      inputs = {}
      if weight_type is not None:
        sample, inputs['weights'] = sample
      if self._history:
        inputs['previous'] = _rows(
            tf.nest.map_structure(lambda t: t[tf.newaxis], previous))[0]
      aggregate, measurements = self._statistic(_rows(sample), **inputs)
      return _unrows(aggregate, sample), measurements

    initialize = sampling.initialize
    if self._history:
      @tff.tensorflow.computation
      def zeros():
        return tff.types.structure_from_tensor_type_tree(
            lambda t: tf.zeros(t.shape, t.dtype), value_type)

      initialize = tff.federated_computation(
          lambda: tff.federated_eval(zeros, tff.SERVER))

    def aggregate(state, sample):
      output = sampling.next(sampling.initialize(), sample)
      reduced = tff.federated_map(reduce, (output.result, state))
      return tff.templates.MeasuredProcessOutput(
          reduced[0] if self._history else state, reduced[0], reduced[1])

    server_state = tff.FederatedType(state_type, tff.SERVER)
    client_value = tff.FederatedType(value_type, tff.CLIENTS)
    if weight_type is None:
      next_fn = tff.federated_computation(aggregate, server_state,
                                          client_value)
    else:
      @tff.federated_computation(server_state, client_value,
                                 tff.FederatedType(weight_type, tff.CLIENTS))
      def next_fn(state, value, weight):
        return aggregate(state, tff.federated_zip((value, weight)))

    return tff.templates.AggregationProcess(initialize, next_fn)


class _SampleStatisticFactory(_SampleStatistic,
                              tff.aggregators.UnweightedAggregationFactory):

  def create(self, value_type):
    return self._process(value_type)


class _WeightedSampleStatisticFactory(
    _SampleStatistic, tff.aggregators.WeightedAggregationFactory):

  def create(self, value_type, weight_type):
    return self._process(value_type, weight_type)


def _rows(sample) -> tf.Tensor:
  """[n, D]: each client's sampled tensors flattened and concatenated."""
  # To [-1, D], D static: [n, -1] cannot be inferred where n is 0.
  return tf.concat([tf.reshape(t, [-1, t.shape[1:].num_elements()])
                    for t in tf.nest.flatten(sample)], axis=1)


def _unrows(row: tf.Tensor, sample):
  """A [D] `row` split back into tensors shaped as one client's `sample`."""
  leaves = tf.nest.flatten(sample)
  parts = tf.split(row, [t.shape[1:].num_elements() for t in leaves])
  return tf.nest.pack_sequence_as(
      sample, [tf.reshape(p, t.shape[1:]) for p, t in zip(parts, leaves)])


def _unless_empty(sample: tf.Tensor, statistic) -> tf.Tensor:
  """`statistic()`, or zeros shaped as one client's value for no client."""
  return tf.cond(tf.shape(sample)[0] > 0, statistic,
                 lambda: tf.zeros(tf.shape(sample)[1:], sample.dtype))


def _median(sample: tf.Tensor) -> tf.Tensor:
  """Coordinate-wise median over clients (axis 0); zeros for no client."""
  n = tf.shape(sample)[0]

  def median():
    ordered = tf.sort(sample, axis=0)
    return (tf.gather(ordered, (n - 1) // 2) + tf.gather(ordered, n // 2)) / 2

  return _unless_empty(sample, median)


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


# n >= factor * f + 3 clients a round against f attackers: Krum scores an
# update by its n - f - 2 nearest others (Blanchard et al.: n > 2f + 2);
# Bulyan's n - 2f Krum selections must leave beta = n - 4f >= 3 values a
# coordinate (El Mhamdi et al.: n >= 4f + 3).
_BYZANTINE_FACTORS = {'krum': 2, 'multi_krum': 2, 'bulyan': 4}
# A failed `tf.debugging.Assert` keeps its message in the error's text: TFF's
# C++ runtime raises a `grpc.RpcError` (StatusCode.INTERNAL) holding
# 'assertion failed: [<message>]', eager TensorFlow an `InvalidArgumentError`.
_REFUSAL = re.compile(rf'(?:{"|".join(_BYZANTINE_FACTORS)}): a round of \d+ '
                      rf'clients [^\]\'"\n]*')


def _round_checks(kind: str, byzantine: int, keep: Optional[int] = None):
  """(fewest clients, message with {} for the round's) a round must meet."""
  factor = _BYZANTINE_FACTORS[kind]
  minimum = factor * byzantine + 3
  checks = [(minimum, f'{kind}: a round of {{}} clients needs n >= {factor}f '
                      f'+ 3 = {minimum} for byzantine f = {byzantine}')]
  if keep is not None and keep > minimum:
    checks.append((keep, f'{kind}: a round of {{}} clients cannot keep '
                         f'{keep}'))
  return checks


def check_byzantine_clients(kind: str, clients: int, byzantine: int, *,
                            keep: Optional[int] = None) -> None:
  """Refuses, before a run, rounds of `clients` clients that the factory of
  `kind` ('krum', 'multi_krum', 'bulyan') with `byzantine` (and `keep`)
  would refuse at run time.

  Raises:
    AggregationError: With the one-line message the run would fail with.
  """
  _check(kind in _BYZANTINE_FACTORS,
         f'kind: must be one of {tuple(_BYZANTINE_FACTORS)}, got {kind!r}')
  for minimum, message in _round_checks(kind, byzantine, keep):
    _check(clients >= minimum, message.format(clients))


def byzantine_refusal(error: BaseException) -> Optional[str]:
  """The one-line message of a round that `krum_factory`,
  `multi_krum_factory` or `bulyan_factory` refused at run time, read from the
  `error` the computation raised (TFF's C++ runtime: a `grpc.RpcError`);
  None for any other error."""
  match = _REFUSAL.search(str(error))
  return match.group() if match else None


def _assert_round(kind: str, n: tf.Tensor, byzantine: int,
                  keep: Optional[int] = None):
  """Run-time assertions of `_round_checks` on a round of `n` clients."""
  return [tf.debugging.Assert(n >= minimum, [tf.strings.format(message, n)])
          for minimum, message in _round_checks(kind, byzantine, keep)]


def _pairwise_squared_distances(updates: tf.Tensor) -> tf.Tensor:
  """[n, n]: the squared L2 distance between every two rows of `updates`."""
  # Row by row: the Gram form ||a||^2 + ||b||^2 - 2ab cancels to rounding
  # noise between the close updates Krum must rank, and broadcasting all
  # pairs at once takes [n, n, D] of memory.
  return tf.map_fn(
      lambda row: tf.reduce_sum(tf.square(updates - row), axis=1), updates,
      parallel_iterations=1)


def _krum_ranking(distances: tf.Tensor, candidates: tf.Tensor,
                  byzantine: int) -> tf.Tensor:
  """The rows of `distances` by Krum score among the r `candidates` (a mask),
  least first, the others last.

  A score sums the squared distances to the r - f - 2 nearest other
  candidates, at least one (as Flower's Krum: only Bulyan's last selections,
  from 2f + 1, have fewer than f + 3). With one, the nearest pair always
  ties; ties go to the least squared distance to all other candidates, so
  that no order of the clients can matter.
  """
  n = tf.shape(distances)[0]
  r = tf.reduce_sum(tf.cast(candidates, tf.int32))
  others = tf.logical_and(candidates[tf.newaxis],
                          tf.not_equal(tf.range(n)[:, tf.newaxis], tf.range(n)))
  nearest = tf.sort(tf.where(others, distances, np.inf), axis=1)

  def total(k):
    return tf.where(candidates, tf.reduce_sum(nearest[:, :k], axis=1), np.inf)

  # Sorted by the tie-break, then stably by the score.
  order = tf.argsort(total(r - 1), stable=True)
  score = total(tf.minimum(tf.maximum(r - byzantine - 2, 1), r - 1))
  return tf.gather(order, tf.argsort(tf.gather(score, order), stable=True))


def _multi_krum(kind: str, max_clients: int, byzantine: int,
                keep: Optional[int]):
  """Multi-Krum, refusing rounds in the name of `kind`."""
  _check(byzantine >= 0, f'byzantine: must be >= 0, got {byzantine}')
  _check(keep is None or keep >= 1, f'keep: must be >= 1, got {keep}')

  def multi_krum(updates):
    n = tf.shape(updates)[0]

    def mean_of_best():
      with tf.control_dependencies(_assert_round(kind, n, byzantine, keep)):
        ranking = _krum_ranking(_pairwise_squared_distances(updates),
                                tf.fill([n], True), byzantine)
      best = ranking[:n - byzantine if keep is None else keep]
      return tf.reduce_mean(tf.gather(updates, best), axis=0)

    return _unless_empty(updates, mean_of_best), ()

  return _SampleStatisticFactory(max_clients, multi_krum, whole=True)


def krum_factory(
    max_clients: int, *, byzantine: int
) -> tff.aggregators.UnweightedAggregationFactory:
  """Krum: of up to `max_clients` whole client updates (all tensors as one
  vector), the one whose squared L2 distances to its n - f - 2 nearest
  others, f = `byzantine`, sum least. A round needs n >= 2f + 3 clients."""
  return _multi_krum('krum', max_clients, byzantine, 1)


def multi_krum_factory(
    max_clients: int, *, byzantine: int, keep: Optional[int] = None
) -> tff.aggregators.UnweightedAggregationFactory:
  """Multi-Krum: the mean of the `keep` (n - f when None) whole updates of
  least Krum score, scored once among all n (as Flower's Krum with
  num_clients_to_keep); `keep` 1 is Krum. A round needs n >= 2f + 3 and
  n >= `keep` clients."""
  return _multi_krum('multi_krum', max_clients, byzantine, keep)


def bulyan_factory(
    max_clients: int, *, byzantine: int
) -> tff.aggregators.UnweightedAggregationFactory:
  """Bulyan: Krum, applied again to the updates not yet selected, selects
  theta = n - 2f of up to `max_clients` whole client updates, f =
  `byzantine`; each coordinate is then the mean of the beta = theta - 2f
  selected values nearest to their median. A round needs n >= 4f + 3."""
  _check(byzantine >= 0, f'byzantine: must be >= 0, got {byzantine}')

  def bulyan(updates):
    n = tf.shape(updates)[0]

    def select_then_trim():
      with tf.control_dependencies(_assert_round('bulyan', n, byzantine)):
        distances = _pairwise_squared_distances(updates)

      def select(i, remaining):
        best = _krum_ranking(distances, remaining, byzantine)[0]
        return i + 1, tf.tensor_scatter_nd_update(remaining, [[best]], [False])

      _, remaining = tf.while_loop(lambda i, _: i < n - 2 * byzantine, select,
                                   (0, tf.fill([n], True)))
      selected = tf.boolean_mask(updates, tf.logical_not(remaining))
      # Per coordinate (a row), the beta values nearest to the median.
      _, nearest = tf.math.top_k(
          -tf.transpose(tf.abs(selected - _median(selected))),
          n - 4 * byzantine)
      return tf.reduce_mean(
          tf.gather(tf.transpose(selected), nearest, batch_dims=1), axis=1)

    return _unless_empty(updates, select_then_trim), ()

  return _SampleStatisticFactory(max_clients, bulyan, whole=True)


def geometric_median_factory(
    max_clients: int, *, max_iterations: int = 4, tolerance: float = 1e-6,
    smoothing: float = 1e-6
) -> tff.aggregators.WeightedAggregationFactory:
  """RFA's geometric median of up to `max_clients` whole client updates w_i,
  weighted by the client weights alpha_i (normalized): the smoothed
  Weiszfeld algorithm for min_v sum_i alpha_i ||v - w_i||.

  From the weighted mean, each iteration sets beta_i = alpha_i /
  max(smoothing, ||v - w_i||) and v = sum_i beta_i w_i / sum_i beta_i, until
  `max_iterations` or an objective that fell by less than `tolerance` of
  itself. Defaults: the paper's smoothing nu = 1e-6, and its authors' code's
  4 iterations and tolerance (github.com/krishnap25/RFA). Measurements hold
  the `iterations` run.
  """
  _check(max_iterations >= 1,
         f'max_iterations: must be >= 1, got {max_iterations}')
  _check(tolerance >= 0, f'tolerance: must be >= 0, got {tolerance}')
  _check(smoothing > 0, f'smoothing: must be > 0, got {smoothing}')

  def weiszfeld(updates, weights):
    alphas = weights / tf.reduce_sum(weights)

    def mean_and_objective(betas):
      v = tf.linalg.matvec(updates, betas / tf.reduce_sum(betas),
                           transpose_a=True)
      distances = tf.norm(updates - v, axis=1)
      return v, distances, tf.reduce_sum(alphas * distances)

    def step(i, unused_v, distances, objective, unused_converged):
      v, distances, new_objective = mean_and_objective(
          alphas / tf.maximum(smoothing, distances))
      return (i + 1, v, distances, new_objective,
              tf.abs(objective - new_objective) < tolerance * new_objective)

    def running(i, *state):
      return tf.logical_and(i < max_iterations, tf.logical_not(state[-1]))

    def run():
      iterations, v, *_ = tf.while_loop(
          running, step, (0, *mean_and_objective(alphas), False))
      return v, iterations

    # Clients the client work gave no weight (empty, non-finite) carry none.
    v, iterations = tf.cond(
        tf.reduce_sum(weights) > 0, run,
        lambda: (tf.zeros(tf.shape(updates)[1:], updates.dtype), 0))
    return v, collections.OrderedDict(iterations=iterations)

  return _WeightedSampleStatisticFactory(max_clients, weiszfeld, whole=True)


def centered_clip_factory(
    max_clients: int, *, radius: float, iterations: int = 1
) -> tff.aggregators.UnweightedAggregationFactory:
  """Centered clipping of up to `max_clients` whole client updates w_i:
  `iterations` times v <- v + (1/n) sum_i clip(w_i - v), clip(z) =
  z min(1, radius / ||z||), from v the last round's aggregate, which the
  state keeps (zeros in round 1, and after a round without clients, which
  returns zeros)."""
  _check(radius > 0, f'radius: must be > 0, got {radius}')
  _check(iterations >= 1, f'iterations: must be >= 1, got {iterations}')

  def centered_clip(updates, previous):
    def step(i, v):
      offsets = updates - v
      shrink = tf.minimum(
          1.0, radius / tf.norm(offsets, axis=1, keepdims=True))
      return i + 1, v + tf.reduce_mean(offsets * shrink, axis=0)

    def clip():
      return tf.while_loop(lambda i, _: i < iterations, step,
                           (0, previous))[1]

    return _unless_empty(updates, clip), ()

  return _SampleStatisticFactory(max_clients, centered_clip, whole=True,
                                 history=True)


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
  the bits of its own update, which no other client shares (as float32, so
  that a float64 update gives one int32 too)."""
  first = tf.reshape(tf.nest.flatten(value)[0], [-1])
  fingerprint = tf.bitcast(tf.cast(tf.reduce_sum(first * tf.cast(
      tf.range(1, tf.size(first) + 1), first.dtype)), tf.float32), tf.int32)
  return tf.stack([tf.constant(seed, tf.int32) + round_num, fingerprint])


class MaliciousClientsFactory(tff.aggregators.WeightedAggregationFactory):
  """Wraps a weighted factory; each client is, with probability `fraction`
  per round, an attacker whose update is replaced by:

  - 'sign_flip': -scale * update;
  - 'scale': scale * update;
  - 'alie' ("A Little Is Enough", Baruch et al. 2019): mu - z * sigma, mu and
    sigma the coordinate-wise mean and standard deviation of all the round's
    n updates, which attackers know; z is `alie_z`, else the paper's z_max =
    Phi^-1((n - s) / n), s = floor(n / 2 + 1) - m, m = round(fraction * n)
    the expected attackers (0 where s >= n, in a round of n <= 2);
  - 'ipm' (inner product manipulation: Xie et al. 2020, "Fall of Empires:
    Breaking Byzantine-tolerant SGD by Inner Product Manipulation"):
    -scale * mu.

  Draws are seeded by `seed`, the round and the client's update, so a run is
  reproducible and resumable. Measurements add `malicious_clients`.
  """

  def __init__(self, inner: Factory, *, fraction: float, attack: str,
               scale: float, seed: int = 0, alie_z: Optional[float] = None):
    _check(0 <= fraction <= 1, f'fraction: must be in [0, 1], got {fraction}')
    _check(attack in ATTACKS, f'attack: must be one of {ATTACKS}, got '
           f'{attack!r}')
    _check(alie_z is None or attack == 'alie',
           f'alie_z: only for attack alie, got attack {attack!r}')
    # With m >= n / 2 expected attackers, z_max is +inf or undefined.
    _check(attack != 'alie' or alie_z is not None or fraction < 0.5,
           f'fraction: must be < 0.5 for alie without alie_z, got {fraction}')
    self._inner = as_weighted(inner)
    self._fraction = fraction
    self._attack = attack
    self._scale = scale
    self._seed = seed
    self._alie_z = alie_z

  def _forger(self, value_type):
    """A function, traced in a federated computation, from the clients'
    updates to the update each would send as an attacker (at CLIENTS)."""

    def times(factor):
      return tff.tensorflow.computation(
          lambda value: tf.nest.map_structure(
              lambda v: v * tf.cast(factor, v.dtype), value), value_type)

    if self._attack not in OMNISCIENT_ATTACKS:
      scaled = times(-self._scale if self._attack == 'sign_flip'
                     else self._scale)
      return lambda value: tff.federated_map(scaled, value)
    if self._attack == 'ipm':
      negated = times(-self._scale)
      return lambda value: tff.federated_broadcast(
          tff.federated_map(negated, tff.federated_mean(value)))

    @tff.tensorflow.computation(value_type, value_type)
    def squared_deviation(value, mean):
      return tf.nest.map_structure(lambda v, m: tf.square(v - m), value, mean)

    @tff.tensorflow.computation(value_type, value_type, np.int32)
    def little_is_enough(mean, variance, clients):
      z = self._alie_z
      if z is None:
        # s: the correct clients the attackers need on their side. Where
        # that is all of them (n <= 2, no attacker expected), z_max is -inf:
        # send the mean.
        n = tf.cast(clients, tf.float64)
        s = tf.floor(n / 2 + 1) - tf.round(self._fraction * n)
        z = tf.where(s < n, tf.math.ndtri((n - s) / n), 0.0)
      return tf.nest.map_structure(
          lambda mu, var: mu - tf.cast(z, mu.dtype) * tf.sqrt(var), mean,
          variance)

    def forge(value):
      # Two passes: E[(x - mu)^2] keeps the precision E[x^2] - mu^2 loses.
      mean = tff.federated_mean(value)
      variance = tff.federated_mean(tff.federated_map(
          squared_deviation, (value, tff.federated_broadcast(mean))))
      return tff.federated_broadcast(tff.federated_map(little_is_enough, (
          mean, variance,
          tff.federated_sum(tff.federated_value(1, tff.CLIENTS)))))

    return forge

  def create(self, value_type, weight_type):
    inner = self._inner.create(value_type, weight_type)
    state_type = collections.OrderedDict(
        round=np.int32, inner=inner.initialize.type_signature.result.member)
    forge = self._forger(value_type)

    @tff.federated_computation
    def init_fn():
      return tff.federated_zip(collections.OrderedDict(
          round=tff.federated_value(np.int32(0), tff.SERVER),
          inner=inner.initialize()))

    @tff.tensorflow.computation(value_type, np.int32, value_type)
    def attack(value, round_num, forged):
      draw = tf.random.stateless_uniform(
          [], _attack_seed(self._seed, round_num, value))
      malicious = draw < self._fraction
      attacked = tf.nest.map_structure(
          lambda v, f: tf.where(malicious, f, v), value, forged)
      return attacked, tf.cast(malicious, tf.int32)

    @tff.tensorflow.computation(np.int32)
    def increment(round_num):
      return round_num + 1

    @tff.federated_computation(
        tff.FederatedType(state_type, tff.SERVER),
        tff.FederatedType(value_type, tff.CLIENTS),
        tff.FederatedType(weight_type, tff.CLIENTS))
    def next_fn(state, value, weight):
      attacked, malicious = tff.federated_map(attack, (
          value, tff.federated_broadcast(state.round), forge(value)))
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
