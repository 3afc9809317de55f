"""TFF worker processes as the tests see them, read from /proc."""

import os
import signal
import time
from typing import Optional


def takes_sigint_as_from_a_terminal() -> None:
  """`preexec_fn` for a child that a test sends SIGINT as Ctrl-C would.

  Neither inherited as ignored (a background job) nor blocked (some CI
  supervisors) from the test runner.
  """
  signal.signal(signal.SIGINT, signal.SIG_DFL)
  signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _stat(pid: int) -> Optional[tuple[str, int]]:
  """(state, parent pid) of `pid`, or None once it is gone."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      fields = f.read().rsplit(')', 1)[1].split()
  except OSError:
    return None
  return fields[0], int(fields[1])


def alive(pid: int) -> bool:
  """True while `pid` runs (a zombie awaiting its reaper counts as dead)."""
  stat = _stat(pid)
  return stat is not None and stat[0] != 'Z'


def live_workers(parent: Optional[int] = None) -> set[int]:
  """Running TFF worker_binary pids, optionally only children of `parent`."""
  pids = set()
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        if b'worker_binary' not in f.read():
          continue
    except OSError:
      continue
    stat = _stat(int(entry))
    if stat and stat[0] != 'Z' and parent in (None, stat[1]):
      pids.add(int(entry))
  return pids


def wait_dead(pids, timeout: float = 10.0) -> set[int]:
  """Waits up to `timeout` seconds for `pids` to die; returns the survivors."""
  deadline = time.monotonic() + timeout
  while (survivors := {p for p in pids if alive(p)}) and (
      time.monotonic() < deadline):
    time.sleep(0.1)
  return survivors
