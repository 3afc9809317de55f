r"""Federated MAML round time vs a centralized MAML step in plain TF.

Both compute the same second-order MAML update over the same tasks: one
Omniglot N-way episode per client of MAML's 4-block conv net (by default 10
clients, 5-way, 5-shot support and 15 query drawings per class), one inner
SGD step, then Adam on the averaged meta-gradient. The centralized step is
one graph over pre-loaded tensors; the federated round goes through TFF's
runtime with the clients' `tf.data` datasets. Runs are interleaved in one
process and the medians compared. Prints one JSON line.

  .venv/bin/python -m fedmeta.experiments.benchmarks.fed_maml_benchmark --repeats=7
  # MAML's own Omniglot shape: 32 tasks of 5-way 1-shot, 1 query drawing.
  .venv/bin/python -m fedmeta.experiments.benchmarks.fed_maml_benchmark --repeats=7 \
      --clients=32 --shots=1 --query_shots=1 --norm=batch
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
from fedmeta import algorithms
from fedmeta import data

import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order

_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed rounds per contender.')
_CONCURRENCY = flags.DEFINE_integer(
    'concurrency', None, "Client computations TFF's runtime runs at once; "
    'unbounded if unset.')
_INTRA_OP_THREADS = flags.DEFINE_integer(
    'intra_op_threads', None, "Threads a TF op may use in TFF's worker "
    '(`fedmeta.runtime.set_local_context`); TF\'s default if unset.',
    lower_bound=1)
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                'Data root; default ../shared/data.')
_CLIENTS = flags.DEFINE_integer('clients', 10, 'Tasks (clients) a round.',
                                lower_bound=1)
_WAYS = flags.DEFINE_integer('ways', 5, 'Classes per task.', lower_bound=2)
_SHOTS = flags.DEFINE_integer('shots', 5, 'Support drawings per class.',
                              lower_bound=1)
_QUERY_SHOTS = flags.DEFINE_integer('query_shots', 15,
                                    'Query drawings per class.', lower_bound=1)
_NORM = flags.DEFINE_enum('norm', 'group', ['group', 'batch'],
                          "The conv net's normalization (batch: MAML's).")

INNER_LR = 0.4
OUTER_LR = 0.001


def centralized_step_fn(model, sx, sy, qx, qy):
  """One MAML step over stacked tasks, written with plain tapes, as a graph
  (Keras-backed functional models run only in graphs)."""
  graph = tf.Graph()
  with graph.as_default():
    weights = [tf.Variable(w) for w in model.initial_weights[0]]
    trainable = [w.read_value() for w in weights]

    def loss_at(params, x, y):
      return model.loss(model.predict_on_batch((params, ()), x), y)

    with tf.GradientTape() as outer:
      outer.watch(trainable)
      losses = []
      for t in range(len(sx)):
        with tf.GradientTape() as inner:
          inner.watch(trainable)
          support_loss = loss_at(trainable, sx[t], sy[t])
        grads = inner.gradient(support_loss, trainable)
        adapted = [w - INNER_LR * g for w, g in zip(trainable, grads)]
        losses.append(loss_at(adapted, qx[t], qy[t]))
      meta_loss = tf.add_n(losses) / len(sx)
    meta_grads = outer.gradient(meta_loss, trainable)
    train_op = tf.compat.v1.train.AdamOptimizer(OUTER_LR).apply_gradients(
        zip(meta_grads, weights))
    session = tf.compat.v1.Session(graph=graph)
    session.run(tf.compat.v1.global_variables_initializer())
  return lambda: session.run(train_op)


def main(argv):
  del argv
  runtime.set_local_context(
      max_concurrent_computation_calls=_CONCURRENCY.value,
      intra_op_threads=_INTRA_OP_THREADS.value)
  task = data.load('omniglot', data_dir=_DATA_DIR.value, split='maml',
                   ways=_WAYS.value, norm=_NORM.value)
  sampler = data.EpisodeSampler(task.train, ways=_WAYS.value,
                                shots=_SHOTS.value,
                                query_shots=_QUERY_SHOTS.value, seed=0)
  arrays = [sampler.episode(cid, 1)
            for cid in task.train.client_ids[:_CLIENTS.value]]
  clients = [tf.data.Dataset.from_tensor_slices(a).batch(1000)
             for a in arrays]
  stack = lambda key, support: np.stack(
      [a[key][a['support'] == support] for a in arrays])
  model = task.model_fn()
  central_step = centralized_step_fn(
      model, stack('x', True), stack('y', True), stack('x', False),
      stack('y', False))
  process = algorithms.build_fed_maml(
      model, inner_learning_rate=INNER_LR,
      server_optimizer=tff.learning.optimizers.build_adam(OUTER_LR))
  state = {'fed': process.initialize()}

  def fed_round():
    state['fed'] = process.next(state['fed'], clients).state

  contenders = {'fed_maml': fed_round, 'centralized': central_step}
  for fn in contenders.values():
    fn()  # Warm-up (tracing) outside the timed loop.
  times = {name: [] for name in contenders}
  for _ in range(_REPEATS.value):
    for name, fn in contenders.items():
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
  med = {name: statistics.median(t) for name, t in times.items()}
  print(json.dumps({
      'benchmark': 'fed_maml_round',
      'clients': _CLIENTS.value, 'ways': _WAYS.value, 'shots': _SHOTS.value,
      'query_per_class': _QUERY_SHOTS.value, 'norm': _NORM.value,
      'concurrency': _CONCURRENCY.value,
      'intra_op_threads': _INTRA_OP_THREADS.value, 'repeats': _REPEATS.value,
      'median_seconds': {k: round(v, 4) for k, v in med.items()},
      'fed_maml_over_centralized': round(
          med['fed_maml'] / med['centralized'], 3),
  }))


if __name__ == '__main__':
  app.run(main)
