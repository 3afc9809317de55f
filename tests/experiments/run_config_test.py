"""The runner's flags to builder arguments, in process (no subprocess)."""

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized

from experiments import run
from fedmeta import algorithms
from fedmeta.algorithms import fed_maml
from fedmeta.algorithms import meta_sgd
from fedmeta.algorithms import fed_sgd
from fedmeta.algorithms import per_fedavg
from fedmeta.algorithms import reptile
from tests import testing


def _server_state(*args):
  """The initial server optimizer state of the process the flags build."""
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['run', *args])
  process = run.build_process(testing.softmax_regression(), None)
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

  def test_fed_sgd_default_is_its_builders(self):
    self.assertAlmostEqual(float(_server_state(
        '--algorithm=fed_sgd')['learning_rate']), 0.1)

  def test_default_kinds_match_the_builders_defaults(self):
    builders_default = {'fed_maml': fed_maml, 'fo_maml': fed_maml,
                        'meta_sgd': meta_sgd, 'reptile': reptile,
                        'per_fedavg_fo': per_fedavg, 'per_fedavg_hf': per_fedavg,
                        'fed_sgd': fed_sgd}
    self.assertEqual(set(run.DEFAULT_SERVER_OPTIMIZER) | set(
        run._OWN_SERVER_OPTIMIZER), set(algorithms.BUILDERS))
    for name, module in builders_default.items():
      self.assertEqual(
          type(run.server_optimizer(run.DEFAULT_SERVER_OPTIMIZER[name], 0.1)),
          type(module.DEFAULT_SERVER_OPTIMIZER_FN()), name)


class EpisodeFlagsTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def test_train_shots_set_training_episodes_only(self):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(['run', '--task=digits', '--algorithm=reptile', '--ways=3',
                 '--shots=1', '--train_shots=4', '--query_shots=2',
                 '--eval_query_shots=1'])
    train, test = run.episode_samplers(run.load_task())
    self.assertEqual((train.ways, train.shots, train.query_shots), (3, 4, 2))
    self.assertEqual((test.ways, test.shots, test.query_shots), (3, 1, 1))
    episode = list(train.dataset(train.client_ids[0], 1).as_numpy_iterator())
    support = [e['y'] for e in episode if e['support']]
    self.assertLen(support, 12)
    self.assertEqual(sorted(set(int(y) for y in support)), [0, 1, 2])
    self.assertLen(episode, 18)
    flags.FLAGS.unparse_flags()
    flags.FLAGS(['run', '--task=digits', '--train_shots=4'])
    with self.assertRaisesRegex(run.RunError, '^--train_shots: needs --ways'):
      run.episode_samplers(run.load_task())


class AggregationFlagsTest(absltest.TestCase):

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
      flags.FLAGS.unparse_flags()
      flags.FLAGS(['run', *args])
      with self.assertRaises(run.RunError) as caught:
        run.build_model_aggregator()
      self.assertEqual(str(caught.exception), message)


if __name__ == '__main__':
  absltest.main()
