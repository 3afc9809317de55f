"""The runner's processes and aggregators from a config, in process."""

import inspect

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from fedmeta import algorithms
from fedmeta.algorithms import fed_maml
from fedmeta.algorithms import fed_protonet
from fedmeta.algorithms import fed_sgd
from fedmeta.algorithms import meta_sgd
from fedmeta.algorithms import per_fedavg
from fedmeta.algorithms import reptile
from fedmeta.experiments import builders
from fedmeta.experiments import run
from tests import testing


def _server_state(*args):
  """The initial server optimizer state of the process the flags build."""
  config = testing.runner_config(*args)
  process = builders.build_process(testing.softmax_regression(), None,
                                   config)
  return dict(process.initialize().finalizer)


class ServerOptimizerTest(parameterized.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  @parameterized.parameters(('fed_adam', 0.01), ('fed_yogi', 0.01),
                            ('fed_adagrad', 0.1), ('fed_avgm', 1.0))
  def test_unset_learning_rate_is_the_builders_own(self, name, rate):
    # Was 1.0 for all four: the flag's default overrode the builder's.
    self.assertAlmostEqual(
        float(_server_state(f'--algorithm={name}')['learning_rate']), rate)
    self.assertAlmostEqual(float(_server_state(
        f'--algorithm={name}', '--server_learning_rate=0.5')['learning_rate']),
                           0.5)

  def test_fixed_server_optimizer_refuses_another(self):
    with self.assertRaisesRegex(
        run.RunError, '^--server_optimizer: fed_adam fixes its server '
        'optimizer; use --algorithm=fed_avg to choose one$'):
      _server_state('--algorithm=fed_adam', '--server_optimizer=sgd')

  def test_learning_rate_alone_keeps_mamls_adam(self):
    # Was SGD(0.01): the unset --server_optimizer defaulted to sgd.
    state = _server_state('--algorithm=fed_maml', '--server_learning_rate=0.01')
    self.assertIn('beta_1', state)
    self.assertAlmostEqual(float(state['learning_rate']), 0.01)
    self.assertAlmostEqual(float(_server_state(
        '--algorithm=fed_maml')['learning_rate']), 0.001)
    state = _server_state('--algorithm=fed_maml', '--server_optimizer=sgd',
                          '--server_learning_rate=0.5')
    self.assertNotIn('beta_1', state)

  def test_optimizer_alone_runs_at_rate_one(self):
    state = _server_state('--algorithm=fed_maml', '--server_optimizer=adam')
    self.assertAlmostEqual(float(state['learning_rate']),
                           builders.DEFAULT_SERVER_LEARNING_RATE)

  def test_fed_sgd_default_is_its_builders(self):
    self.assertAlmostEqual(float(_server_state(
        '--algorithm=fed_sgd')['learning_rate']), 0.1)

  def _scheduled_steps(self, rounds, *args):
    """The step of each of `rounds` rounds of the server optimizer the
    flags build, on a gradient of 1."""
    optimizer = builders.server_optimizer_kwargs(testing.runner_config(
        '--algorithm=reptile', *args))['server_optimizer']
    weights = (tf.constant(0.0),)
    state = optimizer.initialize((tf.TensorSpec([], tf.float32),))
    steps = []
    for _ in range(rounds):
      state, (new,) = optimizer.next(state, weights, (tf.constant(1.0),))
      steps.append(float(weights[0] - new))
      weights = (new,)
    return steps

  def test_linear_decay_reaches_zero_at_its_round(self):
    # Nichol et al.: the outer step at iteration i is (1 - i / n) of the
    # first, i from 0.
    np.testing.assert_allclose(self._scheduled_steps(
        6, '--server_learning_rate=2.0', '--server_learning_rate_decay=linear',
        '--server_learning_rate_decay_rounds=4'), [2, 1.5, 1, 0.5, 0, 0],
                               rtol=1e-6)

  def test_step_decay_multiplies_every_few_rounds(self):
    np.testing.assert_allclose(self._scheduled_steps(
        5, '--server_learning_rate=0.1', '--server_learning_rate_decay=step',
        '--server_learning_rate_decay_rounds=2',
        '--server_learning_rate_decay_factor=0.5'),
                               [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)

  def test_no_decay_keeps_the_state_as_it_was(self):
    # Runs made before the flag resume from checkpoints of this structure.
    state = _server_state('--algorithm=reptile', '--server_learning_rate=1.0')
    self.assertNotIn('round_num', state)
    state = _server_state('--algorithm=reptile', '--server_learning_rate=1.0',
                          '--server_learning_rate_decay=linear',
                          '--server_learning_rate_decay_rounds=10')
    self.assertEqual(int(state['round_num']), 0)

  def test_spec_kinds_match_the_builders_defaults(self):
    modules = {'fed_maml': fed_maml, 'fo_maml': fed_maml,
               'meta_sgd': meta_sgd, 'reptile': reptile,
               'per_fedavg_fo': per_fedavg, 'per_fedavg_hf': per_fedavg,
               'fed_sgd': fed_sgd, 'fed_protonet': fed_protonet}
    for name, module in modules.items():
      spec = algorithms.ALGORITHMS[name]
      self.assertEqual(
          type(builders.server_optimizer(spec.server_optimizer, 0.1)),
          type(module.DEFAULT_SERVER_OPTIMIZER_FN()), name)


class BuildProcessTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def test_every_spec_gives_its_builder_only_arguments_it_takes(self):
    config = testing.runner_config('--episodes_per_client=2')
    for name, spec in algorithms.ALGORITHMS.items():
      parameters = inspect.signature(spec.builder).parameters
      takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
      for key in spec.kwargs(config.hyperparameters):
        self.assertTrue(takes_any or key in parameters, f'{name}: {key}')

  def test_flags_reach_the_builders_arguments(self):
    hyperparameters = testing.runner_config(
        '--client_learning_rate=0.3', '--inner_learning_rate=0.2',
        '--inner_steps=4', '--proximal_strength=0.7', '--distance=cosine',
        '--episodes_per_client=3').hyperparameters
    kwargs = {name: spec.kwargs(hyperparameters)
              for name, spec in algorithms.ALGORITHMS.items()}
    self.assertEqual(kwargs['fed_maml'], {'inner_learning_rate': 0.2,
                                          'inner_steps': 4,
                                          'task_per_batch': True})
    self.assertEqual(kwargs['per_fedavg_hf'], {'inner_learning_rate': 0.2,
                                               'outer_learning_rate': 0.3,
                                               'local_steps': 4})
    self.assertEqual(kwargs['fed_prox']['proximal_strength'], 0.7)
    self.assertEqual(kwargs['fed_protonet']['distance'], 'cosine')
    self.assertEqual(kwargs['fed_sgd'], {})
    for name in ('fed_avg', 'fed_prox', 'fed_adam', 'fed_protonet'):
      state = kwargs[name]['client_optimizer'].initialize(
          [np.zeros(1, np.float32)])
      self.assertAlmostEqual(float(state['learning_rate']), 0.3, msg=name)


class AggregatorTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def test_library_refusals_name_every_flag(self):
    for args, message in (
        (['--rotation'], '--rotation: needs --compression_bits'),
        (['--byzantine=1'],
         '--byzantine: needs --aggregation=krum, multi_krum or bulyan'),
        (['--dp_noise_multiplier=1', '--secure_aggregation'],
         '--secure_aggregation: not with --dp_noise_multiplier, whose '
         'aggregator clips and averages by itself'),
        # The factory's own text is kept as it is ("byzantine f" included).
        (['--aggregation=krum', '--byzantine=1', '--clients_per_round=4'],
         '--clients_per_round: krum: a round of 4 clients needs n >= 2f + 3 '
         '= 5 for byzantine f = 1')):
      with self.assertRaises(run.RunError) as caught:
        builders.build_model_aggregator(testing.runner_config(*args))
      self.assertEqual(str(caught.exception), message)

  def test_attack_refusals(self):
    for args, message in (
        (['--attack=scale'], '--attack: needs --malicious_fraction'),
        (['--malicious_fraction=0.2', '--alie_z=1'],
         '--alie_z: needs --attack=alie'),
        (['--malicious_fraction=0.2', '--attack=label_flip',
          '--attack_scale=2'],
         '--attack_scale: --attack=label_flip poisons data, it scales no '
         'update'),
        (['--malicious_fraction=0.5', '--attack=alie'],
         '--malicious_fraction: must be < 0.5 for --attack=alie without '
         "--alie_z (the paper's z_max is infinite)")):
      with self.assertRaises(run.RunError) as caught:
        builders.build_model_aggregator(testing.runner_config(*args))
      self.assertEqual(str(caught.exception), message)

  def test_data_attack_sends_honest_updates(self):
    config = testing.runner_config('--malicious_fraction=0.3',
                                   '--attack=label_flip')
    self.assertEqual(config.aggregator.malicious_fraction, 0.0)
    self.assertTrue(config.attack.poisons_data)
    config = testing.runner_config('--malicious_fraction=0.3')
    self.assertEqual(config.aggregator.malicious_fraction, 0.3)
    self.assertFalse(config.attack.poisons_data)


if __name__ == '__main__':
  absltest.main()
