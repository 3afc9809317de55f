"""20-way one-shot accuracy on Lake et al.'s official `all_runs` benchmark.

Each of the 20 runs holds one training image of each of 20 characters and
20 test images; the meta-trained model is adapted to the 20 training images
(one-shot support set) with the run's inner steps and rate, then classifies
the test images (query set): `fedmeta.algorithms.build_personalization_eval`,
as the runner evaluates held-out clients. A ProtoNet (fed_protonet)
classifies them by the training images' embeddings instead
(`fedmeta.algorithms.build_protonet_eval`).

  python -m fedmeta.experiments.reproduce.omniglot_all_runs <run dir> <output json>
"""

import json
import os
import sys

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf

from fedmeta.experiments import training_loop
from fedmeta import algorithms
from fedmeta.algorithms import specs
from fedmeta.data import omniglot

WAYS = 20


def run_datasets(runs) -> list[tf.data.Dataset]:
  """One meta-learning client dataset per run: support, then query."""
  return [tf.data.Dataset.from_tensor_slices({
      'support': np.repeat([True, False], [len(r.support_y), len(r.query_y)]),
      'x': np.concatenate([r.support_x, r.query_x]),
      'y': np.concatenate([r.support_y, r.query_y])}).batch(2 * WAYS)
          for r in runs]


def evaluate(run_dir: str, data_dir=None) -> dict:
  """Adapts the final weights of the runner's run in `run_dir` to each run.

  Returns:
    Query accuracy after adaptation: 'all_runs/accuracy' (the mean over the
    runs, each of 20 test images) and its 10th and 90th percentiles.
  """
  with open(os.path.join(run_dir, training_loop.SUMMARY_JSON)) as f:
    flags = json.load(f)['flags']
  options = dict(o.split('=', 1) for o in flags['task_option'])
  norm, downsample = options.get('norm', 'group'), options.get('downsample')
  runtime.set_local_context()
  if flags['algorithm'] == 'fed_protonet':
    evaluate_fn = algorithms.build_protonet_eval(
        omniglot.conv4_model_fn(None, norm, downsample),
        distance=flags['distance'])
  else:
    spec = algorithms.ALGORITHMS[flags['algorithm']]
    # Runs made before --inner_optimizer adapted with SGD.
    hyperparameters = specs.Hyperparameters(
        inner_learning_rate=flags['inner_learning_rate'],
        inner_optimizer=flags.get('inner_optimizer', 'sgd'))
    evaluate_fn = algorithms.build_personalization_eval(
        omniglot.conv4_model_fn(WAYS, norm, downsample),
        inner_learning_rate=flags['inner_learning_rate'],
        inner_steps=flags['eval_inner_steps'] or flags['inner_steps'],
        learned_rates=spec.learned_rates,
        inner_optimizer=(specs.inner_optimizer(hyperparameters)
                         if spec.inner_optimizers else None))
  weights = training_loop.load_model_weights(
      os.path.join(run_dir, training_loop.MODEL_WEIGHTS_NPZ))
  runs = omniglot.load_one_shot_runs(data_dir or flags['data_dir'])
  after = evaluate_fn(weights, run_datasets(runs))['after'][
      'sparse_categorical_accuracy']
  return {f'all_runs/accuracy{"" if stat == "mean" else "/" + stat}': value
          for stat, value in after.items()}


if __name__ == '__main__':
  _, run_directory, output = sys.argv
  with open(output + '.tmp', 'w') as f:
    json.dump(evaluate(run_directory), f, indent=2)
  os.replace(output + '.tmp', output)
