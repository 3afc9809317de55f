"""The all_runs evaluation builds the run's own embedding (needs the real
Omniglot files in ../shared/data; skipped without them)."""

import json
import os
import tempfile

from absl.testing import absltest
import numpy as np

from fedmeta import algorithms
from fedmeta.data import omniglot
from fedmeta.experiments import training_loop
from fedmeta.experiments.reproduce import omniglot_all_runs
from tests import testing

import tensorflow_federated as tff  # pylint: disable=g-bad-import-order


class AllRunsTest(absltest.TestCase):

  def test_max_pooled_protonet_is_evaluated_as_max_pooled(self):
    data_dir = testing.data_dir()
    run_dir = tempfile.mkdtemp()
    # Strided and max-pooled embeddings have the same weight shapes, so a
    # run's weights load into either: the run's options must pick.
    model = omniglot.conv4_model_fn(None, 'batch', 'max_pool')
    rng = np.random.default_rng(0)
    trainable = [rng.normal(0, 0.3, size=w.shape).astype(np.float32)
                 for w in model.initial_weights[0]]
    training_loop.save_model_weights(
        tff.learning.models.ModelWeights(trainable, []),
        os.path.join(run_dir, training_loop.MODEL_WEIGHTS_NPZ))
    with open(os.path.join(run_dir, training_loop.SUMMARY_JSON), 'w') as f:
      json.dump({'flags': {
          'algorithm': 'fed_protonet', 'distance': 'squared_euclidean',
          'data_dir': data_dir,
          'task_option': ['norm=batch', 'downsample=max_pool']}}, f)
    result = omniglot_all_runs.evaluate(run_dir)

    runs = omniglot.load_one_shot_runs(data_dir)
    by_hand = {}
    for downsample in ('max_pool', 'stride'):
      evaluate = algorithms.build_protonet_eval(
          omniglot.conv4_model_fn(None, 'batch', downsample))
      by_hand[downsample] = evaluate(
          tff.learning.models.ModelWeights(trainable, []),
          omniglot_all_runs.run_datasets(runs))['after'][
              'sparse_categorical_accuracy']
    self.assertEqual(result['all_runs/accuracy'], by_hand['max_pool']['mean'])
    self.assertEqual(result['all_runs/accuracy/p90'],
                     by_hand['max_pool']['p90'])
    self.assertNotEqual(
        [by_hand['stride'][s] for s in ('mean', 'p10', 'p50', 'p90')],
        [by_hand['max_pool'][s] for s in ('mean', 'p10', 'p50', 'p90')])


if __name__ == '__main__':
  absltest.main()
