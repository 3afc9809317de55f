"""TFF execution context set-up, and a guarantee that TFF's worker dies with us.

TFF 0.87's local C++ runtime starts a `worker_binary` subprocess per execution
context and stops it only in `ServiceManager.__del__`, which runs after module
teardown at interpreter exit, i.e. usually never. The orphan inherits the
parent's stdout, so `python -m experiments.run ... | tee log` never returns.

`install_worker_guard` replaces the `Popen` that TFF's executor factory uses so
that every worker it starts
  * gets `PR_SET_PDEATHSIG=SIGKILL` (Linux): the kernel kills it when the thread
    that started it (the context's event-loop thread) or the whole process dies,
    SIGKILL of the parent included;
  * is stopped by an `atexit` hook on normal exit, exceptions and Ctrl-C; SIGTERM
    is turned into `SystemExit` so that the hook runs then too;
  * writes its logs to /dev/null (or to our stderr when TF logs are on) instead
    of holding our stdout.
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
from typing import Optional

# Read before TensorFlow is imported (see `quiet_tensorflow_logs`).
TF_LOGS_ENV = 'FEDMETA_TF_LOGS'

_PR_SET_PDEATHSIG = 1
_STOP_TIMEOUT_S = 5.0

_lock = threading.Lock()
_workers: list[subprocess.Popen] = []
# TFF's `ServiceManager` classes whose workers we started (see `stop_workers`).
_manager_classes: set[type] = set()
_guard_installed = False


def tf_logs_enabled() -> bool:
  return os.environ.get(TF_LOGS_ENV, '').lower() in ('1', 'true', 'yes')


def quiet_tensorflow_logs() -> None:
  """Silences TensorFlow's C++ start-up logging unless FEDMETA_TF_LOGS=1.

  Level 3, not 2: TF 2.14 logs spurious cuDNN/cuFFT/cuBLAS "Unable to register
  factory" errors at every start, GPU or not. Must run before `tensorflow` is
  first imported; an explicit TF_CPP_MIN_LOG_LEVEL set by the user wins.
  """
  if not tf_logs_enabled():
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def _load_prctl():
  if not sys.platform.startswith('linux'):
    return None
  libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6',
                     use_errno=True)
  return libc.prctl


class _GuardedPopen(subprocess.Popen):
  """`subprocess.Popen` for TFF's worker: dies with its parent, never leaks."""

  # Resolved in the parent: the forked child must not import or allocate.
  _prctl = _load_prctl()

  def __init__(self, args, stdout=None, stderr=None, **kwargs):
    del stdout, stderr  # TFF passes ours; the worker must not hold them.
    parent_pid = os.getpid()
    prctl = self._prctl

    def die_with_parent():
      if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
      if os.getppid() != parent_pid:  # The parent died before prctl ran.
        os._exit(1)

    sink = sys.stderr if tf_logs_enabled() else subprocess.DEVNULL
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
  Popen = _GuardedPopen

  def __getattr__(self, name):
    return getattr(subprocess, name)


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


def install_worker_guard() -> None:
  """Makes every TFF worker started from now on die with this process.

  Idempotent. Installs the SIGTERM handler only where SIGTERM still has its
  default action, so an application's own handler is left alone.
  """
  global _guard_installed
  if _guard_installed:
    return
  # pylint: disable-next=g-import-not-at-top
  from tensorflow_federated.python.core.impl.executor_stacks import executor_factory
  executor_factory.subprocess = _SubprocessWithGuard()
  atexit.register(stop_workers)
  if (threading.current_thread() is threading.main_thread()
      and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
  _guard_installed = True


def set_local_context(*, default_num_clients: Optional[int] = None,
                      max_concurrent_computation_calls: Optional[int] = None,
                      ) -> None:
  """Runs TFF computations on the local C++ runtime (TFF's default backend).

  Secure-sum intrinsics (`tff.federated_secure_sum_bitwidth`, used by
  `tff.aggregators.SecureSumFactory`) run as the plain sums they simulate,
  after the clients' clipping and quantization, as TFF's test context
  compiles them: the local runtime has no secure-aggregation protocol.

  Args:
    default_num_clients: Number of clients assumed by computations whose client
      cardinality cannot be inferred from their arguments; TFF's default
      when None.
    max_concurrent_computation_calls: How many client computations the
      runtime runs at once; unbounded (TFF's default) when None.
  """
  # pylint: disable-next=g-import-not-at-top
  import tensorflow_federated as tff
  install_worker_guard()
  kwargs = {}
  if default_num_clients is not None:
    kwargs['default_num_clients'] = default_num_clients
  if max_concurrent_computation_calls is not None:
    kwargs['max_concurrent_computation_calls'] = (
        max_concurrent_computation_calls)
  tff.backends.test.set_sync_test_cpp_execution_context(**kwargs)
