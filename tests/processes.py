"""TFF worker processes as the tests see them, read from /proc."""

import os
import signal
import time
import uuid
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


def live_workers(parent: Optional[int] = None,
                 tag: Optional[str] = None) -> set[int]:
  """Running TFF worker_binary pids, optionally only children of `parent`,
  or only those whose environment holds `tag` (see `tagged_environ`)."""
  pids = set()
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        if b'worker_binary' not in f.read():
          continue
      if tag is not None:
        with open(f'/proc/{entry}/environ', 'rb') as f:
          if f'{_TAG}={tag}'.encode() not in f.read().split(b'\0'):
            continue
    except OSError:
      continue
    stat = _stat(int(entry))
    if stat and stat[0] != 'Z' and parent in (None, stat[1]):
      pids.add(int(entry))
  return pids


_TAG = 'FEDMETA_TEST_TAG'


def tagged_environ() -> tuple[dict[str, str], str]:
  """An environment for a child process, and the tag its workers inherit.

  A worker outlives its parent by being reparented, so a leak check that
  runs beside other tests (pytest-xdist) can tell its own leaked workers
  only by what they inherit.
  """
  tag = uuid.uuid4().hex
  return {**os.environ, _TAG: tag}, tag


def wait_dead(pids, timeout: float = 10.0) -> set[int]:
  """Waits up to `timeout` seconds for `pids` to die; returns the survivors."""
  deadline = time.monotonic() + timeout
  while (survivors := {p for p in pids if alive(p)}) and (
      time.monotonic() < deadline):
    time.sleep(0.1)
  return survivors
