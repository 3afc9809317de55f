"""The round loop: sample clients, run a round, evaluate, record.

Library-style: no flags. `run.py` wires flags to it; tests drive it with a
fake process.
"""

import collections
import csv
import json
import os
import time
from typing import Any, Callable, Mapping, Optional

from absl import logging
import numpy as np


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = '') -> dict:
  """Flattens nested metrics to {'a/b/c': python scalar}; drops empty nodes."""
  flat = {}
  for key, value in metrics.items():
    name = f'{prefix}{key}'
    if isinstance(value, Mapping):
      flat.update(flatten_metrics(value, name + '/'))
    elif not isinstance(value, (tuple, list)):
      flat[name] = np.asarray(value).item()
  return flat


def build_uniform_sampler(client_ids, clients_per_round: int, seed: int):
  """Round r -> `clients_per_round` ids drawn without replacement.

  Seeded per round, so a round's clients do not depend on earlier rounds.
  """
  ids = list(client_ids)

  def sample(round_num: int) -> list[str]:
    rng = np.random.default_rng([seed, round_num])
    return [ids[i] for i in rng.choice(len(ids), clients_per_round,
                                       replace=False)]
  return sample


class MetricsWriter:
  """Appends one CSV row per round; the header widens as metrics appear."""

  def __init__(self, path: str):
    self._path = path
    self._rows: list[dict] = []

  def write(self, row: dict) -> None:
    self._rows.append(row)
    fields = list(collections.OrderedDict.fromkeys(
        k for r in self._rows for k in r))
    tmp = self._path + '.tmp'
    with open(tmp, 'w', newline='') as f:
      writer = csv.DictWriter(f, fieldnames=fields)
      writer.writeheader()
      writer.writerows(self._rows)
    os.replace(tmp, self._path)  # Atomic: a crash never leaves half a file.


# Metrics shown on the progress line, by name suffix.
_PROGRESS_METRICS = ('/loss', 'accuracy', '/auc')


def _progress(round_num, total, seconds, elapsed, metrics) -> str:
  shown = ' '.join(
      f'{k}={v:.4f}' for k, v in metrics.items()
      if k.startswith(('train/', 'eval/'))
      and k.removesuffix('/mean').endswith(_PROGRESS_METRICS))
  eta = elapsed / round_num * (total - round_num)
  return (f'round {round_num}/{total} {seconds:.2f}s {shown} '
          f'eta {eta:.1f}s')


def run(
    *,
    process,
    client_datasets_fn: Callable[[int], list],
    evaluation_fn: Optional[Callable[[Any], Mapping[str, Any]]],
    rounds: int,
    eval_every: int,
    output_dir: str,
    summary_extra: Mapping[str, Any],
    print_fn: Callable[[str], None] = print,
):
  """Runs `rounds` rounds of `process` and writes metrics.csv, summary.json.

  Args:
    process: A `tff.learning.templates.LearningProcess`.
    client_datasets_fn: Round number (1-based) -> that round's client
      datasets.
    evaluation_fn: Model weights -> metrics mapping, or None.
    rounds: Number of rounds.
    eval_every: Evaluate every this many rounds (and after the last).
    output_dir: Existing directory for metrics.csv and summary.json.
    summary_extra: Merged into summary.json (flags, versions, ...).
    print_fn: Receives one progress line per round.

  Returns:
    The final process state.
  """
  writer = MetricsWriter(os.path.join(output_dir, 'metrics.csv'))
  state = process.initialize()
  start = time.perf_counter()
  row = {}
  for round_num in range(1, rounds + 1):
    t0 = time.perf_counter()
    output = process.next(state, client_datasets_fn(round_num))
    state = output.state
    seconds = time.perf_counter() - t0
    row = {'round': round_num}
    row.update(flatten_metrics(output.metrics['client_work'], ''))
    row.update(flatten_metrics(output.metrics['finalizer'], 'finalizer/'))
    if evaluation_fn and (round_num % eval_every == 0 or round_num == rounds):
      row.update(flatten_metrics(
          evaluation_fn(process.get_model_weights(state)), 'eval/'))
    row['round_seconds'] = seconds
    writer.write(row)
    print_fn(_progress(round_num, rounds, seconds,
                       time.perf_counter() - start, row))
    logging.debug('round %d metrics: %s', round_num, row)
  summary = dict(summary_extra)
  summary['final_metrics'] = row
  summary['wall_seconds'] = time.perf_counter() - start
  with open(os.path.join(output_dir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  return state
