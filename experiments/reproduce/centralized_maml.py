r"""Centralized MAML in plain TensorFlow, on the runner's rounds: the baseline
curve that federated MAML with IID tasks must lie on.

  python -m experiments.reproduce.centralized_maml \
      --flagfile=experiments/configs/omniglot_episodes_5way_1shot_fed_maml.flags \
      --experiment_name=omniglot_episodes_5way_1shot_centralized

Takes the runner's flags (`--algorithm=fed_maml` or `fo_maml`) and runs
through the runner's own loop: the same sampled clients and episodes each
round, the same held-out evaluation, outputs, checkpoints and resume. Only
the step differs: each round's tasks are one meta-batch of Finn et al.'s
Algorithm 2, the meta-gradient of their query losses (adapted with
`fedmeta.algorithms.meta_tf`) computed in one TF graph call, averaged by
query examples and applied by the same `tff.learning.optimizers` outer
optimizer, with no TFF runtime in between.
Aggregation, privacy and attack flags do not apply and are refused.
"""

import collections

from absl import app
from absl import flags

# Quiets TensorFlow and guards TFF's worker before either is imported.
import fedmeta  # pylint: disable=unused-import
from experiments import run
from fedmeta import models
from fedmeta.algorithms import fed_maml
from fedmeta.algorithms import local_tf
from fedmeta.algorithms import meta_tf

import numpy as np  # pylint: disable=g-bad-import-order
import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order


class CentralizedMaml:
  """MAML over explicit weights, with `LearningProcess`'s interface as the
  round loop uses it (`initialize`, `next`, `get_model_weights`).

  A round is one graph call: the meta-gradient of the query losses of all
  its tasks, averaged by query examples (as the federated mean weights each
  client's). The state is `{'weights': [...], 'optimizer': ...}` of numpy
  arrays, so the runner's checkpoints hold it as they hold a TFF state.
  """

  def __init__(self, model: tff.learning.models.FunctionalModel, *,
               inner_learning_rate: float, inner_steps: int,
               first_order: bool,
               server_optimizer: tff.learning.optimizers.Optimizer):
    self._model = model
    self._optimizer = server_optimizer
    self._inner = dict(inner_steps=inner_steps, first_order=first_order)
    self._inner_learning_rate = inner_learning_rate
    self._initial = [np.asarray(w) for w in model.initial_weights[0]]
    self._finalize = local_tf.build_metrics_finalizer(
        models.spec(model).finalize_metrics)
    self._steps = {}  # Number of tasks -> the graph's step function.

  def _step(self, tasks: int):
    """(weights, [(support, query)] of numpy batches) -> (mean gradient,
    summed metrics state) for `tasks` tasks, built once per count."""
    if tasks in self._steps:
      return self._steps[tasks]
    graph = tf.Graph()
    with graph.as_default():
      weights = tuple(tf.compat.v1.placeholder(w.dtype, w.shape)
                      for w in self._initial)
      placeholder = lambda s: tf.compat.v1.placeholder(s.dtype, s.shape)
      feeds = [tuple(tf.nest.map_structure(placeholder,
                                           dict(self._model.input_spec))
                     for _ in ('support', 'query')) for _ in range(tasks)]
      adapter = models.build(self._model)
      rates = meta_tf.scalar_rates(self._inner_learning_rate, weights)
      with tf.GradientTape() as tape:
        tape.watch(weights)
        weighted, counts, metrics = [], [], []
        for support, query in feeds:
          adapted = meta_tf.adapt(adapter, (weights, ()), support, rates,
                                  **self._inner)
          output, y = adapter.forward((adapted, ()), query, training=True)
          count = tf.cast(meta_tf.num_rows(query), tf.float32)
          weighted.append(count * output.loss)
          counts.append(count)
          metrics.append(meta_tf.batch_metrics(adapter, output, y))
        loss = tf.add_n(weighted) / tf.maximum(tf.add_n(counts), 1.0)
      gradient = tape.gradient(loss, weights,
                               unconnected_gradients=meta_tf.ZERO)
      summed = tf.nest.map_structure(lambda *m: tf.add_n(list(m)), *metrics)
      session = tf.compat.v1.Session(graph=graph)

    def step(values, episodes):
      feed = dict(zip(weights, values))
      for (support, query), (s, q) in zip(feeds, episodes):
        feed.update({support[k]: s[k] for k in support})
        feed.update({query[k]: q[k] for k in query})
      return session.run((list(gradient), summed), feed)

    self._steps[tasks] = step
    return step

  def initialize(self):
    specs = [tf.TensorSpec(w.shape, w.dtype) for w in self._initial]
    return {'weights': list(self._initial),
            'optimizer': tf.nest.map_structure(
                np.asarray, self._optimizer.initialize(specs))}

  def next(self, state, datasets):
    """One outer step on the tasks `datasets`."""
    weights = [np.asarray(w) for w in state['weights']]
    episodes = []
    for dataset in datasets:
      e = next(dataset.unbatch().batch(1 << 20).as_numpy_iterator())
      episodes.append(tuple({k: e[k][mask] for k in ('x', 'y')}
                            for mask in (e['support'], ~e['support'])))
    gradient, metrics = self._step(len(episodes))(weights, episodes)
    optimizer_state, new_weights = self._optimizer.next(
        *tf.nest.map_structure(tf.constant,
                               (state['optimizer'], weights, gradient)))
    train = tf.nest.map_structure(np.asarray, self._finalize(metrics))
    return tff.learning.templates.LearningProcessOutput(
        state={'weights': [np.asarray(w) for w in new_weights],
               'optimizer': tf.nest.map_structure(np.asarray,
                                                  optimizer_state)},
        metrics=collections.OrderedDict(
            client_work=collections.OrderedDict(train=train),
            aggregator=(), finalizer=()))

  def get_model_weights(self, state):
    return tff.learning.models.ModelWeights(
        trainable=list(state['weights']), non_trainable=[])


def build(model, model_aggregator):
  """The centralized counterpart of the process the runner's flags ask for.

  Raises:
    run.RunError: For flags that have no centralized meaning.
  """
  name = flags.FLAGS.algorithm
  if name not in ('fed_maml', 'fo_maml'):
    raise run.RunError(f'--algorithm: the centralized baseline is MAML\'s; '
                       f'give fed_maml or fo_maml, not {name}')
  if not isinstance(model_aggregator, tff.aggregators.MeanFactory):
    raise run.RunError('--aggregation: the centralized baseline averages '
                       'meta-gradients; no aggregation, privacy or attack '
                       'flags')
  flag_values = flags.FLAGS
  optimizer = (run.server_optimizer_kwargs(name).get('server_optimizer')
               or fed_maml.DEFAULT_SERVER_OPTIMIZER_FN())
  return CentralizedMaml(
      model, inner_learning_rate=flag_values.inner_learning_rate,
      inner_steps=flag_values.inner_steps, first_order=name == 'fo_maml',
      server_optimizer=optimizer)


def main(argv):
  run.main(argv, process_fn=build, name_suffix='_centralized')


if __name__ == '__main__':
  app.run(main)
