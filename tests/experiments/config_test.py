"""The runner's flags to its typed config, in process."""

import dataclasses

from absl import flags
from absl.testing import absltest

from fedmeta.experiments import config as config_lib
from tests import testing


class _Reads(dict):
  """A dict that records the keys read."""

  def __init__(self, *args):
    super().__init__(*args)
    self.read = set()

  def __getitem__(self, key):
    self.read.add(key)
    return super().__getitem__(key)


class FromFlagsTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def test_every_runner_flag_reaches_the_config(self):
    defaults = testing.runner_config().defaults
    values = _Reads(defaults)
    # All given: all read.
    config_lib.from_flags(values, frozenset(values), defaults)
    self.assertEqual(values.read, set(values))

  def test_config_is_frozen(self):
    config = testing.runner_config()
    with self.assertRaises(dataclasses.FrozenInstanceError):
      config.rounds = 3  # pytype: disable=annotation-type-mismatch
    with self.assertRaises(TypeError):
      config.flags['rounds'] = 3

  def test_values_land_in_their_groups(self):
    config = testing.runner_config(
        '--algorithm=fed_maml', '--client_batch_size=7', '--inner_steps=3',
        '--shots=2', '--ways=4', '--eval_every=5', '--aggregation=median',
        '--dp_target_delta=1e-6', '--malicious_fraction=0.1',
        '--task_option=a=1', '--task_option=b=2', '--workers=h:1,h:2')
    self.assertEqual(config.client.batch_size, 7)
    self.assertEqual(config.hyperparameters.inner_steps, 3)
    self.assertEqual((config.support.shots, config.episodes.ways), (2, 4))
    self.assertEqual(config.evaluation.every, 5)
    self.assertEqual(config.aggregator.aggregation, 'median')
    self.assertEqual(config.dp_target_delta, 1e-6)
    self.assertEqual(config.attack.malicious_fraction, 0.1)
    self.assertEqual(config.task.options, ('a=1', 'b=2'))
    self.assertEqual(config.workers, ('h:1', 'h:2'))
    self.assertTrue(config.spec.meta_learning and config.personalize)

  def test_unset_defaults_are_the_libraries(self):
    # Flags whose unset value means "the algorithm's (or aggregator's) own".
    config = testing.runner_config()
    self.assertIsNone(config.server.optimizer)
    self.assertIsNone(config.server.learning_rate)
    self.assertIsNone(config.task.num_clients)
    self.assertIsNone(config.aggregator.attack_scale)
    self.assertIsNone(config.aggregator.weiszfeld_iterations)
    self.assertEqual(config.given, frozenset())
    config = testing.runner_config('--server_learning_rate=0.5',
                                   '--attack_scale=3')
    self.assertEqual(config.server.learning_rate, 0.5)
    self.assertEqual(config.aggregator.attack_scale, 3)
    self.assertEqual(config.given, {'server_learning_rate', 'attack_scale'})

  def test_config_json_records_every_flag(self):
    config = testing.runner_config('--rounds=4')
    self.assertEqual(dict(config.flags), {**config.defaults, 'rounds': 4})


if __name__ == '__main__':
  absltest.main()
