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
  * takes SIGINT, with which TFF stops it, even where this process was
    started with SIGINT ignored (a background job) or blocked;
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
from collections.abc import Mapping
from typing import Optional

# Read before TensorFlow is imported (see `quiet_tensorflow_logs`).
TF_LOGS_ENV = 'FEDMETA_TF_LOGS'

_PR_SET_PDEATHSIG = 1
_SIG_UNBLOCK = 1
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


def _load_libc():
  return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6',
                     use_errno=True)


def _sigint_set(libc):
  """A C `sigset_t` holding SIGINT alone."""
  sigset = ctypes.create_string_buffer(128)  # >= sizeof(sigset_t) anywhere.
  libc.sigemptyset(sigset)
  libc.sigaddset(sigset, signal.SIGINT)
  return sigset


class _GuardedPopen(subprocess.Popen):
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


class WorkerError(RuntimeError):
  """A TFF worker that cannot be reached, or that stopped answering."""


def worker_binary_path() -> str:
  """TFF's C++ executor service, shipped in the tensorflow-federated wheel."""
  # pylint: disable-next=g-import-not-at-top
  import importlib.util
  package = importlib.util.find_spec('tensorflow_federated')
  return os.path.join(package.submodule_search_locations[0], 'data',
                      'worker_binary')


def start_worker(port: int, *, max_concurrent_computation_calls: int = -1
                 ) -> subprocess.Popen:
  """Starts TFF's worker on `port` as a child that dies with this process."""
  install_worker_guard()  # Stops it at exit, as it does TFF's own workers.
  return _GuardedPopen([
      worker_binary_path(), f'--port={port}',
      f'--max_concurrent_computation_calls={max_concurrent_computation_calls}'])


def worker_main(argv: Optional[list[str]] = None) -> None:
  """`fedmeta-worker --port=N`: runs TFF's worker service in this process."""
  args = sys.argv[1:] if argv is None else argv
  binary = worker_binary_path()
  os.execv(binary, [binary, *args])


def _connect(address: str, timeout_s: float):
  # pylint: disable=g-import-not-at-top,protected-access
  import grpc
  from tensorflow_federated.python.core.impl.executor_stacks import executor_factory
  # The message limits of TFF's own channel to its local worker.
  channel = grpc.insecure_channel(
      address, executor_factory._GRPC_CHANNEL_OPTIONS)
  try:
    grpc.channel_ready_future(channel).result(timeout=timeout_s)
  except grpc.FutureTimeoutError:
    channel.close()
    raise WorkerError(f'cannot reach TFF worker {address} within '
                      f'{timeout_s:g} s') from None
  return channel


def _worker_stub(address: str, channel, reconnect_timeout_s: float):
  """TFF's gRPC stub for `address`, failing where TFF would retry forever.

  TFF retries a call that failed with UNAVAILABLE without end, so a worker
  that died would hang the run; a worker not back within
  `reconnect_timeout_s` raises `WorkerError` instead.
  """
  # pylint: disable=g-import-not-at-top
  import grpc
  from tensorflow_federated.python.core.impl.executors import executors_errors
  from tensorflow_federated.python.core.impl.executors import remote_executor_grpc_stub
  # pylint: enable=g-import-not-at-top
  base = remote_executor_grpc_stub.RemoteExecutorGrpcStub

  def failing(method):
    def call(self, request):
      try:
        return method(self, request)
      except executors_errors.RetryableGRPCError as e:
        try:
          grpc.channel_ready_future(channel).result(timeout=reconnect_timeout_s)
        except grpc.FutureTimeoutError:
          raise WorkerError(f'TFF worker {address} stopped answering') from e
        raise
    return call

  calls = ('get_executor', 'create_value', 'create_struct', 'create_call',
           'create_selection', 'compute', 'dispose', 'dispose_executor')
  stub_class = type('WorkerStub', (base,),
                    {name: failing(getattr(base, name)) for name in calls})
  return stub_class(channel)


def _partitioned_context_class():
  """TFF's `MergeableCompExecutionContext`, returning the Python containers
  of the computation's own result type (a `LearningProcessOutput`, say),
  which compiling to mergeable form drops. Uses that context's internals
  (TFF is pinned at 0.87.0)."""
  # pylint: disable=g-import-not-at-top,protected-access
  from tensorflow_federated.python.core.environments.tensorflow_frontend import tensorflow_computation
  from tensorflow_federated.python.core.impl.execution_contexts import mergeable_comp_execution_context as mergeable
  from tensorflow_federated.python.common_libs import structure
  from tensorflow_federated.python.core.impl.types import computation_types
  from tensorflow_federated.python.core.impl.types import type_conversions

  class PartitionedContext(mergeable.MergeableCompExecutionContext):

    def invoke(self, comp, arg=None):
      form = self._compiler_pipeline.compile(comp)
      if arg is not None:
        arg = mergeable.MergeableCompExecutionContextValue(
            arg, form.up_to_merge.type_signature.parameter,
            self._num_subrounds)
      result = self._async_runner.run_coro_and_return_result(
          mergeable._invoke_mergeable_comp_form(
              form, arg, self._async_execution_contexts))
      result_type = comp.type_signature.result
      return tensorflow_computation.transform_result(
          type_conversions.type_to_py_container(
              as_struct(result, result_type), result_type))

  def as_struct(value, type_spec):
    """Python containers back to the `Struct`s they were made from."""
    if isinstance(type_spec, computation_types.FederatedType):
      if not type_spec.all_equal:
        return [as_struct(v, type_spec.member) for v in value]
      type_spec = type_spec.member
    if not isinstance(type_spec, computation_types.StructType):
      return value
    values = value.values() if isinstance(value, Mapping) else value
    return structure.Struct([
        (name, as_struct(v, t))
        for (name, t), v in zip(structure.iter_elements(type_spec), values)])

  return PartitionedContext


def set_remote_context(workers: list[str], *,
                       connect_timeout_s: float = 10.0,
                       reconnect_timeout_s: float = 10.0) -> None:
  """Runs TFF computations on TFF workers (see `create_remote_context`)."""
  # pylint: disable-next=g-import-not-at-top
  import tensorflow_federated as tff
  tff.framework.set_default_context(create_remote_context(
      workers, connect_timeout_s=connect_timeout_s,
      reconnect_timeout_s=reconnect_timeout_s))


def create_remote_context(workers: list[str], *,
                          connect_timeout_s: float = 10.0,
                          reconnect_timeout_s: float = 10.0):
  """A TFF context running computations on TFF workers, clients split.

  Each worker is TFF's C++ executor service (`fedmeta-worker --port=N`, or
  `worker_binary` from the tensorflow-federated wheel). A round's clients are
  partitioned across the workers by TFF's mergeable-computation context: each
  worker runs its clients' work and their part of the aggregation, and the
  partial aggregates are merged here. Secure sums run as in
  `set_local_context`.

  Args:
    workers: `host:port` of each worker.
    connect_timeout_s: How long to wait for each worker at start.
    reconnect_timeout_s: How long a worker that stopped answering may take to
      come back before the computation fails.

  Raises:
    WorkerError: A worker cannot be reached within `connect_timeout_s`.
  """
  # pylint: disable=g-import-not-at-top
  from tensorflow_federated.python.core.backends.native import compiler
  from tensorflow_federated.python.core.backends.native import mergeable_comp_compiler
  from tensorflow_federated.python.core.backends.test import compiler as test_compiler
  from tensorflow_federated.python.core.environments.tensorflow_frontend import tensorflow_computation
  from tensorflow_federated.python.core.impl.execution_contexts import async_execution_context
  from tensorflow_federated.python.core.impl.executor_stacks import python_executor_stacks
  from tensorflow_federated.python.core.impl.executors import remote_executor
  from tensorflow_federated.python.core.impl.types import placements
  # pylint: enable=g-import-not-at-top
  if not workers:
    raise ValueError('workers: give at least one host:port')
  channels = {address: _connect(address, connect_timeout_s)
              for address in workers}

  def worker_context(address, channel):
    stub = _worker_stub(address, channel, reconnect_timeout_s)

    def stack_fn(cardinalities):
      # As TFF's local stack: computations without clients still name them.
      cardinalities.setdefault(placements.CLIENTS, 0)
      executor = remote_executor.RemoteExecutor(stub)
      executor.set_cardinalities(cardinalities)
      return executor

    return async_execution_context.AsyncExecutionContext(
        executor_fn=python_executor_stacks.ResourceManagingExecutorFactory(
            executor_stack_fn=stack_fn),
        compiler_fn=compiler.desugar_and_transform_to_native,
        transform_args=tensorflow_computation.transform_args,
        transform_result=tensorflow_computation.transform_result)

  def to_mergeable_form(comp):
    return mergeable_comp_compiler.compile_to_mergeable_comp_form(
        test_compiler.replace_secure_intrinsics_with_bodies(comp))

  return _partitioned_context_class()(
      [worker_context(a, c) for a, c in channels.items()],
      compiler_fn=to_mergeable_form)
