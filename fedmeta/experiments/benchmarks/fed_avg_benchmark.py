r"""FedAvg round time: fedmeta vs TFF's build_weighted_fed_avg vs Keras fit.

All three train the same CNN on the same examples (by default 10 clients x
200 FEMNIST images, batch 20, one local epoch, client SGD): a FedAvg round
does 100 gradient steps, as does one Keras epoch over the 2,000 images. Runs are
interleaved in one process and the medians compared, so machine noise hits
all three alike. Prints one JSON line.

  .venv/bin/python -m fedmeta.experiments.benchmarks.fed_avg_benchmark --repeats=7
  # Smaller clients: 50 x 50 images, batch 10.
  .venv/bin/python -m fedmeta.experiments.benchmarks.fed_avg_benchmark --repeats=7 \
      --clients=50 --examples_per_client=50 --batch=10
"""

import json
import os
import statistics
import time

from absl import app
from absl import flags
import numpy as np

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta import algorithms
from fedmeta import models
from fedmeta.data import files
from fedmeta.experiments.benchmarks import local_runtime

import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order

_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed rounds per contender.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Directory holding femnist/femnist_leaf_subset.npz; '
    'default as the runner\'s --data_dir.')
_CLIENTS = flags.DEFINE_integer('clients', 10, 'Clients a round.',
                                lower_bound=1)
_EXAMPLES = flags.DEFINE_integer('examples_per_client', 200,
                                 'Images per client.', lower_bound=1)
_BATCH = flags.DEFINE_integer('batch', 20, 'Batch size, clients and Keras.',
                              lower_bound=1)

LR = 0.05
NUM_CLASSES = 62


def cnn():
  return tf.keras.Sequential([
      tf.keras.layers.Input([28, 28, 1]),
      tf.keras.layers.Conv2D(32, 3, activation='relu'),
      tf.keras.layers.MaxPool2D(),
      tf.keras.layers.Conv2D(64, 3, activation='relu'),
      tf.keras.layers.MaxPool2D(),
      tf.keras.layers.Flatten(),
      tf.keras.layers.Dense(128, activation='relu'),
      tf.keras.layers.Dense(NUM_CLASSES),
  ])


def load_examples():
  path = os.path.join(files.resolve(_DATA_DIR.value, 'femnist'),
                      'femnist_leaf_subset.npz')
  with np.load(path) as f:
    n = _CLIENTS.value * _EXAMPLES.value
    x = (1.0 - f['x'][:n].astype(np.float32) / 255.0)[..., None]
    y = f['y'][:n].astype(np.int32)
  return x, y


def functional_cnn():
  """`cnn` as the TFF functional model both FedAvg processes train."""
  return models.from_keras(
      cnn,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec={'x': tf.TensorSpec([None, 28, 28, 1], tf.float32),
                  'y': tf.TensorSpec([None], tf.int32)},
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy])


def client_datasets(x, y):
  """`--clients` interleaved shards of the examples, batched."""
  n = _CLIENTS.value
  return [tf.data.Dataset.from_tensor_slices(
      {'x': x[i::n], 'y': y[i::n]}).batch(_BATCH.value) for i in range(n)]


def main(argv):
  del argv
  local_runtime.set_local_context()
  x, y = load_examples()
  loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  model = functional_cnn()
  clients = client_datasets(x, y)

  processes = {
      'fedmeta': algorithms.build_fed_avg(
          model, client_optimizer=tff.learning.optimizers.build_sgdm(LR)),
      'tff': tff.learning.algorithms.build_weighted_fed_avg(
          model, tff.learning.optimizers.build_sgdm(LR)),
  }
  states = {name: p.initialize() for name, p in processes.items()}

  def round_fn(name):
    def run():
      states[name] = processes[name].next(states[name], clients).state
    return run

  keras_model = cnn()
  keras_model.compile(tf.keras.optimizers.SGD(LR), loss,
                      metrics=['sparse_categorical_accuracy'])

  def keras_epoch():
    keras_model.fit(x, y, batch_size=_BATCH.value, epochs=1, shuffle=False,
                    verbose=0)

  contenders = {'fedmeta': round_fn('fedmeta'), 'tff': round_fn('tff'),
                'keras': keras_epoch}
  for fn in contenders.values():
    fn()  # Warm-up (tracing) outside the timed loop.
  times = {name: [] for name in contenders}
  for _ in range(_REPEATS.value):
    for name, fn in contenders.items():  # Interleaved: noise hits all alike.
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
  med = {name: statistics.median(t) for name, t in times.items()}
  print(json.dumps({
      'benchmark': 'fed_avg_round',
      'clients': _CLIENTS.value, 'examples_per_client': _EXAMPLES.value,
      'batch': _BATCH.value,
      'intra_op_threads': local_runtime.INTRA_OP_THREADS.value,
      'repeats': _REPEATS.value,
      'median_seconds': {k: round(v, 4) for k, v in med.items()},
      'fedmeta_over_tff': round(med['fedmeta'] / med['tff'], 3),
      'fedmeta_over_keras': round(med['fedmeta'] / med['keras'], 3),
  }))


if __name__ == '__main__':
  app.run(main)
