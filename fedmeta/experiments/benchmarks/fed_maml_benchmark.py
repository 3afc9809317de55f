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

import concurrent.futures
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
from fedmeta.algorithms import client_work
from fedmeta.algorithms import local_tf
from fedmeta.data import iteration
from fedmeta.experiments.benchmarks import local_runtime

import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order

_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed rounds per contender.')
_CONCURRENCY = flags.DEFINE_integer(
    'concurrency', None, "Client computations TFF's runtime runs at once; "
    'unbounded if unset.')
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                'Data root; default ../shared/data.')
_CLIENTS = flags.DEFINE_integer('clients', 10, 'Tasks (clients) a round.',
                                lower_bound=1)
_WAYS = flags.DEFINE_integer('ways', 5, 'Classes per task.', lower_bound=2)
_SHOTS = flags.DEFINE_integer('shots', 5, 'Support drawings per class.',
                              lower_bound=1)
_QUERY_SHOTS = flags.DEFINE_integer('query_shots', 15,
                                    'Query drawings per class.', lower_bound=1)
_DECOMPOSE = flags.DEFINE_bool(
    'decompose', False, 'Also time what the federated round is made of: the '
    'centralized step with each task a graph run of its own, one at a time '
    'and 4 at once (per_task_runs_1, _4), and a federated round whose clients '
    'compute nothing (fed_no_compute: a zero update of the same shapes).')
_NORM = flags.DEFINE_enum('norm', 'group', ['group', 'batch'],
                          "The conv net's normalization (batch: MAML's).")

INNER_LR = 0.4
OUTER_LR = 0.001


def _task_meta_loss(model, params, sx, sy, qx, qy):
  """One task's query loss after MAML's inner SGD step from `params`."""
  def loss_at(weights, x, y):
    return model.loss(model.predict_on_batch((weights, ()), x), y)

  with tf.GradientTape() as inner:
    inner.watch(params)
    support_loss = loss_at(params, sx, sy)
  grads = inner.gradient(support_loss, params)
  return loss_at([w - INNER_LR * g for w, g in zip(params, grads)], qx, qy)


def centralized_step_fn(model, sx, sy, qx, qy):
  """One MAML step over stacked tasks, written with plain tapes, as a graph
  (Keras-backed functional models run only in graphs)."""
  graph = tf.Graph()
  with graph.as_default():
    weights = [tf.Variable(w) for w in model.initial_weights[0]]
    trainable = [w.read_value() for w in weights]
    with tf.GradientTape() as outer:
      outer.watch(trainable)
      meta_loss = tf.add_n([
          _task_meta_loss(model, trainable, sx[t], sy[t], qx[t], qy[t])
          for t in range(len(sx))]) / len(sx)
    meta_grads = outer.gradient(meta_loss, trainable)
    train_op = tf.compat.v1.train.AdamOptimizer(OUTER_LR).apply_gradients(
        zip(meta_grads, weights))
    session = tf.compat.v1.Session(graph=graph)
    session.run(tf.compat.v1.global_variables_initializer())
  return lambda: session.run(train_op)


def per_task_step_fn(model, sx, sy, qx, qy, threads: int):
  """The centralized step with each task's meta-gradient a graph run of its
  own, as a runtime that runs each client separately must: `threads` runs at
  once, their mean applied by Adam in one more run. Plain TF, no TFF."""
  graph = tf.Graph()
  with graph.as_default():
    weights = [tf.Variable(w) for w in model.initial_weights[0]]
    trainable = [w.read_value() for w in weights]
    task = [tf.compat.v1.placeholder(tf.as_dtype(a.dtype), a.shape[1:])
            for a in (sx, sy, qx, qy)]
    with tf.GradientTape() as outer:
      outer.watch(trainable)
      meta_loss = _task_meta_loss(model, trainable, *task)
    meta_grads = outer.gradient(meta_loss, trainable)
    mean_grads = [tf.compat.v1.placeholder(w.dtype, w.shape) for w in weights]
    train_op = tf.compat.v1.train.AdamOptimizer(OUTER_LR).apply_gradients(
        zip(mean_grads, weights))
    session = tf.compat.v1.Session(graph=graph)
    session.run(tf.compat.v1.global_variables_initializer())
  pool = concurrent.futures.ThreadPoolExecutor(threads)

  def task_gradient(t):
    return session.run(meta_grads, dict(zip(task, (sx[t], sy[t], qx[t],
                                                   qy[t]))))

  def step():
    grads = list(pool.map(task_gradient, range(len(sx))))
    session.run(train_op, dict(zip(mean_grads, (
        np.mean(g, axis=0) for g in zip(*grads)))))
  return step


def _no_compute(model, weights, dataset):
  """A client that reads its dataset and returns a zero update: a round's
  dispatch, transfers, aggregation and server step without the MAML math."""
  return local_tf.LocalResult(
      tuple(tf.zeros_like(w) for w in weights[0]), iteration.count(dataset),
      local_tf.report_metrics_state(model,
                                    local_tf.initial_metrics_state(model)))


def main(argv):
  del argv
  local_runtime.set_local_context(
      max_concurrent_computation_calls=_CONCURRENCY.value)
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
  tasks = (stack('x', True), stack('y', True), stack('x', False),
           stack('y', False))
  model = task.model_fn()
  central_step = centralized_step_fn(model, *tasks)
  process = algorithms.build_fed_maml(
      model, inner_learning_rate=INNER_LR,
      server_optimizer=tff.learning.optimizers.build_adam(OUTER_LR))
  state = {'fed': process.initialize()}

  def fed_round():
    state['fed'] = process.next(state['fed'], clients).state

  contenders = {'fed_maml': fed_round, 'centralized': central_step}
  if _DECOMPOSE.value:
    for threads in (1, 4):
      contenders[f'per_task_runs_{threads}'] = per_task_step_fn(
          model, *tasks, threads)
    no_compute = client_work.build_meta_learning_process(
        model, _no_compute,
        client_weighting=client_work.ClientWeighting.NUM_EXAMPLES,
        server_optimizer=tff.learning.optimizers.build_adam(OUTER_LR),
        model_aggregator=None, model_distributor=None)
    state['no_compute'] = no_compute.initialize()

    def no_compute_round():
      state['no_compute'] = no_compute.next(state['no_compute'], clients).state
    contenders['fed_no_compute'] = no_compute_round
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
      'intra_op_threads': local_runtime.INTRA_OP_THREADS.value,
      'repeats': _REPEATS.value,
      'median_seconds': {k: round(v, 4) for k, v in med.items()},
      'fed_maml_over_centralized': round(
          med['fed_maml'] / med['centralized'], 3),
      **({'over_centralized': {k: round(v / med['centralized'], 3)
                               for k, v in med.items()}}
         if _DECOMPOSE.value else {}),
  }))


if __name__ == '__main__':
  app.run(main)
