r"""FedAvg round time on the local runtime vs on 1 and 2 TFF workers.

The FedAvg benchmark's CNN and FEMNIST clients (`fed_avg_benchmark`), run
through TFF's local C++ runtime and through `fedmeta.runtime`'s remote
context on one and on two `worker_binary` processes started here on
127.0.0.1 (the round's clients split across them). Rounds are interleaved
in one process and the medians compared. Prints one JSON line.

  .venv/bin/python -m fedmeta.experiments.benchmarks.workers_benchmark --repeats=5
"""

import json
import statistics
import time

from absl import app
from absl import flags
import portpicker

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta import algorithms
from fedmeta.experiments.benchmarks import fed_avg_benchmark as fed_avg_bench

import tensorflow_federated as tff  # pylint: disable=g-bad-import-order

# --repeats, --data_dir and the clients' shape are the FedAvg benchmark's
# flags.
FLAGS = flags.FLAGS


def main(argv):
  del argv
  clients = fed_avg_bench.client_datasets(*fed_avg_bench.load_examples())
  process = algorithms.build_fed_avg(
      fed_avg_bench.functional_cnn(), client_optimizer=tff.learning.optimizers.build_sgdm(
          fed_avg_bench.LR))

  addresses = []
  for _ in range(2):
    port = portpicker.pick_unused_port()
    runtime.start_worker(port)
    addresses.append(f'127.0.0.1:{port}')
  runtime.set_local_context()
  contexts = {
      'local': tff.framework.get_context_stack().current,
      'workers_1': runtime.create_remote_context(addresses[:1]),
      'workers_2': runtime.create_remote_context(addresses),
  }
  states = {}
  for name, context in contexts.items():  # Warm-up (tracing), untimed.
    tff.framework.set_default_context(context)
    states[name] = process.next(process.initialize(), clients).state
  times = {name: [] for name in contexts}
  for _ in range(FLAGS.repeats):
    for name, context in contexts.items():  # Interleaved: noise hits all.
      tff.framework.set_default_context(context)
      t0 = time.perf_counter()
      states[name] = process.next(states[name], clients).state
      times[name].append(time.perf_counter() - t0)
  med = {name: statistics.median(t) for name, t in times.items()}
  print(json.dumps({
      'benchmark': 'workers_round',
      'clients': FLAGS.clients,
      'examples_per_client': FLAGS.examples_per_client,
      'repeats': FLAGS.repeats,
      'median_seconds': {k: round(v, 4) for k, v in med.items()},
      'workers_1_over_local': round(med['workers_1'] / med['local'], 3),
      'workers_2_over_workers_1': round(
          med['workers_2'] / med['workers_1'], 3),
  }))


if __name__ == '__main__':
  app.run(main)
