r"""Every defence against every attack: accuracy under attack.

  python -m fedmeta.experiments.benchmarks.robustness_table \
      --root_output_dir=/tmp/fedmeta_robustness --seeds=0,1 [--setup=femnist]

writes <root_output_dir>/robustness.md (the table) and robustness.json.

A setup (`SETUPS`) is a task, algorithm and budget: FedAvg on digits
(Dirichlet(0.5) label skew), FedAvg on FEMNIST writers (natural non-IID), or
federated MAML on Omniglot episodes. Each cell is one runner run,
`python -m fedmeta.experiments.run <the setup's flags> <defence flags>
<attack flags> --seed=S`, made in this process (a run already finished under
--root_output_dir is read, not rerun); the table gives each cell's final
test accuracy, the mean over the seeds and their range. A defence that
refuses the round size (Bulyan's n >= 4f + 3) says so. The defences assume
the attackers' share: Krum's f and the trimmed share are set per column.
`--defences`, `--attacks` and `--fractions` choose a part of the grid.
"""

import json
import os
import sys
from typing import NamedTuple

from absl import app
from absl import flags

from fedmeta import experiments
from fedmeta.experiments import run
from fedmeta.experiments import training_loop


class Setup(NamedTuple):
  """A table's task, algorithm and budget."""
  common: tuple[str, ...]  # Runner flags of every cell.
  clients_per_round: int  # As in `common`: the defences' f is a share of it.
  # The median client update norm (clipping and centered clipping's radius).
  norm: float
  attacks: tuple[str, ...]  # Those that apply to its task.
  accuracy: str = 'eval/sparse_categorical_accuracy'  # final_metrics' key.


COMMON = ('--task=digits', '--num_clients=100', '--clients_per_round=20',
          '--rounds=30', '--client_epochs=2', '--client_batch_size=16',
          '--client_learning_rate=0.1', '--eval_every=30',
          '--checkpoint_every=30')
CLIENTS_PER_ROUND = 20
FRACTIONS = (0.1, 0.2, 0.4)
# Median client update norm in this setup: 0.27-0.33 over rounds 1-3.
NORM = 0.3
ATTACKS = {
    'sign_flip': ('--attack=sign_flip', '--attack_scale=10'),
    'alie': ('--attack=alie',),
    # Xie et al.'s epsilon against Krum and the median.
    'ipm': ('--attack=ipm', '--attack_scale=0.1'),
    # Data poisoning by a fixed share of the clients.
    'label_flip': ('--attack=label_flip',),
    'backdoor': ('--attack=backdoor', '--backdoor_target=0'),
}
# Episodes permute their labels, so label flipping and a backdoor's target
# label mean nothing there: only the update attacks apply.
_UPDATE_ATTACKS = ('sign_flip', 'alie', 'ipm')
SETUPS = {
    'digits': Setup(COMMON, CLIENTS_PER_ROUND, NORM, tuple(ATTACKS)),
    # The 105 training writers of the LEAF subset, 20 a round, with pFedHN's
    # LeNet (90,242 weights), scored on their own test data.
    'femnist': Setup(
        ('--task=femnist', '--task_option=model=lenet',
         '--task_option=test_writers=seen', '--clients_per_round=20',
         '--rounds=100', '--client_epochs=2', '--client_batch_size=20',
         '--client_learning_rate=0.05', '--eval_every=100',
         '--checkpoint_every=50'),
        # The median client update norm: 0.37-0.59 over rounds 1-3.
        20, 0.4, tuple(ATTACKS)),
    # MAML's 5-way 1-shot protocol (`omniglot` study), 20 tasks a round.
    'omniglot_maml': Setup(
        ('--flagfile=' + os.path.join(
            experiments.REPO, 'experiments', 'configs',
            'omniglot_episodes_5way_1shot_fed_maml.flags'),
         '--clients_per_round=20', '--rounds=300', '--eval_every=300',
         '--checkpoint_every=100'),
        # The median norm of a client's meta-gradient: 16.0-18.2 over
        # rounds 1-3.
        20, 17.0, _UPDATE_ATTACKS,
        'eval/after/sparse_categorical_accuracy/mean'),
}


def defence_flags(name: str, fraction: float,
                  setup: str = 'digits') -> tuple[str, ...]:
  """A defence's flags when it assumes `fraction` of a round's attackers."""
  norm = SETUPS[setup].norm
  f = round(fraction * SETUPS[setup].clients_per_round)
  return {
      'mean': ('--aggregation=mean',),
      'clip': ('--aggregation=clip', f'--clip_norm={norm}'),
      'median': ('--aggregation=median',),
      'trimmed_mean': ('--aggregation=trimmed_mean',
                       f'--trim_fraction={fraction}'),
      'krum': ('--aggregation=krum', f'--byzantine={f}'),
      'multi_krum': ('--aggregation=multi_krum', f'--byzantine={f}'),
      'bulyan': ('--aggregation=bulyan', f'--byzantine={f}'),
      'geometric_median': ('--aggregation=geometric_median',),
      'centered_clip': ('--aggregation=centered_clip', f'--clip_norm={norm}',
                        '--centered_clip_iterations=3'),
  }[name]


DEFENCES = ('mean', 'clip', 'median', 'trimmed_mean', 'krum', 'multi_krum',
            'bulyan', 'geometric_median', 'centered_clip')
# The clean column: no attacker, each defence set for 20%.
CLEAN_FRACTION = 0.2

_SEEDS = flags.DEFINE_list('seeds', ['0'], 'Seeds of every cell.')
_SETUP = flags.DEFINE_enum('setup', 'digits', list(SETUPS),
                           'Task, algorithm and budget (SETUPS).')
_DEFENCES = flags.DEFINE_list('defences', list(DEFENCES),
                              f'Rows, of {", ".join(DEFENCES)}.')
_ATTACKS = flags.DEFINE_list(
    'attacks', None, f'Columns, of {", ".join(ATTACKS)}; default: all that '
    "apply to --setup's task. The clean column is always there.")
_FRACTIONS = flags.DEFINE_list('fractions', [str(f) for f in FRACTIONS],
                               'Attacker shares of each attack column.')


def cell_flags(defence: str, attack: str | None, fraction: float,
               seed: int, setup: str = 'digits') -> tuple[str, ...]:
  attack_flags = () if attack is None else (
      *ATTACKS[attack], f'--malicious_fraction={fraction}')
  return (*SETUPS[setup].common, *defence_flags(defence, fraction, setup),
          *attack_flags, f'--seed={seed}')


def run_cell(root: str, argv: tuple[str, ...], setup: str = 'digits'):
  """The cell's final test accuracy (and, for a backdoor, its success rate
  after it), or the one-line refusal of its flags."""
  name = '_'.join(a.lstrip('-').replace('=', '-') for a in argv
                  if a not in SETUPS[setup].common)
  summary = os.path.join(root, name, training_loop.SUMMARY_JSON)
  if not os.path.exists(summary):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(['run', *argv, f'--root_output_dir={root}',
                 f'--experiment_name={name}'])
    try:
      run.run_experiment(run.config_from_flags())
    except run.RunError as e:  # Bulyan against 40%: n < 4f + 3.
      return 'refused: needs ' + str(e).split('needs ', 1)[-1].split(' for')[0]
  with open(summary) as f:
    final = json.load(f)['final_metrics']
  accuracy = final[SETUPS[setup].accuracy]
  if 'eval/backdoor_success_rate' in final:
    return accuracy, final['eval/backdoor_success_rate']
  return accuracy


def _grid(setup: str):
  """--defences, --attacks and --fractions, checked; exits naming a bad
  flag."""
  defences = _DEFENCES.value
  attacks = (list(SETUPS[setup].attacks) if _ATTACKS.value is None
             else _ATTACKS.value)
  for flag, values, allowed in (('defences', defences, DEFENCES),
                                ('attacks', attacks, SETUPS[setup].attacks)):
    unknown = [v for v in values if v not in allowed]
    if unknown:
      sys.exit(f'--{flag}: {", ".join(unknown)} not among '
               f'{", ".join(allowed)} (--setup={setup})')
  try:
    fractions = [float(f) for f in _FRACTIONS.value]
  except ValueError:
    fractions = [-1.0]
  if not all(0 < f < 1 for f in fractions):
    sys.exit(f'--fractions: need shares in (0, 1), got '
             f'{",".join(_FRACTIONS.value)}')
  return defences, attacks, fractions


def main(argv):
  del argv
  # Each cell reparses the flags: these are read first.
  root = flags.FLAGS.root_output_dir
  seeds = [int(s) for s in _SEEDS.value]
  setup = _SETUP.value
  defences, attacks, fractions = _grid(setup)
  columns = [('clean', None, CLEAN_FRACTION)] + [
      (f'{attack} {fraction:.0%}', attack, fraction)
      for attack in attacks for fraction in fractions]
  results = {}
  for defence in defences:
    for label, attack, fraction in columns:
      results[defence, label] = [
          run_cell(root, cell_flags(defence, attack, fraction, seed, setup),
                   setup)
          for seed in seeds]
      print(defence, label, results[defence, label], file=sys.stderr)
  with open(os.path.join(root, 'robustness.json'), 'w') as f:
    json.dump({f'{d} | {c}': v for (d, c), v in results.items()}, f, indent=2)

  def mean_and_range(values):
    mean = sum(values) / len(values)
    spread = (f' ({min(values):.3f}-{max(values):.3f})' if len(values) > 1
              else '')
    return f'{mean:.3f}{spread}'

  def cell(values):
    if any(isinstance(v, str) for v in values):
      return next(v for v in values if isinstance(v, str))
    if isinstance(values[0], tuple):  # Accuracy; backdoor success rate.
      return '; '.join(mean_and_range(list(v)) for v in zip(*values))
    return mean_and_range(values)

  lines = ['| defence | ' + ' | '.join(c[0] for c in columns) + ' |',
           '|---' * (len(columns) + 1) + '|']
  lines += [f'| {defence} | ' + ' | '.join(
      cell(results[defence, c[0]]) for c in columns) + ' |'
            for defence in defences]
  lines += ['', 'Backdoor cells: test accuracy; backdoor success rate (the '
            'share of triggered test images of other classes classified as '
            'the target).']
  with open(os.path.join(root, 'robustness.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
