"""pFedHN in the runner: each client's key, its own model, and both
evaluation protocols, against the library's pFedHN called directly."""

from unittest import mock

from absl import flags
from absl.testing import absltest
import numpy as np
import tensorflow_federated as tff

from fedmeta import aggregation
from fedmeta import algorithms
from fedmeta import runtime
from fedmeta.algorithms import pfedhn
from fedmeta.experiments import builders
from fedmeta.experiments import client_data
from fedmeta.experiments import run
from tests import testing

ARGS = ['--task=digits', '--num_clients=6', '--clients_per_round=3',
        '--algorithm=pfedhn', '--client_learning_rate=0.05']


class PerClientModelsTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()
    self.experiment = run.prepare(testing.runner_config(*ARGS))

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def test_aggregation_flags_reach_the_uploads_aggregator(self):
    flags.FLAGS.unparse_flags()
    experiment = run.prepare(testing.runner_config(
        *ARGS, '--dp_noise_multiplier=0', '--dp_clip=0.01'))
    round_clients = experiment.client_datasets(1)
    process = experiment.process
    output = process.next(process.initialize(), round_clients)
    direct = pfedhn.build_pfedhn(
        experiment.task.model_fn(), num_clients=6, clients_per_round=3,
        seed=0, model_aggregator=aggregation.dp_mean_factory(
            0.0, 3, clip=0.01),
        **algorithms.ALGORITHMS['pfedhn'].kwargs(
            experiment.config.hyperparameters))
    theirs = direct.next(direct.initialize(), round_clients.keys,
                         round_clients.datasets).state
    self.assertEqual(testing.max_abs_diff(
        process.get_model_weights(output.state).trainable,
        process.get_model_weights(theirs).trainable), 0.0)
    # The clip binds: the round differs from the unclipped one.
    plain = self.experiment.process
    self.assertGreater(testing.max_abs_diff(
        process.get_model_weights(output.state).trainable,
        plain.get_model_weights(plain.next(
            plain.initialize(), round_clients).state).trainable), 1e-6)
    self.assertIn('dp_query_metrics', output.metrics['aggregator'])

  def test_a_round_keys_each_client_by_its_training_index(self):
    experiment = self.experiment
    round_clients = experiment.client_datasets(1)
    self.assertIsInstance(round_clients, client_data.Keyed)
    ids = experiment.task.train.client_ids
    self.assertLen(round_clients.keys, 3)
    # The keyed datasets are those clients' own, batched as FedAvg's.
    for key, dataset in zip(round_clients.keys, round_clients.datasets):
      own = experiment.task.train.create_tf_dataset_for_client(ids[key])
      self.assertEqual(sum(len(b['y']) for b in dataset.as_numpy_iterator()),
                       sum(1 for _ in own.as_numpy_iterator()))
    # The round is pFedHN's own with those keys and datasets, its upload a
    # row for each of the round's 3 clients.
    process = experiment.process
    state = process.initialize()
    ours = process.next(state, round_clients).state
    direct = pfedhn.build_pfedhn(
        experiment.task.model_fn(), num_clients=6, clients_per_round=3,
        seed=0,
        **algorithms.ALGORITHMS['pfedhn'].kwargs(
            experiment.config.hyperparameters))
    theirs = direct.next(direct.initialize(), round_clients.keys,
                         round_clients.datasets).state
    self.assertEqual(testing.max_abs_diff(
        process.get_model_weights(ours).trainable,
        process.get_model_weights(theirs).trainable), 0.0)

  def test_a_hypernetwork_over_the_budget_is_refused(self):
    with mock.patch.object(builders, 'MAX_SERVER_ENTRIES', 1000):
      with self.assertRaisesRegex(
          run.RunError, r"^--algorithm: pfedhn's hypernetwork for this "
          r"task's model \(.* weights\) would hold .* entries, over the 1,000 "
          'this runner allows; give the task a smaller model$'):
        run.prepare(testing.runner_config(*ARGS))

  def test_server_weights_round_trip(self):
    process = self.experiment.process
    state = process.initialize()
    weights = process.get_model_weights(state)
    for key in (0, 5):
      self.assertEqual(testing.max_abs_diff(
          process.client_weights(weights, key).trainable,
          process._process.get_client_weights(state, key).trainable), 0.0)  # pylint: disable=protected-access

  def test_evaluation_protocols(self):
    experiment = self.experiment
    task, config, process = experiment.task, experiment.config, (
        experiment.process)
    split = client_data.support_query_split(task, config)
    evaluate = builders.build_per_client_evaluation(task, config, process,
                                                    split)
    weights = process.get_model_weights(process.initialize())
    fed_eval = algorithms.build_fed_eval(task.model_fn())
    # A training client: its generated model on all its test data.
    cid = task.test.client_ids[1]
    (result,) = evaluate(weights, [cid])
    expected = fed_eval(process.client_weights(weights, 1),
                        [task.test.create_tf_dataset_for_client(cid)
                         .batch(256)])
    self.assertEqual(list(result), ['participating'])
    for name, value in expected.items():
      self.assertAlmostEqual(float(result['participating'][name]),
                             float(value), places=6)
    # A client unseen in training: an embedding learned on its support set,
    # scored on its query set. The evaluation's task is digits' own with
    # its test clients renamed, so they are new.
    renamed = tff.simulation.datasets.ClientData.from_clients_and_tf_fn(
        ['new_' + c for c in task.test.client_ids],
        lambda name: task.test.create_tf_dataset_for_client(name[4:]))
    new_task = task._replace(test=renamed)
    evaluate = builders.build_per_client_evaluation(
        new_task, config, process, split)
    (result,) = evaluate(weights, ['new_' + cid])
    flagged = split(renamed).create_tf_dataset_for_client('new_' + cid)
    examples = list(flagged.as_numpy_iterator())
    support = [e for e in examples if e['support']]
    query = [e for e in examples if not e['support']]
    self.assertNotEmpty(support)
    self.assertNotEmpty(query)

    def batches(part, size):
      return testing.as_dataset(np.stack([e['x'] for e in part]),
                                np.stack([e['y'] for e in part]), size)

    _, theta = pfedhn.learn_new_client(
        task.model_fn(), process.server_state(weights),
        batches(support, config.client.batch_size), epochs=1,
        optimizer=tff.learning.optimizers.build_sgdm(0.01))
    expected = fed_eval(theta, [batches(query, 256)])
    self.assertEqual(list(result), ['new_client'])
    for name, value in expected.items():
      self.assertAlmostEqual(float(result['new_client'][name]), float(value),
                             places=5)


if __name__ == '__main__':
  absltest.main()
