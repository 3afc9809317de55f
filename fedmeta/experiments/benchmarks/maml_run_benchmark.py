r"""Fed MAML through the runner vs the same number of centralized steps.

Wall time of `--rounds` rounds of the Omniglot 5-way 1-shot episodic config
(32 tasks a round, MAML's protocol) run by `fedmeta.experiments.run` in its own
process as a user runs it (evaluation cut to 10 held-out episodes after the
last round), against `--rounds` centralized MAML steps in plain TF on 32
tasks of the same shape (`fed_maml_benchmark.centralized_step_fn`: one graph
over pre-loaded tensors), alternated `--repeats` times. Prints one JSON line
of medians: the runner's rounds' own seconds (metrics.csv), its process's
wall seconds, and the centralized steps' seconds.

  .venv/bin/python -m fedmeta.experiments.benchmarks.maml_run_benchmark --repeats=3

(--repeats is fed_maml_benchmark's flag, whose centralized step this uses.)
"""

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta import experiments
from fedmeta.experiments.benchmarks import fed_maml_benchmark
from fedmeta.experiments.benchmarks import local_runtime
from fedmeta import data

_ROUNDS = flags.DEFINE_integer('rounds', 100, 'Rounds (steps) of each run.',
                               lower_bound=1)
CONFIG = 'experiments/configs/omniglot_episodes_5way_1shot_fed_maml.flags'
TASKS = 32


def runner_once(root: str) -> tuple[float, float]:
  """(the rounds' seconds, the process's wall seconds) of one run."""
  t0 = time.perf_counter()
  subprocess.run(
      [sys.executable, '-m', 'fedmeta.experiments.run', f'--flagfile={CONFIG}',
       f'--rounds={_ROUNDS.value}', f'--eval_every={_ROUNDS.value}',
       f'--checkpoint_every={_ROUNDS.value}', '--eval_episodes=10',
       f'--root_output_dir={root}', '--experiment_name=r',
       *local_runtime.flag_args()],
      cwd=experiments.REPO, check=True, stdout=subprocess.DEVNULL)
  wall = time.perf_counter() - t0
  with open(os.path.join(root, 'r', 'metrics.csv')) as f:
    rounds = sum(float(r['round_seconds']) for r in csv.DictReader(f))
  return rounds, wall


def centralized_steps():
  """A function running `--rounds` centralized MAML steps on 32 tasks."""
  task = data.load('omniglot', split='maml_shuffled', clients_by='pools',
                   rotations=True, norm='batch')
  sampler = data.EpisodeSampler(task.train, ways=5, shots=1, query_shots=1)
  ids = task.train.client_ids
  episodes = [sampler.episode(ids[t % len(ids)], 1, t) for t in range(TASKS)]
  stack = lambda key, support: np.stack(
      [e[key][e['support'] == support] for e in episodes])
  step = fed_maml_benchmark.centralized_step_fn(
      task.model_fn(), stack('x', True), stack('y', True), stack('x', False),
      stack('y', False))
  step()  # Warm-up, untimed.

  def run():
    t0 = time.perf_counter()
    for _ in range(_ROUNDS.value):
      step()
    return time.perf_counter() - t0
  return run


def main(argv):
  del argv
  central = centralized_steps()
  runs, steps = [], []
  for _ in range(flags.FLAGS.repeats):  # Alternated: noise hits both.
    runs.append(runner_once(tempfile.mkdtemp()))
    steps.append(central())
  rounds = statistics.median(r for r, _ in runs)
  wall = statistics.median(w for _, w in runs)
  centralized = statistics.median(steps)
  print(json.dumps({
      'benchmark': 'maml_omniglot_run', 'rounds': _ROUNDS.value,
      'tasks_per_round': TASKS,
      'intra_op_threads': local_runtime.INTRA_OP_THREADS.value,
      'repeats': flags.FLAGS.repeats,
      'median_seconds': {'runner_rounds': round(rounds, 2),
                         'runner_wall': round(wall, 2),
                         'centralized_steps': round(centralized, 2)},
      'runner_rounds_over_centralized': round(rounds / centralized, 3),
      'runner_wall_over_centralized': round(wall / centralized, 3)}))


if __name__ == '__main__':
  app.run(main)
