r"""Every defence against every attack, on digits: accuracy under attack.

  python -m fedmeta.experiments.benchmarks.robustness_table \
      --root_output_dir=/tmp/fedmeta_robustness --seeds=0,1

writes <root_output_dir>/robustness.md (the table) and robustness.json.

Each cell is one runner run, `python -m fedmeta.experiments.run <COMMON> <defence
flags> <attack flags> --seed=S`, made in this process (a run already finished
under --root_output_dir is read, not rerun); the table gives each cell's
final test accuracy, the mean over the seeds and their range. A defence that
refuses the round size (Bulyan's n >= 4f + 3) says so. The defences assume
the attackers' share: Krum's f and the trimmed share are set per column.
"""

import json
import os
import sys

from absl import app
from absl import flags

from fedmeta.experiments import run
from fedmeta.experiments import training_loop

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
    # Data poisoning by a fixed share of the 100 clients.
    'label_flip': ('--attack=label_flip',),
    'backdoor': ('--attack=backdoor', '--backdoor_target=0'),
}


def defence_flags(name: str, fraction: float) -> tuple[str, ...]:
  """A defence's flags when it assumes `fraction` of a round's attackers."""
  f = round(fraction * CLIENTS_PER_ROUND)
  return {
      'mean': ('--aggregation=mean',),
      'clip': ('--aggregation=clip', f'--clip_norm={NORM}'),
      'median': ('--aggregation=median',),
      'trimmed_mean': ('--aggregation=trimmed_mean',
                       f'--trim_fraction={fraction}'),
      'krum': ('--aggregation=krum', f'--byzantine={f}'),
      'multi_krum': ('--aggregation=multi_krum', f'--byzantine={f}'),
      'bulyan': ('--aggregation=bulyan', f'--byzantine={f}'),
      'geometric_median': ('--aggregation=geometric_median',),
      'centered_clip': ('--aggregation=centered_clip', f'--clip_norm={NORM}',
                        '--centered_clip_iterations=3'),
  }[name]


DEFENCES = ('mean', 'clip', 'median', 'trimmed_mean', 'krum', 'multi_krum',
            'bulyan', 'geometric_median', 'centered_clip')
# The clean column: no attacker, each defence set for 20%.
CLEAN_FRACTION = 0.2

_SEEDS = flags.DEFINE_list('seeds', ['0'], 'Seeds of every cell.')


def cell_flags(defence: str, attack: str | None, fraction: float,
               seed: int) -> tuple[str, ...]:
  attack_flags = () if attack is None else (
      *ATTACKS[attack], f'--malicious_fraction={fraction}')
  return (*COMMON, *defence_flags(defence, fraction), *attack_flags,
          f'--seed={seed}')


def run_cell(root: str, argv: tuple[str, ...]):
  """The cell's final test accuracy (and, for a backdoor, its success rate
  after it), or the one-line refusal of its flags."""
  name = '_'.join(a.lstrip('-').replace('=', '-') for a in argv
                  if a not in COMMON)
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
  accuracy = final['eval/sparse_categorical_accuracy']
  if 'eval/backdoor_success_rate' in final:
    return accuracy, final['eval/backdoor_success_rate']
  return accuracy


def main(argv):
  del argv
  # Each cell reparses the flags: these are read first.
  root = flags.FLAGS.root_output_dir
  seeds = [int(s) for s in _SEEDS.value]
  columns = [('clean', None, CLEAN_FRACTION)] + [
      (f'{attack} {fraction:.0%}', attack, fraction)
      for attack in ATTACKS for fraction in FRACTIONS]
  results = {}
  for defence in DEFENCES:
    for label, attack, fraction in columns:
      results[defence, label] = [
          run_cell(root, cell_flags(defence, attack, fraction, seed))
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
            for defence in DEFENCES]
  lines += ['', 'Backdoor cells: test accuracy; backdoor success rate (the '
            'share of triggered test images of other classes classified as '
            'the target).']
  with open(os.path.join(root, 'robustness.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
