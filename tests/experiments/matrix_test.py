"""Every task x algorithm pair the runner offers, and every committed flag
file, builds its process and a round's client datasets of the type the
process takes, or is refused in one line."""

import glob
import os

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized
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

# Builds some 200 processes (about 7 min); one test a task and a flag file,
# so that `pytest -n` spreads them.
pytestmark = pytest.mark.slow

REFUSALS = (run.RunError, data.DataError, partition.PartitionError,
            aggregation.AggregationError)
CONFIGS = os.path.join(experiments.REPO, 'experiments', 'configs')
FLAG_FILES = sorted(glob.glob(os.path.join(CONFIGS, '*.flags')))


class MatrixTest(parameterized.TestCase):

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

  @parameterized.parameters(*data.TASKS)
  def test_every_algorithm(self, task_name):
    try:
      task = client_data.load_task(testing.runner_config(
          f'--task={task_name}'))
    except data.DataError as e:  # Its files are absent here.
      self.skipTest(f'needs the real datasets ({e})')
    for algorithm, spec in algorithms.ALGORITHMS.items():
      config = testing.runner_config(f'--task={task_name}',
                                     f'--algorithm={algorithm}',
                                     '--clients_per_round=2')
      # With the default flags every algorithm trains on every task, but
      # those that take episodes only, which need --ways, and pFedHN where
      # its hypernetwork outgrows the runner's budget
      # (builders.MAX_SERVER_ENTRIES: femnist's CNN, sinusoid's 10^5
      # clients).
      outcome = self._builds_or_refuses(config, task)
      if spec.per_client_models:
        continue
      self.assertEqual(
          outcome, 'refused' if spec.data is specs.Data.EPISODIC else 'built',
          algorithm)

  def test_flag_files_exist(self):
    self.assertNotEmpty(FLAG_FILES)

  @parameterized.parameters(*(os.path.basename(p) for p in FLAG_FILES))
  def test_flag_file(self, name):
    config = testing.runner_config(
        f'--flagfile={os.path.join(CONFIGS, name)}')
    try:
      self.assertEqual(self._builds_or_refuses(config), 'built')
    except files.NoDataDir as e:
      self.skipTest(f'needs the real datasets ({e})')


if __name__ == '__main__':
  absltest.main()
