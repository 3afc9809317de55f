"""Every refusal of the runner's flags is one line that names the flag, and
a non-zero exit: `run.main` in process (run_test.py checks the process)."""

import contextlib
import io
import shutil
import tempfile

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized

from fedmeta.experiments import run

SMALL = ['--task=digits', '--num_clients=6', '--clients_per_round=3',
         '--client_batch_size=32', '--rounds=1']


class RefusalsTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.root)

  def tearDown(self):
    flags.FLAGS.unparse_flags()
    super().tearDown()

  def _refusal(self, args):
    """(exit code, stderr) of the runner with `args`: 1 where absl refuses
    the flag's value, as the process would."""
    flags.FLAGS.unparse_flags()
    try:
      flags.FLAGS(['run', *SMALL, f'--root_output_dir={self.root}', *args])
    except flags.Error as e:
      return 1, f'FATAL Flags parsing error: {e}'
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
      with self.assertRaises(SystemExit) as caught:
        run.main(['run'])
    return caught.exception.code, stderr.getvalue()

  @parameterized.named_parameters(
      ('unknown_task', ['--task=mnist'], '--task'),
      ('unknown_algorithm', ['--algorithm=fed_magic'], '--algorithm'),
      ('zero_rounds', ['--rounds=0'], '--rounds'),
      ('zero_clients', ['--clients_per_round=0'], '--clients_per_round'),
      ('too_many_clients', ['--clients_per_round=7'], '--clients_per_round'),
      ('server_optimizer_conflict',
       ['--algorithm=fed_adam', '--server_optimizer=sgd'],
       '--server_optimizer'),
      ('decay_without_rate',
       ['--algorithm=reptile', '--server_learning_rate_decay=linear',
        '--server_learning_rate_decay_rounds=5'],
       '--server_learning_rate_decay: needs --server_learning_rate'),
      ('decay_without_rounds',
       ['--server_learning_rate=1', '--server_learning_rate_decay=step'],
       '--server_learning_rate_decay_rounds'),
      ('decay_rounds_without_decay',
       ['--server_learning_rate_decay_rounds=5'],
       '--server_learning_rate_decay_rounds: needs'),
      ('linear_decay_factor',
       ['--server_learning_rate=1', '--server_learning_rate_decay=linear',
        '--server_learning_rate_decay_rounds=5',
        '--server_learning_rate_decay_factor=0.1'],
       '--server_learning_rate_decay_factor'),
      ('decay_of_a_fixed_optimizer',
       ['--algorithm=fed_adam', '--server_learning_rate_decay=linear',
        '--server_learning_rate_decay_rounds=5'],
       '--server_learning_rate_decay: fed_adam fixes'),
      ('inner_optimizer_of_maml',
       ['--algorithm=fed_maml', '--inner_optimizer=adam', '--shots=1'],
       '--inner_optimizer: for reptile only, not fed_maml'),
      ('inner_batch_of_fed_avg', ['--inner_batch_size=2'],
       '--inner_batch_size: for reptile only'),
      ('shots_without_classes',
       ['--task=sinusoid', '--algorithm=fed_maml', '--shots=2'], '--shots'),
      ('shots_and_fraction',
       ['--algorithm=reptile', '--shots=1', '--support_fraction=0.3'],
       '--shots'),
      ('num_clients_of_natural_clients', ['--task=heart_disease'],
       '--num_clients'),
      ('missing_data_dir', ['--task=credit', '--data_dir=/nonexistent'],
       'data_dir'),
      ('unknown_task_option', ['--task_option=alpha'], '--task_option'),
      ('mistyped_task_option', ['--task_option=alpha=high'],
       '--task_option: alpha takes a float'),
      ('dp_with_median', ['--dp_noise_multiplier=1', '--aggregation=median'],
       '--aggregation'),
      ('rotation_without_bits', ['--rotation'], '--rotation'),
      ('intra_op_threads_with_workers',
       ['--workers=localhost:1', '--intra_op_threads=1'],
       '--intra_op_threads'),
      ('no_intra_op_threads', ['--intra_op_threads=0'], '--intra_op_threads'),
      ('clip_without_norm', ['--aggregation=clip'], '--clip_norm'),
      ('secure_with_compression',
       ['--secure_aggregation', '--compression_bits=8'], '--compression_bits'),
      ('episode_flag_without_ways', ['--algorithm=fed_maml', '--shots=1',
                                     '--query_shots=2'], '--query_shots'),
      ('ways_for_fed_avg', ['--ways=3', '--shots=1'], '--ways'),
      ('ways_without_shots', ['--algorithm=fed_maml', '--ways=3'], '--ways'),
      ('max_examples_with_ways',
       ['--algorithm=fed_maml', '--ways=3', '--shots=1',
        '--max_client_examples=5'], '--max_client_examples'),
      ('ways_over_a_clients_classes',
       ['--algorithm=fed_maml', '--ways=10', '--shots=5'],
       'a 10-way episode needs'),
      ('eval_support_without_personalization', ['--eval_support=train'],
       '--eval_support: only for personalized evaluation'),
      ('eval_support_for_unseen_clients',
       ['--task=sinusoid', '--algorithm=fed_maml', '--eval_support=train'],
       '--eval_support=train: task sinusoid: test clients'),
      ('backdoor_with_episodes',
       ['--algorithm=fed_maml', '--ways=3', '--shots=1', '--query_shots=1',
        '--eval_query_shots=1', '--malicious_fraction=0.2',
        '--attack=backdoor'],
       '--attack=backdoor: not with --ways'),
      ('label_flip_without_class_labels',
       ['--task=credit', '--num_clients=4', '--malicious_fraction=0.2',
        '--attack=label_flip'],
       '--attack=label_flip: task credit has no integer class labels'),
      ('backdoor_without_images',
       ['--task=synthetic', '--num_clients=6', '--malicious_fraction=0.2',
        '--attack=backdoor'],
       '--attack=backdoor: task synthetic has no images'),
      ('backdoor_target_out_of_range',
       ['--malicious_fraction=0.2', '--attack=backdoor',
        '--backdoor_target=10'],
       "--backdoor_target: 10 is not one of task digits's 10 classes"),
      ('trigger_too_large',
       ['--malicious_fraction=0.2', '--attack=backdoor', '--trigger_size=9'],
       '--trigger_size: 9 pixels do not fit'),
      ('backdoor_flag_without_backdoor',
       ['--malicious_fraction=0.2', '--trigger_size=2'],
       '--trigger_size: needs --attack=backdoor'),
      ('scale_of_a_data_attack',
       ['--malicious_fraction=0.2', '--attack=label_flip',
        '--attack_scale=2'], '--attack_scale: --attack=label_flip poisons'),
      ('backdoor_with_personalization',
       ['--malicious_fraction=0.2', '--attack=backdoor',
        '--personalization_eval'],
       '--attack=backdoor: its success rate is measured on the global'),
      ('data_attack_without_attackers',
       ['--malicious_fraction=0.05', '--attack=label_flip'],
       'error: --malicious_fraction: 0.05 of the 6 training clients of task '
       'digits rounds to no attacker'),
      ('protonet_without_ways', ['--algorithm=fed_protonet'], '--ways'),
      ('inner_steps_for_protonet',
       ['--algorithm=fed_protonet', '--ways=3', '--shots=1',
        '--inner_steps=2'], '--inner_steps: fed_protonet does not take it'),
      ('protonet_without_embedding',
       ['--algorithm=fed_protonet', '--ways=3', '--shots=1'],
       'task digits has no embedding network'),
      ('episodes_per_client_for_per_fedavg',
       ['--algorithm=per_fedavg_fo', '--ways=3', '--shots=1',
        '--episodes_per_client=2'],
       '--episodes_per_client: per_fedavg_fo takes one task a client'),
      ('train_ways_for_maml',
       ['--algorithm=fed_maml', '--ways=3', '--shots=1', '--train_ways=4'],
       '--train_ways'),
      ('distance_for_maml', ['--algorithm=fed_maml', '--distance=cosine'],
       '--distance'),
      ('krum_without_byzantine', ['--aggregation=krum'], '--byzantine'),
      ('byzantine_without_krum', ['--byzantine=1'], '--byzantine'),
      ('bulyan_round_too_small', ['--aggregation=bulyan', '--byzantine=1'],
       'error: --clients_per_round: bulyan: a round of 3 clients needs n >= '
       '4f + 3 = 7 for byzantine f = 1'),
      ('centered_clip_without_radius', ['--aggregation=centered_clip'],
       '--clip_norm'),
      ('weiszfeld_flag_for_median',
       ['--aggregation=median', '--weiszfeld_iterations=2'],
       '--weiszfeld_iterations'),
      ('krum_with_secure_sum',
       ['--aggregation=krum', '--byzantine=0', '--secure_aggregation'],
       '--secure_aggregation'),
      ('alie_z_without_alie',
       ['--malicious_fraction=0.1', '--alie_z=1'], '--alie_z'),
      ('attack_without_fraction', ['--attack=ipm'],
       '--attack: needs --malicious_fraction'),
      ('attack_scale_for_alie',
       ['--malicious_fraction=0.1', '--attack=alie', '--attack_scale=2'],
       '--attack_scale'),
      ('alie_against_a_majority',
       ['--malicious_fraction=0.5', '--attack=alie'], '--malicious_fraction'),
      ('weiszfeld_flag_for_mean', ['--weiszfeld_iterations=2'],
       '--weiszfeld_iterations'),
      ('pfedhn_with_a_robust_rule',
       ['--algorithm=pfedhn', '--aggregation=median'],
       '--aggregation: pfedhn sums each client'),
      ('pfedhn_with_a_secure_sum',
       ['--algorithm=pfedhn', '--secure_aggregation'],
       '--secure_aggregation: pfedhn sums each client'),
      ('pfedhn_with_an_omniscient_attack',
       ['--algorithm=pfedhn', '--malicious_fraction=0.2', '--attack=ipm'],
       '--attack: ipm forges'),
      ('pfedhn_with_personalization_eval',
       ['--algorithm=pfedhn', '--personalization_eval'],
       '--personalization_eval: pfedhn evaluates'),
      ('centered_clip_radius_zero',
       ['--aggregation=centered_clip', '--clip_norm=0'], '--clip_norm'))
  def test_bad_flag_is_one_line_error(self, args, flag):
    code, stderr = self._refusal(args)
    self.assertIn(code, (1, 2))
    self.assertLen(stderr.strip().splitlines(), 1, stderr)
    self.assertIn(flag, stderr)


if __name__ == '__main__':
  absltest.main()
