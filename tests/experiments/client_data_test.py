"""The runner's task, splits and episodes from a config, in process."""

from absl import flags
from absl.testing import absltest

from fedmeta.experiments import client_data
from fedmeta.experiments import run
from tests import testing


class TaskOptionsTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def test_options_are_typed_like_the_loaders_defaults(self):
    options = client_data.task_options_in_effect(testing.runner_config(
        '--task=synthetic', '--task_option=alpha=0.5',
        '--task_option=iid=true'))
    self.assertEqual((options['alpha'], options['iid']), (0.5, True))
    self.assertIsInstance(options['alpha'], float)

  def test_bad_options_name_the_flag(self):
    for option, message in (
        ('gamma=1', "^--task_option: 'gamma=1' is not key=value with a key "
                    "of task synthetic's: "),
        ('alpha=high', "^--task_option: alpha takes a float, got 'high'$"),
        ('iid=yes', "^--task_option: iid takes a bool, got 'yes'$")):
      with self.assertRaisesRegex(run.RunError, message):
        client_data.task_options_in_effect(testing.runner_config(
            '--task=synthetic', f'--task_option={option}'))

  def test_num_clients_needs_a_task_without_natural_clients(self):
    with self.assertRaisesRegex(
        run.RunError, '^--num_clients: task heart_disease has natural '
        'clients$'):
      client_data.load_task(testing.runner_config('--task=heart_disease',
                                                  '--num_clients=3'))


class EpisodeFlagsTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def _samplers(self, *args):
    config = testing.runner_config(*args)
    return client_data.episode_samplers(client_data.load_task(config), config)

  def test_train_shots_set_training_episodes_only(self):
    train, test = self._samplers(
        '--task=digits', '--algorithm=reptile', '--ways=3', '--shots=1',
        '--train_shots=4', '--query_shots=2', '--eval_query_shots=1')
    self.assertEqual((train.ways, train.shots, train.query_shots), (3, 4, 2))
    self.assertEqual((test.ways, test.shots, test.query_shots), (3, 1, 1))
    episode = list(train.dataset(train.client_ids[0], 1).as_numpy_iterator())
    support = [e['y'] for e in episode if e['support']]
    self.assertLen(support, 12)
    self.assertEqual(sorted(set(int(y) for y in support)), [0, 1, 2])
    self.assertLen(episode, 18)
    with self.assertRaisesRegex(run.RunError, '^--train_shots: needs --ways'):
      self._samplers('--task=digits', '--train_shots=4')

  def test_refusals_come_from_the_spec(self):
    for args, message in (
        (['--algorithm=fed_maml', '--distance=cosine'],
         '^--distance: fed_maml does not take it; fed_protonet do$'),
        (['--algorithm=fed_protonet'],
         '^--ways: fed_protonet trains on episodes; give --ways and '
         '--shots$'),
        (['--algorithm=fed_avg', '--ways=3', '--shots=1'],
         '^--ways: episodes are for meta-learning algorithms, not fed_avg$'),
        (['--algorithm=fed_maml', '--ways=3', '--shots=1',
          '--train_ways=5'],
         '^--train_ways: fed_maml adapts a model of --ways outputs; only '
         'fed_protonet train on other ways$')):
      with self.assertRaisesRegex(run.RunError, message):
        self._samplers('--task=digits', *args)


class ClientDatasetsTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def test_several_episodes_a_client_are_a_batch_each(self):
    config = testing.runner_config(
        '--task=digits', '--algorithm=fed_maml', '--ways=3', '--shots=1',
        '--query_shots=2', '--eval_query_shots=1', '--episodes_per_client=2',
        '--clients_per_round=2')
    task = client_data.load_task(config)
    samplers = client_data.episode_samplers(task, config)
    ids = task.train.client_ids[:2]
    clients = {}
    datasets = client_data.build_client_datasets(
        task.train, lambda round_num: ids, samplers, None, None, config,
        clients)(5)
    self.assertLen(datasets, 2)
    for dataset in datasets:
      batches = list(dataset.as_numpy_iterator())
      self.assertLen(batches, 2)
      for batch in batches:
        self.assertEqual(len(batch['y']), 3 * (1 + 2))
        self.assertEqual(int(batch['support'].sum()), 3)
    self.assertEqual(clients[5], client_data.RoundClients(2, 2, 0, None))


if __name__ == '__main__':
  absltest.main()
