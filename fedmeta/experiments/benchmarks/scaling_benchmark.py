r"""FedAvg scaling: round time vs clients per round, memory vs population.

1. Round time for 10, 20, 50, 100 clients per round (FedAvg on the sinusoid
   task's MLP, 20 examples per client, batch 10), rounds interleaved over the
   sizes in one process; seconds per client should be flat (linear rounds).
   Also the least-squares line through the medians: what a client adds to a
   round (marginal) and what a round costs with none (fixed).
2. Peak memory (VmHWM of the driver plus TFF's worker) of a fresh process
   running FedAvg rounds of 10 clients drawn from populations of 100, 1,000
   and 10,000 clients: flat if clients are built lazily, only when sampled.
Prints one JSON line.

  .venv/bin/python -m fedmeta.experiments.benchmarks.scaling_benchmark --repeats=5
"""

import json
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta import algorithms
from fedmeta import data
from fedmeta import experiments
from fedmeta.experiments.benchmarks import local_runtime
from fedmeta.experiments import training_loop

_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed rounds per size.')
_SIZES = flags.DEFINE_list('clients_per_round', ['10', '20', '50', '100'],
                           'Clients per round to time.')
_POPULATIONS = flags.DEFINE_list('populations', ['100', '1000', '10000'],
                                 'Client populations to measure memory on.')
_MEMORY_CHILD = flags.DEFINE_integer(
    'memory_child', None, 'Internal: run the memory measurement for this '
    'population in this process and print its peak KiB.')
_MEMORY_ROUNDS = 5
_CLIENTS_FOR_MEMORY = 10


def _fed_avg(num_clients: int):
  """(process, round function of (state, round, clients per round))."""
  local_runtime.set_local_context()
  task = data.load('sinusoid', num_clients=num_clients)
  process = algorithms.build_fed_avg(task.model_fn())

  def run_round(state, round_num, clients_per_round):
    sample = training_loop.build_uniform_sampler(
        task.train.client_ids, clients_per_round, seed=0)
    datasets = [task.train.create_tf_dataset_for_client(c).batch(10)
                for c in sample(round_num)]
    return process.next(state, datasets).state

  return process, run_round


def _peak_kib(pid) -> int:
  with open(f'/proc/{pid}/status') as f:
    return next(int(line.split()[1]) for line in f
                if line.startswith('VmHWM:'))


def memory_child(population: int) -> None:
  """Runs rounds on `population` clients; prints driver + worker peak KiB."""
  process, run_round = _fed_avg(population)
  state = process.initialize()
  for round_num in range(1, _MEMORY_ROUNDS + 1):
    state = run_round(state, round_num, _CLIENTS_FOR_MEMORY)
  print(sum(_peak_kib(p) for p in ['self', *runtime.live_worker_pids()]))


def main(argv):
  del argv
  if _MEMORY_CHILD.value is not None:
    memory_child(_MEMORY_CHILD.value)
    return
  sizes = [int(s) for s in _SIZES.value]
  process, run_round = _fed_avg(max(sizes))
  state = process.initialize()
  for size in sizes:  # Warm-up: traces and first-call costs, untimed.
    state = run_round(state, 0, size)
  times = {size: [] for size in sizes}
  for repeat in range(1, _REPEATS.value + 1):
    for size in sizes:  # Interleaved: machine noise hits all sizes alike.
      t0 = time.perf_counter()
      state = run_round(state, repeat, size)
      times[size].append(time.perf_counter() - t0)
  per_client = {s: statistics.median(t) / s for s, t in times.items()}
  # Round time = fixed + marginal x clients, least squares over the medians:
  # the marginal cost is what a client adds, the fixed cost the server's.
  marginal, fixed = np.polyfit(
      sizes, [statistics.median(times[s]) for s in sizes], 1)

  memory = {}
  for population in _POPULATIONS.value:
    out = subprocess.run(
        [sys.executable, '-m', __spec__.name, f'--memory_child={population}',
         *local_runtime.flag_args()],
        check=True, capture_output=True, text=True, cwd=experiments.REPO)
    memory[population] = int(out.stdout.split()[-1])
  print(json.dumps({
      'benchmark': 'fed_avg_scaling',
      'intra_op_threads': local_runtime.INTRA_OP_THREADS.value,
      'repeats': _REPEATS.value,
      'median_round_seconds': {s: round(statistics.median(t), 4)
                               for s, t in times.items()},
      'seconds_per_client': {s: round(v, 5) for s, v in per_client.items()},
      'per_client_max_over_min': round(
          max(per_client.values()) / min(per_client.values()), 3),
      'marginal_seconds_per_client': round(float(marginal), 5),
      'fixed_seconds_per_round': round(float(fixed), 4),
      'peak_mib': {p: round(kib / 1024, 1) for p, kib in memory.items()},
      'peak_max_over_min': round(max(memory.values()) / min(memory.values()),
                                 3),
  }))


if __name__ == '__main__':
  app.run(main)
