r"""pFedHN's round with the upload in round slots against one row a client.

The femnist_pfedhn study's shape: 105 clients (embeddings), pFedHN's LeNet
target (90,242 weights) and hypernetwork (four hidden layers of 100), 10
clients a round, each with 140 random 28x28 images of 62 classes, 2 epochs
of batch 20. `clients_per_round=10` uploads 10 rows a client; without it
each client sends num_clients = 105. Rounds of the two are interleaved in
one process and the medians compared. Prints one JSON line.

  .venv/bin/python -m fedmeta.experiments.benchmarks.pfedhn_benchmark --repeats=5
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
from fedmeta import models
from fedmeta.algorithms import pfedhn
from fedmeta.data import femnist

import tensorflow as tf  # pylint: disable=g-bad-import-order

_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed rounds per layout.')
NUM_CLIENTS, CLIENTS_PER_ROUND, EXAMPLES = 105, 10, 140


def client_datasets(seed: int) -> list:
  rng = np.random.default_rng(seed)
  return [tf.data.Dataset.from_tensor_slices({
      'x': rng.random((EXAMPLES, 28, 28, 1), np.float32),
      'y': rng.integers(0, femnist.NUM_CLASSES, EXAMPLES).astype(np.int32),
  }).repeat(2).batch(20) for _ in range(CLIENTS_PER_ROUND)]


def main(argv):
  del argv
  runtime.set_local_context()
  model_fn = femnist.lenet_model_fn()  # A FunctionalModel.
  weights = sum(int(np.prod(w.shape)) for w in
                models.initial_weights(model_fn).trainable)
  layouts = {'slots': CLIENTS_PER_ROUND, 'rows_per_client': None}
  processes = {name: pfedhn.build_pfedhn(
      model_fn, num_clients=NUM_CLIENTS, clients_per_round=slots)
               for name, slots in layouts.items()}
  states = {name: p.initialize() for name, p in processes.items()}
  keys = [np.int32(k) for k in range(0, NUM_CLIENTS, 11)][:CLIENTS_PER_ROUND]
  datasets = client_datasets(0)
  for name, process in processes.items():  # Traces each.
    states[name] = process.next(states[name], keys, datasets).state
  seconds = {name: [] for name in processes}
  for _ in range(_REPEATS.value):
    for name, process in processes.items():
      start = time.perf_counter()
      states[name] = process.next(states[name], keys, datasets).state
      seconds[name].append(time.perf_counter() - start)
  medians = {name: round(statistics.median(s), 4)
             for name, s in seconds.items()}
  rows = {name: slots or NUM_CLIENTS for name, slots in layouts.items()}
  print(json.dumps({
      'benchmark': 'pfedhn_round', 'num_clients': NUM_CLIENTS,
      'clients_per_round': CLIENTS_PER_ROUND, 'target_weights': weights,
      'repeats': _REPEATS.value, 'median_seconds': medians,
      'upload_mb_per_client': {
          name: round(r * weights * 4 / 1e6, 2) for name, r in rows.items()},
      'rows_per_client_over_slots': round(
          medians['rows_per_client'] / medians['slots'], 2)}))


if __name__ == '__main__':
  app.run(main)
