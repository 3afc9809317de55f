"""Algorithm specs: the registry, and the hyperparameters each builder gets."""

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from fedmeta import algorithms
from fedmeta.algorithms import specs


class SpecsTest(absltest.TestCase):

  def test_registry_lists_each_builder_once_under_its_name(self):
    for name, spec in algorithms.ALGORITHMS.items():
      self.assertEqual(spec.builder.__name__, f'build_{name}')
    self.assertEqual(algorithms.BUILDERS,
                     {name: spec.builder
                      for name, spec in algorithms.ALGORITHMS.items()})

  def test_families_follow_from_the_specs(self):
    self.assertEqual(set(algorithms.META_LEARNING),
                     {'fed_maml', 'fo_maml', 'meta_sgd', 'reptile',
                      'per_fedavg_fo', 'per_fedavg_hf', 'fed_protonet'})
    self.assertEqual(algorithms.EPISODIC, ('fed_protonet',))
    self.assertEqual(
        {name for name, spec in algorithms.ALGORITHMS.items()
         if spec.server_optimizer is None},
        {'fed_adam', 'fed_yogi', 'fed_adagrad', 'fed_avgm'})

  def test_client_sgd_and_inner_loop(self):
    hyperparameters = specs.Hyperparameters(
        client_learning_rate=0.3, inner_learning_rate=0.2, inner_steps=5,
        episodes_per_client=1)
    optimizer = specs.client_sgd(hyperparameters)['client_optimizer']
    spec = tf.TensorSpec([2], tf.float32)
    state = optimizer.initialize([spec])
    _, (updated,) = optimizer.next(state, [tf.ones([2])], [tf.ones([2])])
    np.testing.assert_allclose(updated, [0.7, 0.7], rtol=1e-6)
    self.assertEqual(specs.inner_loop(hyperparameters),
                     {'inner_learning_rate': 0.2, 'inner_steps': 5,
                      'task_per_batch': False})


if __name__ == '__main__':
  absltest.main()
