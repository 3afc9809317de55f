"""The runner as a user runs it: a subprocess, its files and its errors."""

import csv
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import pytest
import numpy as np

import tensorflow as tf  # pylint: disable=g-bad-import-order
from fedmeta.experiments import training_loop
from fedmeta import data
from fedmeta.data import poisoning
from tests import processes
from tests import testing

pytestmark = pytest.mark.slow  # Runs the runner as a process.

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TIMEOUT_S = 300
SMALL = ['--task=digits', '--num_clients=6', '--clients_per_round=3',
         '--client_batch_size=32']


def run(*args, env=None):
  # Pipes on stdout and stderr: a leaked TFF worker would hold them open and
  # make this time out instead of returning when the run is done.
  return subprocess.run(
      [sys.executable, '-m', 'fedmeta.experiments.run', *args], cwd=REPO,
      capture_output=True, text=True, timeout=TIMEOUT_S, check=False, env=env)


# Parses each flag file with the runner's flags, as `--flagfile` would, and
# checks its --task_option values against the task's loader.
_PARSE_FLAGFILES = """
import sys
from absl import flags
from fedmeta.experiments import client_data
from fedmeta.experiments import run

for path in sys.argv[1:]:
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(['run', '--flagfile=' + path])
    client_data.task_options_in_effect(run.config_from_flags())
  except (flags.Error, run.RunError) as e:
    print(f'{path}: {e}')
"""


def _rows(out):
  with open(os.path.join(out, 'metrics.csv')) as f:
    return list(csv.DictReader(f))


def _final_state(out):
  """The leaves of the last checkpoint, as TFF's state manager wrote them."""
  checkpoints = os.path.join(out, 'checkpoints')
  last = max(os.listdir(checkpoints), key=lambda d: int(d.split('_')[1]))
  state = tf.saved_model.load(os.path.join(checkpoints, last))()
  return [np.asarray(v) for v in tf.nest.flatten(state)]


def _tensorboard_steps(out, tag):
  steps = []
  for path in sorted(glob.glob(os.path.join(out, 'tensorboard', '*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      steps += [event.step for v in event.summary.value if v.tag == tag]
  return steps


def _snapshot(out):
  """Every file under `out` with its bytes."""
  files = {}
  for directory, _, names in os.walk(out):
    for name in names:
      with open(os.path.join(directory, name), 'rb') as f:
        files[os.path.relpath(os.path.join(directory, name), out)] = f.read()
  return files


class RunTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.root)

  def test_three_rounds_write_metrics_and_summary(self):
    env, tag = processes.tagged_environ()
    result = run(*SMALL, '--rounds=3', '--eval_every=2',
                 f'--root_output_dir={self.root}', '--experiment_name=e',
                 env=env)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEmpty(processes.live_workers(tag=tag))
    out = os.path.join(self.root, 'e')
    self.assertIn(f'Results in {out}/', result.stdout)
    self.assertEqual(result.stdout.count('round '), 3)
    with open(os.path.join(out, 'metrics.csv')) as f:
      rows = list(csv.DictReader(f))
    self.assertEqual([r['round'] for r in rows], ['1', '2', '3'])
    self.assertTrue(all(float(r['train/loss']) > 0 for r in rows))
    self.assertEqual([bool(r['eval/loss']) for r in rows], [False, True, True])
    with open(os.path.join(out, 'summary.json')) as f:
      summary = json.load(f)
    self.assertEqual(summary['flags']['rounds'], 3)
    self.assertEqual(summary['versions']['tensorflow_federated'], '0.87.0')
    self.assertEqual(summary['resumed_after_round'], 0)
    self.assertEqual(summary['final_metrics']['eval/loss'],
                     float(rows[-1]['eval/loss']))
    with open(os.path.join(out, 'config.json')) as f:
      # The flags, and the loader options they amount to.
      self.assertEqual(json.load(f),
                       {**summary['flags'], 'task_options': {'alpha': 0.5}})
    self.assertEqual(sorted(os.listdir(os.path.join(out, 'checkpoints'))),
                     [f'round_{r}' for r in range(4)])
    self.assertEqual(_tensorboard_steps(out, 'train/loss'), [1, 2, 3])
    self.assertEqual(_tensorboard_steps(out, 'eval/loss'), [2, 3])
    with open(os.path.join(out, 'curves.png'), 'rb') as f:
      self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')
    # The final model, as the last checkpoint holds it.
    state = _final_state(out)
    weights = np.load(os.path.join(out, 'model_weights.npz'))
    self.assertNotEmpty(weights.files)
    for name in weights.files:
      self.assertTrue(any(np.array_equal(weights[name], leaf)
                          for leaf in state), name)

  def test_sigkill_then_rerun_equals_uninterrupted_run(self):
    args = [*SMALL, '--algorithm=fed_adam', '--rounds=4',
            f'--root_output_dir={self.root}']
    self.assertEqual(run(*args, '--experiment_name=whole').returncode, 0)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'fedmeta.experiments.run', *args,
         '--experiment_name=killed'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
      if line.startswith('round 2/4'):
        break
    else:
      self.fail('the run ended before round 2')
    workers = processes.live_workers(parent=proc.pid)
    proc.kill()
    proc.communicate(timeout=TIMEOUT_S)
    self.assertEmpty(processes.wait_dead(workers))
    killed = os.path.join(self.root, 'killed')
    self.assertFalse(os.path.exists(os.path.join(killed, 'summary.json')))

    result = run(*args, '--experiment_name=killed')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertRegex(result.stdout, r'resuming after round [23] ')
    whole = os.path.join(self.root, 'whole')
    for a, b in zip(_final_state(whole), _final_state(killed), strict=True):
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    rows_whole, rows_killed = _rows(whole), _rows(killed)
    self.assertEqual([r['round'] for r in rows_killed], ['1', '2', '3', '4'])
    for a, b in zip(rows_whole, rows_killed):
      for column in a.keys() - {'round_seconds'}:
        self.assertAlmostEqual(float(a[column]), float(b[column]), places=6,
                               msg=column)

  def _continued_equals_uninterrupted(self, args, rounds):
    """Runs `rounds` rounds whole, and in two calls; checks their final
    states are equal and returns the whole run's metrics rows."""
    args = [*args, f'--root_output_dir={self.root}']
    result = run(*args, f'--rounds={rounds}', '--experiment_name=whole')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEqual(run(*args, f'--rounds={rounds - 1}',
                         '--experiment_name=parts').returncode, 0)
    result = run(*args, f'--rounds={rounds}', '--experiment_name=parts')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn(f'resuming after round {rounds - 1} ', result.stdout)
    for a, b in zip(_final_state(os.path.join(self.root, 'whole')),
                    _final_state(os.path.join(self.root, 'parts')),
                    strict=True):
      np.testing.assert_array_equal(a, b)
    return _rows(os.path.join(self.root, 'whole'))

  def test_episodic_run_continued_equals_uninterrupted_run(self):
    rows = self._continued_equals_uninterrupted(
        [*SMALL, '--algorithm=fed_maml', '--ways=3', '--shots=1',
         '--query_shots=2', '--eval_episodes=5', '--eval_query_shots=2'], 3)
    # 3 clients x 3 ways x 2 query examples a round; 5 held-out episodes.
    self.assertEqual([r['train/num_examples'] for r in rows], ['18'] * 3)
    self.assertEqual(rows[-1]['eval/num_clients'], '5')
    self.assertGreater(
        float(rows[-1]['eval/after/loss/ci95']), 0)

  def test_pfedhn_run_continued_equals_uninterrupted_run(self):
    rows = self._continued_equals_uninterrupted(
        [*SMALL, '--algorithm=pfedhn', '--client_learning_rate=0.05'], 3)
    # digits' test clients are its 6 training clients: each scored with its
    # own generated model.
    self.assertEqual(rows[-1]['eval/participating/num_clients'], '6')
    self.assertNotIn('eval/new_client/num_clients', rows[-1])
    # Each client gets its own model, and uploads its delta in its own row
    # of a 3-row sum, a row for each of the round's 3 clients.
    # (update_bytes counts the client's 4-byte weight too.)
    self.assertEqual(int(rows[0]['bytes/client_to_server']),
                     3 * (int(rows[0]['bytes/server_to_client']) + 3 * 4))

  def test_pfedhn_run_with_adaptive_dp_resumes_its_clip(self):
    # Without noise the run is deterministic; the adaptive clip (in the
    # server state) binds, so a resume that lost it would differ.
    rows = self._continued_equals_uninterrupted(
        [*SMALL, '--algorithm=pfedhn', '--client_learning_rate=0.05',
         '--dp_noise_multiplier=0'], 2)
    clips = [float(r['aggregator/dp_query_metrics/clip']) for r in rows]
    self.assertGreater(clips[1], clips[0])  # Most deltas were clipped.
    self.assertIn('privacy/epsilon', rows[-1])

  def test_episodes_per_client_are_tasks_of_the_round(self):
    rows = self._continued_equals_uninterrupted(
        [*SMALL, '--algorithm=fed_maml', '--ways=3', '--shots=1',
         '--query_shots=2', '--episodes_per_client=2', '--eval_episodes=5',
         '--eval_query_shots=2'], 2)
    # 3 clients x 2 episodes x 3 ways x 2 query examples; a task a batch.
    self.assertEqual([r['train/num_examples'] for r in rows], ['36'] * 2)
    self.assertEqual([r['train/num_batches'] for r in rows], ['6'] * 2)

  def test_run_made_before_the_episode_flags_resumes(self):
    added = ('resample_support', 'ways', 'query_shots', 'eval_episodes',
             'eval_query_shots', 'task_options', 'eval_support',
             'backdoor_target', 'backdoor_fraction', 'trigger_size')

    def make_old(name, *args):
      self.assertEqual(run(*SMALL, *args, '--rounds=1',
                           f'--root_output_dir={self.root}',
                           f'--experiment_name={name}').returncode, 0)
      path = os.path.join(self.root, name, 'config.json')
      with open(path) as f:
        config = json.load(f)
      with open(path, 'w') as f:
        json.dump({k: v for k, v in config.items() if k not in added}, f)

    make_old('avg')
    result = run(*SMALL, '--rounds=2', f'--root_output_dir={self.root}',
                 '--experiment_name=avg')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('resuming after round 1 ', result.stdout)
    # A meta-learning run then had one fixed support/query split.
    make_old('meta', '--algorithm=fed_maml', '--noresample_support')
    args = [*SMALL, '--algorithm=fed_maml', '--rounds=2',
            f'--root_output_dir={self.root}', '--experiment_name=meta']
    result = run(*args)
    self.assertEqual(result.returncode, 2)
    self.assertEqual(
        result.stderr.strip(),
        f'error: --resample_support: the run in {self.root}/meta was made '
        'before this flag and ran as --noresample_support; rerun with '
        '--noresample_support to resume it, or choose another '
        '--experiment_name')
    result = run(*args, '--noresample_support')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('resuming after round 1 ', result.stdout)

  def test_resume_compares_the_loader_options_in_effect(self):
    args = [*SMALL, f'--root_output_dir={self.root}', '--experiment_name=o']
    self.assertEqual(run(*args, '--rounds=1').returncode, 0)
    out = os.path.join(self.root, 'o')
    # digits' alpha defaults to 0.5: given or not, the same run.
    result = run(*args, '--rounds=2', '--task_option=alpha=0.50')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('resuming after round 1 ', result.stdout)
    before = _snapshot(out)
    result = run(*args, '--rounds=3', '--task_option=alpha=0.3')
    self.assertEqual(result.returncode, 2)
    self.assertEqual(
        result.stderr.strip(),
        f'error: --task_option: alpha=0.5 in the run in {out}, alpha=0.3 '
        'now; rerun with --task_option=alpha=0.5 to resume it, or choose '
        'another --experiment_name')
    self.assertEqual(_snapshot(out), before)

  def test_run_made_under_an_older_loader_default(self):
    # Shakespeare's source was tiny-shakespeare before LEAF's plays became
    # the default: such a run resumes only with source=tiny.
    script = """
from absl import flags
from fedmeta.experiments import client_data
from fedmeta.experiments import resume
from fedmeta.experiments import run
old = {'task': 'shakespeare', 'task_option': ['stride=81']}
for options in ([], ['source=tiny'], ['source=tiny', 'stride=81']):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['run', '--task=shakespeare'] +
              ['--task_option=' + o for o in options])
  config = run.config_from_flags()
  try:
    resume._check_task_options('/runs/old', old, config,
                               client_data.task_options_in_effect(config))
    print('resumes')
  except run.RunError as e:
    print(e)
"""
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                            capture_output=True, text=True,
                            timeout=TIMEOUT_S, check=False)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEqual(result.stdout.splitlines(), [
        '--task_option: source=tiny in the run in /runs/old, source=plays '
        'now; rerun with --task_option=source=tiny to resume it, or choose '
        'another --experiment_name',
        '--task_option: stride=81 in the run in /runs/old, stride=1 now; '
        'rerun with --task_option=stride=81 to resume it, or choose another '
        '--experiment_name',
        'resumes'])

  def test_rerun_of_finished_run_asks_for_more_rounds(self):
    args = [*SMALL, f'--root_output_dir={self.root}', '--experiment_name=f']
    self.assertEqual(run(*args, '--rounds=2').returncode, 0)
    out = os.path.join(self.root, 'f')
    before = _snapshot(out)
    again = run(*args, '--rounds=2')
    self.assertEqual(again.returncode, 2)
    self.assertIn('--rounds: the run in', again.stderr)
    self.assertEqual(_snapshot(out), before)
    more = run(*args, '--rounds=3')
    self.assertEqual(more.returncode, 0, more.stderr)
    self.assertIn('resuming after round 2', more.stdout)
    self.assertEqual([r['round'] for r in _rows(out)], ['1', '2', '3'])

  def test_rerun_with_other_flags_is_refused(self):
    args = [*SMALL, '--rounds=1', f'--root_output_dir={self.root}',
            '--experiment_name=g']
    self.assertEqual(run(*args).returncode, 0)
    out = os.path.join(self.root, 'g')
    before = _snapshot(out)
    result = run(*args, '--rounds=2', '--client_learning_rate=0.3')
    self.assertEqual(result.returncode, 2)
    self.assertEqual(
        result.stderr.strip(),
        f'error: --client_learning_rate: 0.3 differs from the 0.1 of the run '
        f'in {out}; rerun with the same flags to resume it, or choose another '
        '--experiment_name')
    self.assertEqual(_snapshot(out), before)

  def test_sigint_mid_run_stops_worker_and_keeps_metrics(self):
    proc = subprocess.Popen(
        [sys.executable, '-m', 'fedmeta.experiments.run', *SMALL, '--rounds=500',
         f'--root_output_dir={self.root}', '--experiment_name=i'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=processes.takes_sigint_as_from_a_terminal)
    self.assertTrue(proc.stdout.readline().startswith('round 1/500'))
    workers = processes.live_workers(parent=proc.pid)
    self.assertLen(workers, 1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    self.assertEqual(proc.returncode, 130, stderr)
    self.assertNotIn('Traceback', stderr)
    self.assertIn('interrupted', stderr)
    self.assertEmpty(processes.wait_dead(workers))
    out = os.path.join(self.root, 'i')
    self.assertEmpty([e for e in os.listdir(out) if 'temp' in e])
    with open(os.path.join(out, 'metrics.csv')) as f:
      rounds = [int(r['round']) for r in csv.DictReader(f)]
    self.assertEqual(rounds, list(range(1, len(rounds) + 1)))
    self.assertNotEmpty(rounds)

  @parameterized.named_parameters(
      ('flag_parsing', ['--rounds=0'], 1, '--rounds'),
      ('refusal', ['--clients_per_round=7'], 2, '--clients_per_round'))
  def test_bad_flag_is_one_line_error(self, args, code, flag):
    # The process's side of refusals_test.py: exit code and one line.
    result = run(*SMALL, '--rounds=1', f'--root_output_dir={self.root}', *args)
    self.assertEqual(result.returncode, code)
    self.assertNotIn('Traceback', result.stderr)
    self.assertIn(flag, result.stderr)

  def test_protonet_run_continued_equals_uninterrupted_run(self):
    # Needs ../shared/data (Omniglot).
    rows = self._continued_equals_uninterrupted(
        ['--task=omniglot', '--task_option=clients_by=pools',
         '--task_option=split=background_small', '--task_option=norm=batch',
         '--algorithm=fed_protonet', '--ways=3', '--train_ways=4',
         '--shots=1', '--query_shots=2', '--episodes_per_client=2',
         '--clients_per_round=2', '--eval_episodes=5',
         '--eval_query_shots=3'], 2)
    # 2 clients x 2 episodes x 4 ways x 2 queries; a step an episode.
    self.assertEqual([r['train/num_examples'] for r in rows], ['32'] * 2)
    self.assertEqual([r['train/num_batches'] for r in rows], ['4'] * 2)
    self.assertEqual(rows[-1]['eval/num_clients'], '5')
    self.assertBetween(float(
        rows[-1]['eval/after/sparse_categorical_accuracy/mean']), 0.0, 1.0)
    self.assertNotIn('eval/before/loss/mean', rows[-1])

  def test_round_too_small_for_krum_stops_with_one_line(self):
    # Rounds of 3 sampled clients, of which 1 or 2 drop out: fewer than the
    # 2f + 3 = 3 Krum needs against f = 0.
    result = run(*SMALL, '--rounds=3', '--aggregation=krum', '--byzantine=0',
                 '--dropout_rate=0.7', f'--root_output_dir={self.root}')
    self.assertEqual(result.returncode, 2, result.stderr)
    self.assertRegex(result.stderr.strip(),
                     r'^error: --byzantine: krum: a round of [12] clients '
                     r'needs n >= 2f \+ 3 = 3 for byzantine f = 0 \(clients '
                     r'dropped out\); a rerun meets the same round: run again '
                     r'under another --experiment_name with a lower '
                     r'--dropout_rate or more --clients_per_round$')

  def test_class_pools_without_ways_is_one_line_error(self):
    # Their labels are global class ids, beyond the model's outputs.
    result = run('--task=omniglot', '--task_option=clients_by=pools',
                 '--task_option=split=background_small',
                 '--algorithm=fed_maml', '--shots=1', '--rounds=1',
                 f'--root_output_dir={self.root}')
    self.assertEqual(result.returncode, 2)
    self.assertEqual(result.stderr.strip(),
                     'error: --ways: task omniglot with these options holds '
                     'class pools for episodes; give --ways and --shots')

  def test_missing_data_is_one_line_error(self):
    result = run('--task=femnist', '--data_dir=/nonexistent', '--rounds=1',
                 f'--root_output_dir={self.root}')
    self.assertEqual(result.returncode, 2)
    self.assertEqual(result.stderr.strip(),
                     'error: data_dir: /nonexistent does not exist')

  @parameterized.named_parameters(
      ('csv', 'heart_disease', 'processed.va.data', b'63,1,x,?\n',
       'processed.va.data: line 1'),
      ('npz', 'femnist', 'femnist_leaf_subset.npz', b'PK\x03\x04broken',
       'femnist_leaf_subset.npz: not a readable .npz'))
  def test_malformed_data_is_one_line_error(self, task, name, content, error):
    data_dir = os.path.join(self.root, 'data')
    shutil.copytree(os.path.join(testing.data_dir(), task),
                    os.path.join(data_dir, task))
    with open(os.path.join(data_dir, task, name), 'wb') as f:
      f.write(content)
    result = run(f'--task={task}', f'--data_dir={data_dir}', '--rounds=1',
                 f'--root_output_dir={self.root}')
    self.assertEqual(result.returncode, 2)
    self.assertEqual(len(result.stderr.strip().splitlines()), 1,
                     result.stderr)
    self.assertIn(error, result.stderr)
    self.assertFalse(os.path.exists(
        os.path.join(self.root, f'{task}_fed_avg_seed0')))

  def test_committed_configs_parse(self):
    configs = glob.glob(os.path.join(REPO, 'experiments', 'configs', '*.flags'))
    self.assertGreater(len(configs), 20)
    result = subprocess.run(
        [sys.executable, '-c', _PARSE_FLAGFILES, *configs], cwd=REPO,
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertEqual(result.stdout, '')

  @parameterized.named_parameters(
      ('meta_learning', ['--algorithm=fed_maml'], '1000'),
      # FedAvg(Meta): a FedAvg model adapted to each held-out client.
      ('fed_avg', ['--algorithm=fed_avg', '--personalization_eval',
                   '--eval_inner_steps=3', '--eval_clients=50'], '50'))
  def test_run_reports_personalization(self, algorithm_flags, eval_clients):
    result = run('--task=sinusoid', '--num_clients=200', *algorithm_flags,
                 '--rounds=2', '--clients_per_round=3', '--inner_steps=2',
                 f'--root_output_dir={self.root}', '--experiment_name=m')
    self.assertEqual(result.returncode, 0, result.stderr)
    with open(os.path.join(self.root, 'm', 'metrics.csv')) as f:
      rows = list(csv.DictReader(f))
    self.assertLen(rows, 2)
    for stage in ('before', 'after'):
      for stat in ('mean', 'p10', 'p50', 'p90'):
        self.assertGreater(float(rows[-1][f'eval/{stage}/loss/{stat}']), 0)
    self.assertLess(float(rows[-1]['eval/after/loss/mean']),
                    float(rows[-1]['eval/before/loss/mean']))
    self.assertEqual(rows[-1]['eval/num_clients'], eval_clients)

  def test_dp_run_with_every_client_dropping_reports_epsilon(self):
    result = run(*SMALL, '--rounds=2', '--dp_noise_multiplier=1.0',
                 '--dp_clip=0.5', '--dropout_rate=1.0',
                 f'--root_output_dir={self.root}', '--experiment_name=dp')
    self.assertEqual(result.returncode, 0, result.stderr)
    out = os.path.join(self.root, 'dp')
    rows = _rows(out)
    self.assertEqual([r['clients_reporting'] for r in rows], ['0', '0'])
    self.assertEqual([r['bytes/client_to_server'] for r in rows], ['0', '0'])
    epsilons = [float(r['privacy/epsilon']) for r in rows]
    self.assertLess(0, epsilons[0])
    self.assertLess(epsilons[0], epsilons[1])
    for leaf in _final_state(out):
      if np.issubdtype(leaf.dtype, np.floating):
        self.assertTrue(np.all(np.isfinite(leaf)))

  @parameterized.parameters(
      ['--aggregation=median'], ['--aggregation=trimmed_mean'],
      ['--aggregation=krum', '--byzantine=0', '--malicious_fraction=0.3'],
      ['--aggregation=bulyan', '--byzantine=0'],
      ['--aggregation=multi_krum', '--byzantine=0', '--multi_krum_keep=2',
       '--malicious_fraction=0.3', '--attack=alie', '--alie_z=1.0'],
      ['--aggregation=geometric_median', '--weiszfeld_iterations=2',
       '--malicious_fraction=0.3', '--attack=ipm'],
      ['--aggregation=centered_clip', '--clip_norm=1.0'])
  def test_robust_aggregation_run(self, *aggregation_flags):
    # Most of their aggregators report `()` as metrics.
    result = run(*SMALL, '--rounds=2', *aggregation_flags,
                 f'--root_output_dir={self.root}', '--experiment_name=r')
    self.assertEqual(result.returncode, 0, result.stderr)
    rows = _rows(os.path.join(self.root, 'r'))
    self.assertLen(rows, 2)
    self.assertTrue(all(np.isfinite(float(r['train/loss'])) for r in rows))

  def test_describe(self):
    result = run('--task=heart_disease', '--describe')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('train: 4 clients, 486 examples', result.stdout)

  def test_tfds_task_offline(self):
    manual = os.path.join(self.root, 'manual')
    os.makedirs(manual)
    # tfds's tiny_shakespeare downloads karpathy's input.txt, this file.
    shutil.copy(os.path.join(testing.data_dir(), 'shakespeare',
                             'tinyshakespeare.txt'),
                os.path.join(manual, 'input.txt'))
    args = ['--task=tfds:tiny_shakespeare',
            f'--data_dir={self.root}/tensorflow_datasets', '--num_clients=4',
            '--task_option=partition=chunks']
    result = run(*args, '--describe')
    self.assertEqual(result.returncode, 2)
    self.assertEqual(
        result.stderr.strip().splitlines()[-1],
        f'error: tfds:tiny_shakespeare: not prepared in {self.root}/'
        'tensorflow_datasets; pass manual_dir (a folder with its source '
        'files) or download=True')
    result = run(*args, f'--task_option=manual_dir={manual}', '--describe')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('task tfds:tiny_shakespeare\n  train: 4 clients, 1003534 '
                  'examples, per client min 250883 / median 250884 / max '
                  '250884', result.stdout)
    self.assertIn('elements: x int32 [80], y int32 []', result.stdout)

  def test_backdoor_success_rate_is_the_models_on_triggered_images(self):
    result = run(*SMALL, '--rounds=3', '--malicious_fraction=0.5',
                 '--attack=backdoor', '--backdoor_target=2',
                 f'--root_output_dir={self.root}', '--experiment_name=b')
    self.assertEqual(result.returncode, 0, result.stderr)
    out = os.path.join(self.root, 'b')
    rows = _rows(out)
    attackers = poisoning.attackers(
        data.load('digits', num_clients=6).train.client_ids, 0.5, 0)
    self.assertLen(attackers, 3)
    self.assertEqual(sum(int(r['clients_poisoning']) for r in rows),
                     sum(c in attackers for r in range(1, 4) for c in
                         training_loop.build_uniform_sampler(
                             [f'client_{i:04d}' for i in range(6)], 3, 0)(r)))
    # By hand: the final MLP on every test image not of class 2, with a
    # 3x3 checkerboard (1 at its top-left) in the 8x8 image's corner.
    task = data.load('digits', num_clients=6)
    x = np.concatenate([testing.client_arrays_of(task.test, c)['x']
                        for c in task.test.client_ids])
    y = np.concatenate([testing.client_arrays_of(task.test, c)['y']
                        for c in task.test.client_ids])
    images = x[y != 2].reshape(-1, 8, 8).copy()
    images[:, 5:, 5:] = (np.indices((3, 3)).sum(0) % 2 == 0)
    with np.load(os.path.join(out, 'model_weights.npz')) as npz:
      k1, b1, k2, b2 = (npz[f'trainable/{i}'] for i in range(4))
    logits = np.maximum(images.reshape(-1, 64) @ k1 + b1, 0) @ k2 + b2
    self.assertAlmostEqual(float(rows[-1]['eval/backdoor_success_rate']),
                           np.mean(np.argmax(logits, 1) == 2), places=6)

  def test_output_root_that_is_a_file_is_refused(self):
    path = os.path.join(self.root, 'file')
    with open(path, 'w') as f:
      f.write('keep')
    result = run(*SMALL, '--rounds=1', f'--root_output_dir={path}')
    self.assertEqual(result.returncode, 2)
    self.assertNotIn('Traceback', result.stderr)
    self.assertIn('is a file', result.stderr)
    with open(path) as f:
      self.assertEqual(f.read(), 'keep')

  def test_existing_run_is_not_overwritten(self):
    out = os.path.join(self.root, 'done')
    os.makedirs(out)
    with open(os.path.join(out, 'metrics.csv'), 'w') as f:
      f.write('round\n1\n')
    result = run(*SMALL, '--rounds=1', f'--root_output_dir={self.root}',
                 '--experiment_name=done')
    self.assertEqual(result.returncode, 2)
    self.assertIn('already holds a run', result.stderr)
    with open(os.path.join(out, 'metrics.csv')) as f:
      self.assertEqual(f.read(), 'round\n1\n')


if __name__ == '__main__':
  absltest.main()
