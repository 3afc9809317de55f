r"""Local-only models: each evaluated client trains its own model from the
task's initialization on its own support set, with no federation.

  python -m fedmeta.experiments.reproduce.local_baseline \
      --flagfile=experiments/configs/wisdm_fed_avg.flags --rounds=1 \
      --personalization_eval --eval_inner_steps=300 \
      --experiment_name=wisdm_local

Takes the runner's flags and runs its loop with a process that never leaves
the initial weights (`--rounds=1`, no client trains). The personalized
evaluation then adapts those weights on each held-out client's support set
with `--eval_inner_steps` full-batch SGD steps at `--inner_learning_rate`:
`eval/after/*` are the local models' query metrics, per client with mean and
percentiles, on exactly the support and query sets the federated runs'
`--personalization_eval` uses (`eval/before/*`: the untrained model).
"""

import collections

from absl import app

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta.experiments import run

import numpy as np  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order


class Untrained:
  """A process with `LearningProcess`'s interface whose weights stay the
  model's initial ones."""

  def __init__(self, model: tff.learning.models.FunctionalModel):
    trainable, non_trainable = model.initial_weights
    self._initial = {'trainable': [np.asarray(w) for w in trainable]}
    if non_trainable:
      self._initial['non_trainable'] = [np.asarray(w) for w in non_trainable]

  def initialize(self):
    return dict(self._initial)

  def next(self, state, datasets):
    del datasets  # Nobody trains: local models are fit at evaluation.
    return tff.learning.templates.LearningProcessOutput(
        state=state, metrics=collections.OrderedDict(
            client_work=collections.OrderedDict(), aggregator=(),
            finalizer=()))

  def get_model_weights(self, state):
    return tff.learning.models.ModelWeights(
        trainable=list(state['trainable']),
        non_trainable=list(state.get('non_trainable', [])))


def build(model, model_aggregator, config):
  """The untrained process, for a config that asks for local models.

  Raises:
    run.RunError: For flags under which nothing is fit per client.
  """
  if not isinstance(model_aggregator, tff.aggregators.MeanFactory):
    raise run.RunError('--aggregation: local models aggregate nothing; no '
                       'aggregation, privacy or attack flags')
  if config.rounds != 1:
    raise run.RunError('--rounds: local models are fit at evaluation; give '
                       '--rounds=1')
  if not (config.evaluation.personalization
          and not config.spec.meta_learning):
    raise run.RunError('--personalization_eval: local models are fit by the '
                       'personalized evaluation of a FedAvg-family run; give '
                       'it, with --algorithm=fed_avg (or another of that '
                       'family)')
  return Untrained(model)


def main(argv):
  run.main(argv, process_fn=build, name_suffix='_local')


if __name__ == '__main__':
  app.run(main)
