"""A guarantee that TFF 0.87's local worker process dies with us.

TFF 0.87's local C++ runtime starts a `worker_binary` subprocess per execution
context and stops it only in `ServiceManager.__del__`, which runs after module
teardown at interpreter exit, i.e. usually never. The orphan inherits the
parent's stdout, so `python -m fedmeta.experiments.run ... | tee log` never returns.

`install` replaces the `Popen` that TFF's executor factory uses so
that every worker it starts
  * gets `PR_SET_PDEATHSIG=SIGKILL` (Linux): the kernel kills it when the thread
    that started it (the context's event-loop thread) or the whole process dies,
    SIGKILL of the parent included;
  * is stopped by an `atexit` hook on normal exit, exceptions and Ctrl-C; SIGTERM
    is turned into `SystemExit` so that the hook runs then too;
  * takes SIGINT, with which TFF stops it, even where this process was
    started with SIGINT ignored (a background job) or blocked;
  * writes its logs to /dev/null (or to our stderr when TF logs are on) instead
    of holding our stdout;
  * gets the environment variables of `set_worker_env` on top of ours.
"""

import atexit
import ctypes
import ctypes.util
import gc
import os
import signal
import subprocess
import sys
import threading

from fedmeta import tf_logs
from fedmeta import tff_internals

_PR_SET_PDEATHSIG = 1
_SIG_UNBLOCK = 1
_STOP_TIMEOUT_S = 5.0

_lock = threading.Lock()
_workers: list[subprocess.Popen] = []
# TFF's `ServiceManager` classes whose workers we started (see `stop_workers`).
_manager_classes: set[type] = set()
_guard_installed = False
# Added to the environment of the workers started from now on.
_worker_env: dict[str, str] = {}


def _load_libc():
  return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6',
                     use_errno=True)


def _sigint_set(libc):
  """A C `sigset_t` holding SIGINT alone."""
  sigset = ctypes.create_string_buffer(128)  # >= sizeof(sigset_t) anywhere.
  libc.sigemptyset(sigset)
  libc.sigaddset(sigset, signal.SIGINT)
  return sigset


class GuardedPopen(subprocess.Popen):
  """`subprocess.Popen` for TFF's worker: dies with its parent, never leaks."""

  # Resolved in the parent: the forked child must not import or allocate.
  _libc = _load_libc()
  _prctl = _libc.prctl if sys.platform.startswith('linux') else None
  _sigint = _sigint_set(_libc)

  def __init__(self, args, stdout=None, stderr=None, **kwargs):
    del stdout, stderr  # TFF passes ours; the worker must not hold them.
    parent_pid = os.getpid()
    prctl, libc, sigint = self._prctl, self._libc, self._sigint

    def die_with_parent():
      # TFF stops a worker with SIGINT and waits for it (when it replaces a
      # context, and in `ServiceManager.__del__`); a worker started from a
      # background shell inherits SIGINT ignored (or blocked, from some
      # process supervisors), and that wait never ends. libc's calls:
      # Python's signal() only works in the main thread, and TFF starts
      # workers from its event-loop thread.
      libc.signal(signal.SIGINT, signal.SIG_DFL)
      libc.sigprocmask(_SIG_UNBLOCK, sigint, None)
      if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
      if os.getppid() != parent_pid:  # The parent died before prctl ran.
        os._exit(1)

    sink = sys.stderr if tf_logs.enabled() else subprocess.DEVNULL
    if _worker_env:
      kwargs['env'] = {**kwargs.get('env', os.environ), **_worker_env}
    super().__init__(args, stdout=sink, stderr=sink,
                     preexec_fn=die_with_parent, **kwargs)
    # Called as ServiceManager.get_stub -> start_process -> Popen.
    manager = sys._getframe(2).f_locals.get('self')  # pylint: disable=protected-access
    with _lock:
      _workers[:] = [w for w in _workers if w.poll() is None] + [self]
      if hasattr(manager, '_process'):
        _manager_classes.add(type(manager))


class _SubprocessWithGuard:
  """Stands in for the `subprocess` module inside TFF's executor factory."""
  Popen = GuardedPopen

  def __getattr__(self, name):
    return getattr(subprocess, name)


def set_worker_env(env: dict[str, str]) -> None:
  """Workers started from now on get `env` on top of this process's
  environment (none added when empty)."""
  with _lock:
    _worker_env.clear()
    _worker_env.update(env)


def live_worker_pids() -> list[int]:
  """Process ids of the TFF workers this process started that still run."""
  with _lock:
    return [w.pid for w in _workers if w.poll() is None]


def _no_op_del(self):
  del self


def stop_workers() -> None:
  """Stops every TFF worker this process started (SIGTERM, then SIGKILL).

  SIGTERM, not TFF's SIGINT: a process started in the background by a
  non-interactive shell inherits SIGINT as ignored, and so does its worker.
  TFF's own `ServiceManager.__del__` is disabled for the managers whose worker
  we stop (it would signal a reaped process id, with SIGINT that may be
  ignored), and the default context is dropped so that the remaining managers
  are collected now rather than during module teardown, where their `__del__`
  fails on globals that are already None.
  """
  with _lock:
    workers, _workers[:] = list(_workers), []
    for cls in _manager_classes:
      cls.__del__ = _no_op_del
  for worker in workers:
    if worker.poll() is not None:
      continue
    worker.terminate()
    try:
      worker.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
      worker.kill()
      worker.wait()
  # pylint: disable-next=g-import-not-at-top
  from tensorflow_federated.python.core.impl.context_stack import set_default_context
  set_default_context.set_no_default_context()
  gc.collect()


def _exit_on_sigterm(signum, frame):
  del frame
  raise SystemExit(128 + signum)


def install() -> None:
  """Makes every TFF worker started from now on die with this process.

  Idempotent. Installs the SIGTERM handler only where SIGTERM still has its
  default action, so an application's own handler is left alone.
  """
  global _guard_installed
  if _guard_installed:
    return
  tff_internals.check_version()
  # pylint: disable-next=g-import-not-at-top
  from tensorflow_federated.python.core.impl.executor_stacks import executor_factory
  executor_factory.subprocess = _SubprocessWithGuard()
  atexit.register(stop_workers)
  if (threading.current_thread() is threading.main_thread()
      and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
  _guard_installed = True
