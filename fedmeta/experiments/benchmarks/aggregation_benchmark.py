r"""The robust aggregators' cost per round, as a ratio to the weighted mean.

Each round, 20 clients draw random updates shaped as the FEMNIST CNN's
trainable weights (FedMeta's, 6.6 million floats) inside the computation,
as client work would (passing them in would time their serialization), and
the aggregator combines them: one federated computation a round on TFF's
local C++ runtime. Rounds are interleaved in one process and the medians
compared. Prints one JSON line.

  .venv/bin/python -m fedmeta.experiments.benchmarks.aggregation_benchmark --repeats=5
"""

import json
import statistics
import time

from absl import app
from absl import flags
import numpy as np

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta import aggregation
from fedmeta.data import femnist

import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order

_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed rounds per aggregator.')
_CLIENTS = flags.DEFINE_integer('clients', 20, 'Client updates a round.')
BYZANTINE = 4  # 20% of 20 clients.


def factories(clients: int) -> dict:
  return {
      'mean': tff.aggregators.MeanFactory(),
      'median': aggregation.median_factory(clients),
      'trimmed_mean': aggregation.trimmed_mean_factory(clients, 0.2),
      'krum': aggregation.krum_factory(clients, byzantine=BYZANTINE),
      'multi_krum': aggregation.multi_krum_factory(clients,
                                                   byzantine=BYZANTINE),
      'bulyan': aggregation.bulyan_factory(clients, byzantine=BYZANTINE),
      'geometric_median': aggregation.geometric_median_factory(clients),
      'centered_clip': aggregation.centered_clip_factory(
          clients, radius=1.0, iterations=3),
  }


def round_fn(process, value_type):
  """(state, client seeds, weights) -> the aggregator's next state, on
  updates each client draws from its seed."""
  @tff.tensorflow.computation(np.int32)
  def update(seed):
    return tuple(tf.random.stateless_normal(t.shape, [seed, 0])
                 for t in value_type)

  @tff.tensorflow.computation(value_type)
  def total(aggregate):
    return tf.add_n([tf.reduce_sum(t) for t in aggregate])

  # Returns the aggregate's sum too: the runtime skips what no output needs.
  @tff.federated_computation(process.initialize.type_signature.result,
                             tff.FederatedType(np.int32, tff.CLIENTS),
                             tff.FederatedType(np.float32, tff.CLIENTS))
  def next_round(state, seeds, weights):
    output = process.next(state, tff.federated_map(update, seeds), weights)
    return output.state, tff.federated_map(total, output.result)

  return next_round


def main(argv):
  del argv
  runtime.set_local_context()
  trainable = femnist.model_fn().initial_weights[0]
  value_type = tff.types.to_type(tuple(
      tff.TensorType(np.float32, np.shape(w)) for w in trainable))
  seeds = list(range(_CLIENTS.value))
  weights = [float(w) for w in
             np.random.default_rng(0).integers(10, 100, _CLIENTS.value)]
  rounds, states = {}, {}
  for name, factory in factories(_CLIENTS.value).items():
    process = aggregation.as_weighted(factory).create(
        value_type, tff.TensorType(np.float32))
    rounds[name] = round_fn(process, value_type)
    # Warm-up (tracing), untimed.
    states[name], _ = rounds[name](process.initialize(), seeds, weights)
  times = {name: [] for name in rounds}
  for _ in range(_REPEATS.value):
    for name, next_round in rounds.items():  # Interleaved: noise hits all.
      start = time.perf_counter()
      states[name], _ = next_round(states[name], seeds, weights)
      times[name].append(time.perf_counter() - start)
  median = {name: statistics.median(t) for name, t in times.items()}
  print(json.dumps({
      'benchmark': 'robust_aggregation',
      'clients': _CLIENTS.value,
      'floats_per_update': int(sum(np.size(w) for w in trainable)),
      'byzantine': BYZANTINE,
      'repeats': _REPEATS.value,
      'median_seconds': {k: round(v, 4) for k, v in median.items()},
      'over_mean': {k: round(v / median['mean'], 2)
                    for k, v in median.items()},
  }))


if __name__ == '__main__':
  tf.get_logger().setLevel('ERROR')
  app.run(main)
