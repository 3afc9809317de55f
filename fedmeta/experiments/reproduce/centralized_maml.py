r"""Centralized MAML in plain TensorFlow, on the runner's rounds: the baseline
curve that federated MAML with IID tasks must lie on.

  python -m fedmeta.experiments.reproduce.centralized_maml \
      --flagfile=experiments/configs/omniglot_episodes_5way_1shot_fed_maml.flags \
      --experiment_name=omniglot_episodes_5way_1shot_centralized

Takes the runner's flags (`--algorithm=fed_maml` or `fo_maml`) and runs
through the runner's own loop: the same sampled clients and episodes each
round, the same held-out evaluation, outputs, checkpoints and resume. Only
the step differs: each round's tasks are one meta-batch of Finn et al.'s
Algorithm 2, each task's meta-gradient (adapted with
`fedmeta.algorithms.meta_tf`) computed by one plain-TF graph, averaged by
query examples and applied by the same `tff.learning.optimizers` outer
optimizer, with no TFF runtime in between.
Aggregation, privacy, attack, dropout and straggler flags do not apply
and are refused.
"""

import collections

from absl import app

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta.experiments import builders
from fedmeta.experiments import run
from fedmeta import models
from fedmeta.algorithms import fed_maml
from fedmeta.algorithms import local_tf
from fedmeta.algorithms import meta_tf
from fedmeta.data import support_query

import numpy as np  # pylint: disable=g-bad-import-order
import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order


class CentralizedMaml:
  """MAML over explicit weights, with `LearningProcess`'s interface as the
  round loop uses it (`initialize`, `next`, `get_model_weights`).

  The meta-gradient of each task's query loss comes from one TF graph
  (built once, fed each task's support and query batches); a round averages
  them by query examples, as the federated mean weights each client's. The
  state is `{'weights': [...], 'optimizer': ...}` of numpy arrays, so the
  runner's checkpoints hold it as they hold a TFF state.
  """

  def __init__(self, model: tff.learning.models.FunctionalModel, *,
               inner_learning_rate: float, inner_steps: int,
               first_order: bool,
               server_optimizer: tff.learning.optimizers.Optimizer):
    self._optimizer = server_optimizer
    self._initial = [np.asarray(w) for w in model.initial_weights[0]]
    # Held: the finalizer's tf.function refers to the model weakly.
    self._model = model
    self._finalize = local_tf.build_metrics_finalizer(
        models.spec(model).finalize_metrics)
    graph = tf.Graph()
    with graph.as_default():
      self._weights = tuple(tf.compat.v1.placeholder(w.dtype, w.shape)
                            for w in self._initial)
      placeholder = lambda s: tf.compat.v1.placeholder(s.dtype, s.shape)
      self._batches = tuple(
          tf.nest.map_structure(placeholder, dict(model.input_spec))
          for _ in ('support', 'query'))
      support, query = self._batches
      adapter = models.build(model)
      rates = meta_tf.scalar_rates(inner_learning_rate, self._weights)
      with tf.GradientTape() as tape:
        tape.watch(self._weights)
        adapted = meta_tf.adapt(adapter, (self._weights, ()), support, rates,
                                inner_steps=inner_steps,
                                first_order=first_order)
        output, y = adapter.forward((adapted, ()), query, training=True)
      gradient = tape.gradient(output.loss, self._weights,
                               unconnected_gradients=meta_tf.ZERO)
      self._fetches = (list(gradient), meta_tf.num_rows(query),
                       meta_tf.batch_metrics(adapter, output, y))
    self._session = tf.compat.v1.Session(graph=graph)

  def initialize(self):
    specs = [tf.TensorSpec(w.shape, w.dtype) for w in self._initial]
    return {'weights': list(self._initial),
            'optimizer': tf.nest.map_structure(
                np.asarray, self._optimizer.initialize(specs))}

  def next(self, state, datasets):
    """One outer step on the tasks `datasets`."""
    weights = [np.asarray(w) for w in state['weights']]
    total = count = metrics = None
    for dataset in datasets:
      arrays = support_query.support_and_query_arrays(
          next(dataset.unbatch().batch(1 << 20).as_numpy_iterator()))
      feed = dict(zip(self._weights, weights))
      for batch, values in zip(self._batches, arrays):
        feed.update({batch[k]: values[k] for k in batch})
      gradient, examples, task_metrics = self._session.run(self._fetches,
                                                           feed)
      weighted = [np.float32(examples) * g for g in gradient]
      if total is None:
        total, count, metrics = weighted, examples, task_metrics
      else:
        total = [t + w for t, w in zip(total, weighted)]
        count += examples
        metrics = tf.nest.map_structure(np.add, metrics, task_metrics)
    # As the federated process: the mean weighted by query examples, and
    # the clients' metrics states summed, then finalized.
    gradient = [t / np.float32(max(count, 1)) for t in total]
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


def build(model, model_aggregator, config):
  """The centralized counterpart of the process a config asks for.

  Raises:
    run.RunError: For flags that have no centralized meaning.
  """
  name = config.algorithm
  if name not in ('fed_maml', 'fo_maml'):
    raise run.RunError(f'--algorithm: the centralized baseline is MAML\'s; '
                       f'give fed_maml or fo_maml, not {name}')
  for flag, value in (('dropout_rate', config.client.dropout_rate),
                      ('straggler_fraction', config.client.straggler_fraction)):
    if value:
      raise run.RunError(f'--{flag}: the centralized baseline takes every '
                         "round's tasks whole")
  if not isinstance(model_aggregator, tff.aggregators.MeanFactory):
    raise run.RunError('--aggregation: the centralized baseline averages '
                       'meta-gradients; no aggregation, privacy or attack '
                       'flags')
  optimizer = (builders.server_optimizer_kwargs(config).get('server_optimizer')
               or fed_maml.DEFAULT_SERVER_OPTIMIZER_FN())
  hyperparameters = config.hyperparameters
  return CentralizedMaml(
      model, inner_learning_rate=hyperparameters.inner_learning_rate,
      inner_steps=hyperparameters.inner_steps, first_order=name == 'fo_maml',
      server_optimizer=optimizer)


def main(argv):
  run.main(argv, process_fn=build, name_suffix='_centralized')


if __name__ == '__main__':
  app.run(main)
