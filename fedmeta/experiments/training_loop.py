"""The round loop: sample clients, run a round, evaluate, record.

Library-style: no flags. `run.py` wires flags to it; tests drive it with a
fake process.
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import threading
import time
from typing import Any, Callable, Mapping, Optional

from absl import logging
import numpy as np
import tensorflow_federated as tff

from fedmeta.experiments import curves

# Output names under <root_output_dir>/<experiment_name>/.
METRICS_CSV = 'metrics.csv'
SUMMARY_JSON = 'summary.json'
CURVES_PNG = 'curves.png'
MODEL_WEIGHTS_NPZ = 'model_weights.npz'
TENSORBOARD = 'tensorboard'
CHECKPOINTS = 'checkpoints'
CHECKPOINT_PREFIX = 'round_'
# The initial state and the last few rounds.
KEEP_CHECKPOINTS = 4


def flatten_metrics(metrics, prefix: str = '') -> dict:
  """Flattens nested metrics to {'a/b/c': python scalar}, sequence items
  named by index; empty nodes (an aggregator's `()`, say) give nothing."""
  flat = {}
  items = (metrics.items() if isinstance(metrics, Mapping)
           else enumerate(metrics))
  for key, value in items:
    name = f'{prefix}{key}'
    if isinstance(value, (Mapping, tuple, list)):
      flat.update(flatten_metrics(value, name + '/'))
    else:
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


# Metrics shown on the progress line, by name suffix.
_PROGRESS_METRICS = ('/loss', 'accuracy', '/auc')


def _progress(round_num, total, seconds, eta, metrics) -> str:
  shown = ' '.join(
      f'{k}={v:.4f}' for k, v in metrics.items()
      if k.startswith(('train/', 'eval/'))
      and k.removesuffix('/mean').endswith(_PROGRESS_METRICS))
  return (f'round {round_num}/{total} {seconds:.2f}s {shown} '
          f'eta {eta:.1f}s')


def _number(text: str):
  """A metrics.csv cell as the number it holds (None where empty)."""
  if not text:
    return None
  try:
    return int(text)
  except ValueError:
    return float(text)


class _Interrupts:
  """Ctrl-C for the round loop: never lost, never in the middle of a write.

  Python raises KeyboardInterrupt in whatever Python code the main thread runs
  when the signal arrives, and C code that calls back into Python (TF's nest,
  `PyObject_HasAttr`) may swallow it: a CI run sent SIGINT after round 1 went
  on to its last round. So the handler also records the request, and each
  write (metrics, checkpoints) checks it before it starts, so that nothing a
  swallowed interrupt may have left half-computed is written, and once
  started finishes before the interrupt is raised. A second Ctrl-C is raised
  at once. TF's C code may also turn the KeyboardInterrupt into another error
  (a CI run exited 1 with "SystemError: <built-in method __array__ ...>
  returned a result with an exception set"), so any error after a Ctrl-C is
  raised as the KeyboardInterrupt it is.
  """

  def __init__(self):
    self._requested = False
    self._deferring = False

  def _handle(self, signum, frame):
    del signum, frame
    first, self._requested = not self._requested, True
    if not (first and self._deferring):
      raise KeyboardInterrupt

  @contextlib.contextmanager
  def installed(self):
    """Handles SIGINT while inside, where Python's own handler is in place."""
    if (threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
      yield  # Someone else's handler (a notebook kernel, say): theirs rules.
      return
    signal.signal(signal.SIGINT, self._handle)
    try:
      yield
    except Exception as e:
      if self._requested:
        raise KeyboardInterrupt from e
      raise
    finally:
      signal.signal(signal.SIGINT, signal.default_int_handler)

  def _check(self) -> None:
    if self._requested:
      raise KeyboardInterrupt

  @contextlib.contextmanager
  def deferred(self):
    """A write: not started after a Ctrl-C, and finished before one acts."""
    self._check()
    self._deferring = True
    try:
      yield
    finally:
      self._deferring = False
    self._check()


def _remove_partial_writes(*directories: str) -> None:
  """Removes what a killed run left of an unfinished atomic write.

  TFF's managers write `<name>_temp<4 digits>` and rename it into place.
  """
  for directory in directories:
    if not os.path.isdir(directory):
      continue
    for entry in os.listdir(directory):
      if re.fullmatch(r'.+_temp\d{4}', entry):
        path = os.path.join(directory, entry)
        if os.path.isdir(path):
          shutil.rmtree(path)
        else:
          os.remove(path)


def write_json(value, path: str) -> None:
  """Writes `value` as indented, key-sorted JSON, atomically: a killed
  process leaves the old file or the new one, never half of one."""
  with open(path + '.tmp', 'w') as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(path + '.tmp', path)


def save_model_weights(weights, path: str) -> None:
  """Writes `tff.learning.models.ModelWeights` as npz arrays named
  trainable/<i> and non_trainable/<i>, atomically."""
  arrays = {f'{part}/{i}': np.asarray(w)
            for part in ('trainable', 'non_trainable')
            for i, w in enumerate(getattr(weights, part))}
  tmp = path + '.tmp.npz'
  np.savez(tmp, **arrays)
  os.replace(tmp, path)


def load_model_weights(path: str):
  """The `tff.learning.models.ModelWeights` that `save_model_weights` wrote."""
  with np.load(path) as arrays:
    parts = {part: [arrays[f'{part}/{i}'] for i in range(sum(
        k.startswith(part + '/') for k in arrays.files))]
             for part in ('trainable', 'non_trainable')}
  return tff.learning.models.ModelWeights(**parts)


def state_manager(output_dir: str) -> tff.program.FileProgramStateManager:
  """The manager of `output_dir`'s checkpoints: version r is after round r."""
  return tff.program.FileProgramStateManager(
      os.path.join(output_dir, CHECKPOINTS), prefix=CHECKPOINT_PREFIX,
      keep_total=KEEP_CHECKPOINTS, keep_first=True)


def last_checkpoint_round(output_dir: str) -> Optional[int]:
  """The round of `output_dir`'s last checkpoint, or None if it has none."""
  if not os.path.isdir(os.path.join(output_dir, CHECKPOINTS)):
    return None
  versions = asyncio.run(state_manager(output_dir).get_versions())
  return max(versions) if versions else None


def run(
    *,
    process,
    client_datasets_fn: Callable[[int], list],
    evaluation_fn: Optional[Callable[[Any], Mapping[str, Any]]],
    rounds: int,
    eval_every: int,
    output_dir: str,
    summary_extra: Mapping[str, Any],
    checkpoint_every: int = 1,
    round_metrics_fn: Optional[Callable[[int], Mapping[str, Any]]] = None,
    print_fn: Callable[[str], None] = print,
):
  """Runs `process` to round `rounds`, resuming from the last checkpoint.

  Every round releases one row of metrics to metrics.csv (TFF's
  `CSVFileReleaseManager`, key column 'round') and to TensorBoard under
  tensorboard/, then checkpoints the full process state every
  `checkpoint_every` rounds and after the last (`FileProgramStateManager`,
  checkpoints/round_<r>, round 0 being the initial state). Metrics come
  first: rows after the checkpoint a rerun resumes from are released again,
  replacing the old ones. At the end it writes summary.json, curves.png and
  the final model weights, model_weights.npz (`load_model_weights`).

  Args:
    process: A `tff.learning.templates.LearningProcess`.
    client_datasets_fn: Round number (1-based) -> that round's client
      datasets; it must depend on nothing else, so that resuming reproduces
      the rounds an uninterrupted run would have.
    evaluation_fn: Model weights -> metrics mapping, or None.
    rounds: The last round.
    eval_every: Evaluate every this many rounds (and after the last).
    output_dir: Existing directory for the outputs.
    summary_extra: Merged into summary.json (flags, versions, ...).
    checkpoint_every: Checkpoint every this many rounds (and after the last).
    round_metrics_fn: Round number -> more metrics for its row, called after
      the round (client counts, bytes, privacy spent).
    print_fn: Receives one progress line per round.

  Returns:
    The final process state.
  """
  checkpoints = state_manager(output_dir)
  _remove_partial_writes(output_dir, os.path.join(output_dir, CHECKPOINTS))
  release = tff.program.GroupingReleaseManager([
      tff.program.CSVFileReleaseManager(
          os.path.join(output_dir, METRICS_CSV),
          save_mode=tff.program.CSVSaveMode.WRITE, key_fieldname='round'),
      tff.program.TensorBoardReleaseManager(
          os.path.join(output_dir, TENSORBOARD)),
  ])
  loop = asyncio.new_event_loop()
  interrupts = _Interrupts()
  with interrupts.installed():
    try:
      initial_state = process.initialize()
      with interrupts.deferred():
        state, done = loop.run_until_complete(
            checkpoints.load_latest(initial_state))
        if state is None:
          state, done = initial_state, 0
          loop.run_until_complete(checkpoints.save(state, 0))
        else:
          print_fn(f'resuming after round {done} from '
                   f'{os.path.join(output_dir, CHECKPOINTS)}')
      start = time.perf_counter()
      for round_num in range(done + 1, rounds + 1):
        t0 = time.perf_counter()
        output = process.next(state, client_datasets_fn(round_num))
        state = output.state
        seconds = time.perf_counter() - t0
        row = flatten_metrics(output.metrics['client_work'], '')
        row.update(flatten_metrics(output.metrics['aggregator'],
                                   'aggregator/'))
        row.update(flatten_metrics(output.metrics['finalizer'], 'finalizer/'))
        if round_metrics_fn:
          row.update(round_metrics_fn(round_num))
        if evaluation_fn and (round_num % eval_every == 0 or
                              round_num == rounds):
          row.update(flatten_metrics(
              evaluation_fn(process.get_model_weights(state)), 'eval/'))
        row['round_seconds'] = seconds
        with interrupts.deferred():
          loop.run_until_complete(release.release(row, round_num))
          if round_num % checkpoint_every == 0 or round_num == rounds:
            loop.run_until_complete(checkpoints.save(state, round_num))
        elapsed = time.perf_counter() - start
        eta = elapsed / (round_num - done) * (rounds - round_num)
        print_fn(_progress(round_num, rounds, seconds, eta, row))
        logging.debug('round %d metrics: %s', round_num, row)
    finally:
      loop.close()
  rows = curves.read_rows(os.path.join(output_dir, METRICS_CSV))
  curves.plot(rows, os.path.join(output_dir, CURVES_PNG))
  summary = dict(summary_extra)
  summary['final_metrics'] = {k: _number(v) for k, v in rows[-1].items()}
  summary['resumed_after_round'] = done
  summary['wall_seconds'] = time.perf_counter() - start
  write_json(summary, os.path.join(output_dir, SUMMARY_JSON))
  save_model_weights(process.get_model_weights(state),
                     os.path.join(output_dir, MODEL_WEIGHTS_NPZ))
  return state
