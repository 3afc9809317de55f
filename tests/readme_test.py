"""README's one-file algorithm runs, and its round is the hand-written one."""

import dataclasses
import os
import re
from unittest import mock

from absl import flags
from absl.testing import absltest
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import aggregation
from fedmeta import algorithms
from fedmeta import runtime
from fedmeta.experiments import builders
from tests import testing

README = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'README.md')


def _one_file_algorithm() -> dict:
  """The namespace of README's 'A new algorithm in one file' code block."""
  with open(README) as f:
    text = f.read()
  section = text[text.index('### A new algorithm in one file'):]
  code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
  namespace = {}
  exec(compile(code, README, 'exec'), namespace)  # pylint: disable=exec-used
  return namespace


ARRAYS = testing.client_arrays([5, 9, 3])
LR = 0.25
MODEL = testing.softmax_regression()  # One draw of initial weights for all.


def _round(model_aggregator=None, process=None):
  """The trainable weights after one round of README's signSGD (or of
  `process`)."""
  build_sign_sgd = _one_file_algorithm()['build_sign_sgd']
  process = process or build_sign_sgd(
      MODEL,
      server_optimizer=tff.learning.optimizers.build_sgdm(LR),
      model_aggregator=model_aggregator)
  weights, _ = testing.run_rounds(
      process, [testing.as_dataset(x, y, batch_size=4) for x, y in ARRAYS], 1)
  return weights.trainable


def _initial_and_signs():
  """The initial (kernel, bias), and each client's signs of its gradient."""
  initial = [tf.Variable(w) for w in MODEL.initial_weights[0]]
  signs = []
  for x, y in ARRAYS:
    with tf.GradientTape() as tape:
      loss = testing.mlp_loss(initial, x, y)
    signs.append([np.sign(g) for g in tape.gradient(loss, initial)])
  return [w.numpy() for w in initial], signs


class ReadmeAlgorithmTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    runtime.set_local_context()

  def test_round_is_minus_lr_times_the_mean_sign_of_the_gradients(self):
    initial, signs = _initial_and_signs()
    expected = [w - LR * np.mean([s[i] for s in signs], axis=0)
                for i, w in enumerate(initial)]
    self.assertLess(testing.max_abs_diff(_round(), expected), 1e-6)

  def test_takes_a_robust_aggregator_unchanged(self):
    initial, signs = _initial_and_signs()
    expected = [w - LR * np.median([s[i] for s in signs], axis=0)
                for i, w in enumerate(initial)]
    self.assertLess(testing.max_abs_diff(
        _round(aggregation.median_factory(len(ARRAYS))), expected), 1e-6)

  def test_its_spec_is_all_the_runner_needs(self):
    spec = _one_file_algorithm()['SPECS']['sign_sgd']
    with mock.patch.dict(algorithms.ALGORITHMS, {'sign_sgd': spec}):
      config = dataclasses.replace(
          testing.runner_config(f'--server_learning_rate={LR}'),
          algorithm='sign_sgd')
      flags.FLAGS.unparse_flags()
      process = builders.build_process(
          MODEL, builders.build_model_aggregator(config), config)
    initial, signs = _initial_and_signs()
    expected = [w - LR * np.mean([s[i] for s in signs], axis=0)
                for i, w in enumerate(initial)]
    self.assertLess(testing.max_abs_diff(_round(process=process), expected),
                    1e-6)


if __name__ == '__main__':
  absltest.main()
