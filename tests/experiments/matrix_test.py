"""Every task x algorithm pair the runner offers, and every committed flag
file, builds its process and a round's client datasets of the type the
process takes, or is refused in one line."""

import glob
import os

from absl import flags
from absl.testing import absltest
import pytest
import tensorflow_federated as tff

from fedmeta import aggregation
from fedmeta import algorithms
from fedmeta import data
from fedmeta import experiments
from fedmeta.algorithms import specs
from fedmeta.data import files
from fedmeta.data import partition
from fedmeta.experiments import builders
from fedmeta.experiments import client_data
from fedmeta.experiments import run
from tests import testing

pytestmark = pytest.mark.slow  # Builds some 200 processes (about 7 min).

REFUSALS = (run.RunError, data.DataError, partition.PartitionError,
            aggregation.AggregationError)
FLAG_FILES = sorted(glob.glob(os.path.join(experiments.REPO, 'experiments',
                                           'configs', '*.flags')))


class MatrixTest(absltest.TestCase):

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def _builds_or_refuses(self, config, task=None) -> str:
    """'built' or 'refused', after checking the process takes the client
    datasets of round 1 (or that the refusal is one line)."""
    try:
      experiment = run.prepare(config, task=task)
    except REFUSALS as e:
      self.assertTrue(str(e) and '\n' not in str(e), repr(str(e)))
      return 'refused'
    datasets = experiment.client_datasets(1)
    if isinstance(experiment.process, builders.PerClientModels):
      client_type = experiment.process.client_data_type
      datasets = datasets.datasets
    else:
      client_type = experiment.process.next.type_signature.parameter[1].member
    self.assertNotEmpty(datasets)
    for dataset in datasets[:2]:
      client_type.check_assignable_from(tff.SequenceType(
          tff.types.tensorflow_to_type(dataset.element_spec)))
    return 'built'

  def test_every_task_with_every_algorithm(self):
    for task_name in data.TASKS:
      with self.subTest(task=task_name):
        try:
          task = client_data.load_task(testing.runner_config(
              f'--task={task_name}'))
        except data.DataError as e:  # Its files are absent here.
          self.skipTest(f'needs the real datasets ({e})')
        for algorithm, spec in algorithms.ALGORITHMS.items():
          config = testing.runner_config(f'--task={task_name}',
                                         f'--algorithm={algorithm}',
                                         '--clients_per_round=2')
          # With the default flags every algorithm trains on every task,
          # but those that take episodes only, which need --ways, and
          # pFedHN where its hypernetwork outgrows the runner's budget
          # (builders.MAX_SERVER_ENTRIES: femnist's CNN, sinusoid's 10^5
          # clients).
          outcome = self._builds_or_refuses(config, task)
          if spec.per_client_models:
            continue
          self.assertEqual(
              outcome,
              'refused' if spec.data is specs.Data.EPISODIC else 'built',
              algorithm)

  def test_every_flag_file(self):
    self.assertNotEmpty(FLAG_FILES)
    for path in FLAG_FILES:
      with self.subTest(flagfile=os.path.basename(path)):
        config = testing.runner_config(f'--flagfile={path}')
        try:
          self.assertEqual(self._builds_or_refuses(config), 'built')
        except files.NoDataDir as e:
          self.skipTest(f'needs the real datasets ({e})')


if __name__ == '__main__':
  absltest.main()
