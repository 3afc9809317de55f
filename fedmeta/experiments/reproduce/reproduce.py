r"""Runs a study of `studies.STUDIES` through the runner; writes its table.

  python -m fedmeta.experiments.reproduce.reproduce --study=heart_disease [--full]

Each run is `python -m fedmeta.experiments.run --flagfile=experiments/configs/<c>.flags
...` in a subprocess, under <root_output_dir>/<study>/<short|full>/<run>/ (the
runner's outputs: metrics.csv, curves.png, summary.json, checkpoints). A
finished run is reused and an interrupted one resumes, as the runner does.
Then it writes, next to the runs:
  * curves.png: each row's column against round, one line per row;
  * table.md: per row, the paper's figure, fedmeta's (last evaluation), the
    budget (rounds x clients per round), the communication to the study's
    target (rounds, MB both ways) and the command.
"""

import json
import os
import shlex
import signal
import subprocess
import sys

from absl import app
from absl import flags
from matplotlib import figure

from fedmeta import experiments
from fedmeta.experiments import curves
from fedmeta.experiments.reproduce import studies


def define_flags() -> None:
  """The driver's flags; defined by its entry point alone, so that importing
  this module (as tests do) adds none beside the runner's."""
  flags.DEFINE_enum('study', None, list(studies.STUDIES), 'The study to run.')
  flags.DEFINE_bool(
      'full', False, 'Run the configs as committed (the paper\'s budget: '
      'hours to days on 2 cores) instead of the short version.')
  flags.DEFINE_string('root_output_dir', '/tmp/fedmeta_reproduce',
                      'Where the runs and the table go.')
  flags.DEFINE_list('runs', None,
                    'Only these runs of the study (default all).')
  flags.mark_flag_as_required('study')


# Evaluations of a finished run's final model (model_weights.npz): modules
# run as `python -m <module> <run dir> <output json>`, which write metrics to
# <run dir>/<name>.json.
EVALUATIONS = {
    'omniglot_all_runs': 'fedmeta.experiments.reproduce.omniglot_all_runs',
}



def added_flags(study: studies.Study, run: studies.Run, full: bool) -> tuple:
  """The flags the short version adds to a run's config (none if full)."""
  return () if full else study.short + run.short


def command(run: studies.Run, extra: tuple, out: str) -> list[str]:
  return ['python', '-m', run.module,
          f'--flagfile=experiments/configs/{run.config}.flags', *run.flags,
          *extra, f'--root_output_dir={out}', f'--experiment_name={run.name}']


def _finished(run_dir: str) -> bool:
  path = os.path.join(run_dir, 'summary.json')
  if not os.path.exists(path):
    return False
  with open(path) as f:
    summary = json.load(f)
  return summary['final_metrics']['round'] == summary['flags']['rounds']


def _call(args: list[str]) -> int:
  """Runs Python with `args` in the repository; its exit status."""
  # In a session of its own, so that a terminal's Ctrl-C reaches it once,
  # from here: a second SIGINT would stop it in the middle of a write.
  proc = subprocess.Popen([sys.executable, *args], cwd=experiments.REPO,
                          start_new_session=True)
  try:
    return proc.wait()
  except KeyboardInterrupt:
    proc.send_signal(signal.SIGINT)
    proc.wait()
    raise


def run_one(argv: list[str], run_dir: str) -> None:
  """Runs the runner unless its run is finished; exits on its failure."""
  if _finished(run_dir):
    print(f'{run_dir}: finished, reused', flush=True)
    return
  print('$ ' + shlex.join(argv), flush=True)
  returncode = _call(argv[1:])
  if returncode:
    sys.exit(f'error: run {os.path.basename(run_dir)} failed (exit '
             f'{returncode}); rerun to resume it')


def evaluate_once(run: studies.Run, run_dir: str) -> None:
  path = os.path.join(run_dir, f'{run.evaluation}.json')
  if run.evaluation and not os.path.exists(path):
    # In a process of its own, like the runs: Keras cannot build the model
    # in this one once absl's main is running ("Output tensors of a
    # Sequential model must be the output of a TensorFlow Layer").
    returncode = _call(['-m', EVALUATIONS[run.evaluation], run_dir, path])
    if returncode:
      sys.exit(f'error: evaluation {run.evaluation} of run '
               f'{os.path.basename(run_dir)} failed (exit {returncode})')


def _series(rows: list[dict], column: str) -> list[tuple[int, float]]:
  return [(int(r['round']), float(r[column])) for r in rows
          if r.get(column) not in (None, '')]


def _reaching(rows: list[dict], column: str, target: float,
              lower: bool) -> list[dict] | None:
  """The rows up to the first evaluation that reaches `target`, or None."""
  for i, r in enumerate(rows):
    value = r.get(column)
    if value not in (None, '') and (
        float(value) <= target if lower else float(value) >= target):
      return rows[:i + 1]
  return None


def to_target(rows: list[dict], column: str, target: float,
              lower: bool) -> str:
  """'rounds / MB' up to the first evaluation that reaches `target`."""
  reached = _reaching(rows, column, target, lower)
  if reached is None:
    return 'not reached'
  megabytes = sum(float(r['bytes/server_to_client']) +
                  float(r['bytes/client_to_server']) for r in reached) / 1e6
  return f'{reached[-1]["round"]} / {megabytes:.1f} MB'


def time_to_target(rows: list[dict], column: str, target: float,
                   lower: bool, clients_per_round: int) -> str:
  """'tasks / seconds' up to the first evaluation that reaches `target`:
  tasks seen (rounds x clients per round) and the rounds' own seconds."""
  reached = _reaching(rows, column, target, lower)
  if reached is None:
    return 'not reached'
  seconds = sum(float(r['round_seconds']) for r in reached)
  return f'{int(reached[-1]["round"]) * clients_per_round} / {seconds:.0f} s'


def _value(rows: list[dict], column: str) -> str:
  """The column's last value, with its 95% CI where metrics.csv has one."""
  points = _series(rows, column)
  if not points:
    return 'n/a'
  text = f'{points[-1][1]:.4f}'
  if column.endswith('/mean'):
    ci = _series(rows, column.removesuffix('/mean') + '/ci95')
    if ci and ci[-1][0] == points[-1][0]:
      text += f' +- {ci[-1][1]:.4f}'
  return text


def _client_values(run_dir: str) -> dict:
  """'clients/<id>/<stage>/<metric>' -> value, from the runner's last
  per-client evaluation (none where it wrote none)."""
  path = os.path.join(run_dir, 'eval_clients.json')  # run.CLIENTS_JSON
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    clients = json.load(f)
  return {f'clients/{cid}/{stage}/{name}': value
          for cid, stages in clients.items()
          for stage, metrics in stages.items()
          for name, value in metrics.items()}


def table(study: studies.Study, out: str, full: bool = False) -> str:
  """The study's markdown table, from the runs' outputs under `out`."""
  relation = '<=' if study.lower_is_better else '>='
  communication = ('' if study.target is None else
                   f' rounds / MB to {relation} {study.target} |')
  timing = ''.join(f' tasks / s to {relation} {t} |'
                   for t in study.time_targets)
  lines = [
      f'## {study.title}', '', f'Paper: {study.paper}', '',
      '| row | column | paper | fedmeta | budget (rounds x clients) |'
      f'{communication}{timing} command |',
      '|---|---|---|---|---|' + ('---|' if communication else '')
      + '---|' * len(study.time_targets) + '---|']
  for run in study.runs:
    run_dir = os.path.join(out, run.name)
    if not os.path.exists(os.path.join(run_dir, 'summary.json')):
      continue
    rows = curves.read_rows(os.path.join(run_dir, 'metrics.csv'))
    with open(os.path.join(run_dir, 'summary.json')) as f:
      run_flags = json.load(f)['flags']
    evaluated = _client_values(run_dir)
    evaluation_json = os.path.join(run_dir, f'{run.evaluation}.json')
    if run.evaluation and os.path.exists(evaluation_json):
      with open(evaluation_json) as f:
        evaluated.update(json.load(f))
    budget = f'{run_flags["rounds"]} x {run_flags["clients_per_round"]}'
    cmd = shlex.join(command(run, added_flags(study, run, full), out))
    for row in run.rows:
      if row.column in evaluated:
        value = f'{evaluated[row.column]:.4f}'
      else:
        value = _value(rows, row.column)
      reached = ('' if study.target is None else ' ' + to_target(
          rows, row.column, study.target, study.lower_is_better) + ' |')
      reached += ''.join(' ' + time_to_target(
          rows, row.column, t, study.lower_is_better,
          run_flags['clients_per_round']) + ' |' for t in study.time_targets)
      lines.append(f'| {row.label} | `{row.column}` | {row.paper} | {value} '
                   f'| {budget} |{reached} `{cmd}` |')
  return '\n'.join(lines) + '\n'


def plot(study: studies.Study, out: str, path: str) -> None:
  fig = figure.Figure(figsize=(7, 4.5))
  ax = fig.subplots()
  for run in study.runs:
    metrics = os.path.join(out, run.name, 'metrics.csv')
    if not os.path.exists(metrics):
      continue
    rows = curves.read_rows(metrics)
    for row in run.rows:
      points = _series(rows, row.column)
      if points:
        ax.plot(*zip(*points), marker='.', label=row.label)
  ax.set_xlabel('round')
  ax.set_title(study.title[:80], fontsize='small')
  ax.grid(alpha=0.3)
  ax.legend(fontsize='x-small')
  fig.tight_layout()
  fig.savefig(path + '.tmp.png', dpi=100)
  os.replace(path + '.tmp.png', path)


def main(argv):
  del argv
  study = studies.STUDIES[flags.FLAGS.study]
  out = os.path.join(flags.FLAGS.root_output_dir, flags.FLAGS.study,
                     'full' if flags.FLAGS.full else 'short')
  os.makedirs(out, exist_ok=True)
  names = [r.name for r in study.runs]
  for name in flags.FLAGS.runs or ():
    if name not in names:
      raise app.UsageError(f'--runs: {name!r} is not a run of study '
                           f'{flags.FLAGS.study}: {", ".join(names)}')
  try:
    for run in study.runs:
      if not flags.FLAGS.runs or run.name in flags.FLAGS.runs:
        run_one(command(run, added_flags(study, run, flags.FLAGS.full), out),
                os.path.join(out, run.name))
        evaluate_once(run, os.path.join(out, run.name))
  except KeyboardInterrupt:
    print('interrupted; rerun the same command to resume', file=sys.stderr)
    sys.exit(130)
  plot(study, out, os.path.join(out, 'curves.png'))
  text = table(study, out, flags.FLAGS.full)
  with open(os.path.join(out, 'table.md'), 'w') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  define_flags()
  app.run(main)
