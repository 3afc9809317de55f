r"""`make demo`: what federated meta-learning is for, in about two minutes.

Trains two models on the same federated sine-regression clients (MAML's
sinusoid benchmark, Finn et al. 2017, sec. 5.1: each client one sine, K = 10
points to adapt from): federated MAML, and FedAvg. Then adapts each to 100
sines it never saw, with 0 to 10 SGD steps on their 10 support points, and
scores the other 10 points. Prints the two adaptation curves side by side
and writes them, with one held-out sine, to adaptation.png.

  python -m fedmeta.experiments.demo --root_output_dir=/tmp/fedmeta_runs \
      --experiment_name=demo

Writes <root_output_dir>/<experiment_name>/: fed_maml/ and fed_avg/ (the
runner's outputs for each), adaptation.png and adaptation.json.
"""

import json
import os
import subprocess
import sys

from absl import app
from absl import flags

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta import experiments
from fedmeta.experiments import training_loop
from fedmeta import data
from fedmeta import models
from fedmeta.algorithms import meta_tf
from fedmeta.data import support_query

import numpy as np  # pylint: disable=g-bad-import-order
import tensorflow as tf  # pylint: disable=g-bad-import-order

_ROOT = flags.DEFINE_string('root_output_dir', '/tmp/fedmeta_runs',
                            'Root of experiment outputs.')
_NAME = flags.DEFINE_string('experiment_name', 'demo', 'Output subdirectory.')
_ROUNDS = flags.DEFINE_integer('rounds', 200, 'Rounds of each training run.',
                               lower_bound=1)
_CLIENTS = flags.DEFINE_integer('eval_clients', 100,
                                'Held-out sines adapted to.', lower_bound=1)

RUNS = (('fed_maml', 'federated MAML'), ('fed_avg', 'FedAvg + fine-tuning'))
MAX_STEPS = 10
INNER_LEARNING_RATE = 0.01


def train(name: str, out: str) -> str:
  """Runs experiments/configs/demo_<name>.flags; returns the run's folder."""
  subprocess.run(
      [sys.executable, '-m', 'fedmeta.experiments.run',
       f'--flagfile=experiments/configs/demo_{name}.flags',
       f'--rounds={_ROUNDS.value}', f'--eval_every={_ROUNDS.value}',
       f'--checkpoint_every={_ROUNDS.value}',
       f'--eval_clients={_CLIENTS.value}', f'--root_output_dir={out}',
       f'--experiment_name={name}'], cwd=experiments.REPO, check=True)
  return os.path.join(out, name)


def adaptation_losses(weights, clients) -> np.ndarray:
  """[clients, MAX_STEPS + 1] query MSE after 0..MAX_STEPS support steps,
  and [clients, MAX_STEPS + 1, n] query predictions."""
  model = data.load('sinusoid').model_fn()
  adapter = models.build(model)
  graph = tf.Graph()
  with graph.as_default():
    support = {k: tf.compat.v1.placeholder(tf.float32, [None, 1])
               for k in ('x', 'y')}
    query = {k: tf.compat.v1.placeholder(tf.float32, [None, 1])
             for k in ('x', 'y')}
    trainable = tuple(tf.constant(w) for w in weights.trainable)
    rates = meta_tf.scalar_rates(INNER_LEARNING_RATE, trainable)
    losses, predictions = [], []
    for step in range(MAX_STEPS + 1):
      if step:
        trainable = meta_tf.sgd_step(adapter, (trainable, ()), support, rates,
                                     first_order=True)
      output, _ = adapter.forward((trainable, ()), query, training=False)
      losses.append(output.loss)
      predictions.append(output.predictions[:, 0])
    with tf.compat.v1.Session(graph=graph) as session:
      results = [session.run((losses, predictions), {
          support['x']: s['x'], support['y']: s['y'],
          query['x']: q['x'], query['y']: q['y']}) for s, q in clients]
  return (np.asarray([r[0] for r in results]),
          np.asarray([r[1] for r in results]))


def held_out_clients(count: int):
  """(support, query) arrays of the first `count` held-out sines, split as
  the runner splits them (half support, seeded)."""
  task = data.load('sinusoid')
  split = data.split_client_data(task.test, support_fraction=0.5, seed=0)
  clients = []
  for cid in split.client_ids[:count]:
    clients.append(support_query.support_and_query_arrays(next(
        split.create_tf_dataset_for_client(cid).batch(100)
        .as_numpy_iterator())))
  return clients


def plot(curves: dict, example: dict, path: str) -> None:
  # pylint: disable-next=g-import-not-at-top
  from matplotlib import figure
  fig = figure.Figure(figsize=(10, 4))
  left, right = fig.subplots(1, 2)
  for name, label in RUNS:
    mean = curves[name].mean(axis=0)
    left.plot(range(MAX_STEPS + 1), mean, marker='o', label=label)
  left.set_xlabel('SGD steps on the 10 support points')
  left.set_ylabel('query MSE, mean over held-out sines')
  left.set_title('Adapting to sines never seen in training', fontsize='small')
  left.grid(alpha=0.3)
  left.legend()
  order = np.argsort(example['query_x'])
  right.plot(example['query_x'][order], example['query_y'][order], 'k-',
             label='true sine')
  right.plot(example['support_x'], example['support_y'], 'k^',
             label='10 support points')
  for name, label in RUNS:
    right.plot(example['query_x'][order], example[name][order], '--',
               label=f'{label}, {MAX_STEPS} steps')
  right.set_title('One held-out sine', fontsize='small')
  right.legend(fontsize='x-small')
  fig.tight_layout()
  fig.savefig(path + '.tmp.png', dpi=100)
  os.replace(path + '.tmp.png', path)


def table(curves: dict) -> str:
  lines = ['query MSE on held-out sines (mean over '
           f'{len(curves[RUNS[0][0]])} sines)', '',
           f'| steps | {RUNS[0][1]} | {RUNS[1][1]} |', '|---|---|---|']
  for step in (0, 1, 2, 5, MAX_STEPS):
    lines.append(f'| {step} | {curves[RUNS[0][0]][:, step].mean():.3f} | '
                 f'{curves[RUNS[1][0]][:, step].mean():.3f} |')
  return '\n'.join(lines)


def main(argv):
  del argv
  out = os.path.join(_ROOT.value, _NAME.value)
  os.makedirs(out, exist_ok=True)
  clients = held_out_clients(_CLIENTS.value)
  curves, example = {}, {}
  for name, _ in RUNS:
    weights = training_loop.load_model_weights(os.path.join(
        train(name, out), training_loop.MODEL_WEIGHTS_NPZ))
    curves[name], predictions = adaptation_losses(weights, clients)
    example[name] = predictions[0, MAX_STEPS]
  support, query = clients[0]
  example.update(support_x=support['x'][:, 0], support_y=support['y'][:, 0],
                 query_x=query['x'][:, 0], query_y=query['y'][:, 0])
  plot(curves, example, os.path.join(out, 'adaptation.png'))
  with open(os.path.join(out, 'adaptation.json'), 'w') as f:
    json.dump({name: {'mean_query_mse_by_steps':
                      [float(v) for v in curves[name].mean(axis=0)]}
               for name, _ in RUNS}, f, indent=2)
  print(table(curves))
  print(f'\nResults in {out}/ (adaptation.png, adaptation.json, fed_maml/, '
        'fed_avg/)')


if __name__ == '__main__':
  app.run(main)
