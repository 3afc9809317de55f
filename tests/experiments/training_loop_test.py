"""The round loop in process: resuming equals not stopping, to the last bit."""

import csv
import os
import shutil
import signal
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta.experiments import curves
from fedmeta.experiments import training_loop
from fedmeta import algorithms
from fedmeta import runtime
from tests import testing

SIZES = [6, 9, 5, 8, 7]


def _process(name):
  tf.keras.utils.set_random_seed(0)  # The same initial weights every time.
  model = testing.softmax_regression(hidden=3)
  if name == 'fed_maml':
    return algorithms.build_fed_maml(model, inner_steps=2)
  if name == 'reptile_annealed':
    # Inner Adam on minibatches, the outer step annealed: the rate schedule
    # and the round it is at are in the checkpointed state.
    return algorithms.build_reptile(
        model, inner_steps=3, inner_batch_size=2,
        inner_optimizer=tff.learning.optimizers.build_adam(0.05, beta_1=0.0),
        server_optimizer=tff.learning.optimizers.schedule_learning_rate(
            tff.learning.optimizers.build_sgdm(1.0),
            lambda i: 1.0 - tf.cast(i, tf.float32) / 4))
  return algorithms.build_fed_adam(model)


def _client_datasets(name, clients_per_round=2):
  """Round -> datasets, depending on the round alone, as the loop requires."""
  if name in ('fed_maml', 'reptile_annealed'):
    clients = [testing.flagged_dataset(x, y, s, batch_size=32)
               for x, y, s in testing.meta_clients(SIZES)]
  else:
    clients = testing.client_datasets(SIZES)
  def datasets(round_num):
    rng = np.random.default_rng(round_num)
    return [clients[i] for i in rng.choice(len(clients), clients_per_round,
                                           replace=False)]
  return datasets


class TrainingLoopTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    runtime.set_local_context()

  def _dir(self):
    path = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, path)
    return path

  def _run(self, name, output_dir, rounds, **kwargs):
    process = _process(name)
    lines = []
    state = training_loop.run(
        process=process, client_datasets_fn=_client_datasets(name),
        evaluation_fn=None, rounds=rounds, eval_every=1,
        output_dir=output_dir, summary_extra={}, print_fn=lines.append,
        **kwargs)
    return process.get_model_weights(state), lines

  @parameterized.parameters('fed_adam', 'fed_maml', 'reptile_annealed')
  def test_resumed_run_equals_uninterrupted_run(self, name):
    whole, _ = self._run(name, self._dir(), rounds=5)
    out = self._dir()
    self._run(name, out, rounds=2)
    resumed, lines = self._run(name, out, rounds=5)
    self.assertEqual(lines[0], 'resuming after round 2 from '
                     f'{os.path.join(out, "checkpoints")}')
    self.assertEqual(testing.max_abs_diff(whole, resumed), 0.0)
    saved = training_loop.load_model_weights(
        os.path.join(out, 'model_weights.npz'))
    self.assertEqual(testing.max_abs_diff(resumed, saved), 0.0)
    with open(os.path.join(out, 'metrics.csv')) as f:
      self.assertEqual([r['round'] for r in csv.DictReader(f)],
                       ['1', '2', '3', '4', '5'])

  def test_rounds_after_the_last_checkpoint_are_rerun_not_duplicated(self):
    whole_dir = self._dir()
    whole, _ = self._run('fed_adam', whole_dir, rounds=4)
    out = self._dir()
    self._run('fed_adam', out, rounds=4, checkpoint_every=3)
    # As if killed after round 4's metrics were written, before its checkpoint.
    shutil.rmtree(os.path.join(out, 'checkpoints', 'round_4'))
    os.makedirs(os.path.join(out, 'checkpoints', 'round_4_temp1234'))
    resumed, lines = self._run('fed_adam', out, rounds=4)
    self.assertStartsWith(lines[0], 'resuming after round 3 ')
    self.assertLen(lines, 2)
    self.assertEqual(testing.max_abs_diff(whole, resumed), 0.0)
    self.assertEqual(sorted(os.listdir(os.path.join(out, 'checkpoints'))),
                     ['round_0', 'round_3', 'round_4'])
    rows = curves.read_rows(os.path.join(out, 'metrics.csv'))
    self.assertEqual([r['round'] for r in rows], ['1', '2', '3', '4'])
    expected = curves.read_rows(os.path.join(whole_dir, 'metrics.csv'))
    self.assertEqual([r['train/loss'] for r in rows],
                     [r['train/loss'] for r in expected])

  def test_keeps_initial_and_last_checkpoints(self):
    out = self._dir()
    self._run('fed_adam', out, rounds=7)
    self.assertEqual(
        sorted(os.listdir(os.path.join(out, 'checkpoints')),
               key=lambda d: int(d.split('_')[1])),
        ['round_0', 'round_5', 'round_6', 'round_7'])
    self.assertEqual(training_loop.last_checkpoint_round(out), 7)
    self.assertIsNone(training_loop.last_checkpoint_round(self._dir()))


  def _take_ctrl_c(self):
    # As from a terminal: a background job (CI) starts with SIGINT ignored,
    # and Python then installs no handler of its own.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    self.addCleanup(signal.signal, signal.SIGINT, previous)

  def _rounds_and_checkpoint(self, out):
    rows = curves.read_rows(os.path.join(out, 'metrics.csv'))
    return ([int(r['round']) for r in rows],
            training_loop.last_checkpoint_round(out))

  @parameterized.named_parameters(
      # As C code that calls back into Python may do.
      ('swallowed', None),
      # As TF's tensor conversion did in CI.
      ('turned_into_another_error', SystemError(
          '<built-in method __array__> returned a result with an exception '
          'set')))
  def test_ctrl_c_lost_in_c_code_stops_before_the_round_is_written(
      self, error_made_of_it):
    def lose_ctrl_c(round_num):
      if round_num == 3:
        try:
          signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt as e:
          if error_made_of_it:
            raise error_made_of_it from e
      return {}
    self._take_ctrl_c()
    out = self._dir()
    with self.assertRaises(KeyboardInterrupt):
      self._run('fed_adam', out, rounds=6, round_metrics_fn=lose_ctrl_c)
    self.assertEqual(self._rounds_and_checkpoint(out), ([1, 2], 2))
    self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

  def test_error_without_ctrl_c_is_raised_as_it_is(self):
    def fail(round_num):
      if round_num == 2:
        raise SystemError('not an interrupt')
      return {}
    self._take_ctrl_c()
    with self.assertRaisesRegex(SystemError, 'not an interrupt'):
      self._run('fed_adam', self._dir(), rounds=3, round_metrics_fn=fail)

  def test_ctrl_c_during_a_checkpoint_lets_it_finish(self):
    save = tff.program.FileProgramStateManager.save

    async def interrupted_save(manager, state, version):
      if version == 3:
        signal.raise_signal(signal.SIGINT)
      await save(manager, state, version)

    self._take_ctrl_c()
    out = self._dir()
    with mock.patch.object(tff.program.FileProgramStateManager, 'save',
                           interrupted_save):
      with self.assertRaises(KeyboardInterrupt):
        self._run('fed_adam', out, rounds=6)
    self.assertEqual(self._rounds_and_checkpoint(out), ([1, 2, 3], 3))
    self.assertEmpty([e for e in os.listdir(os.path.join(out, 'checkpoints'))
                      if 'temp' in e])


class FlattenMetricsTest(absltest.TestCase):

  def test_nested_mappings_sequences_and_empty_nodes(self):
    metrics = {'train': {'loss': np.float32(0.5)}, 'clients': (3, 4),
               'aggregator': (), 'empty': {}}
    self.assertEqual(training_loop.flatten_metrics(metrics, 'p/'),
                     {'p/train/loss': 0.5, 'p/clients/0': 3, 'p/clients/1': 4})
    self.assertEqual(training_loop.flatten_metrics(()), {})


class CurvesTest(absltest.TestCase):

  def test_draws_loss_and_accuracy_columns_only(self):
    rows = [{'round': '1', 'train/loss': '2.0', 'eval/loss': '',
             'train/accuracy': '0.1', 'round_seconds': '0.5'},
            {'round': '2', 'train/loss': '1.5', 'eval/loss': '1.7',
             'train/accuracy': '0.3', 'round_seconds': '0.4',
             'eval/after/loss/mean': '1.2', 'eval/after/loss/p10': '0.9'}]
    path = os.path.join(tempfile.mkdtemp(), 'curves.png')
    self.assertEqual(curves.plot(rows, path),
                     ['eval/after/loss/mean', 'eval/loss', 'train/loss',
                      'train/accuracy'])
    with open(path, 'rb') as f:
      self.assertEqual(f.read(4), b'\x89PNG')


if __name__ == '__main__':
  absltest.main()
