"""Where TFF computations run: the local runtime or TFF workers.

`import fedmeta` changes nothing in the process. An entry point (a script,
a notebook, a test session) calls `set_up_entry_point()` before TensorFlow's
first import: it quiets TensorFlow's C++ logs and installs the guard that
stops every TFF `worker_binary` this process starts when the process ends,
Ctrl-C, SIGTERM and SIGKILL included (`fedmeta.tff_internals.worker_guard`:
TFF 0.87 leaks it otherwise). A library user who does neither still gets the
guard from `set_local_context()` (or `set_remote_context`, `start_worker`).
"""

import os
import subprocess
import sys
from typing import Optional

from fedmeta import tf_logs
from fedmeta.tff_internals import remote_context
from fedmeta.tff_internals import worker_guard

TF_LOGS_ENV = tf_logs.ENV
tf_logs_enabled = tf_logs.enabled
quiet_tensorflow_logs = tf_logs.quiet
install_worker_guard = worker_guard.install
live_worker_pids = worker_guard.live_worker_pids
stop_workers = worker_guard.stop_workers
WorkerError = remote_context.WorkerError


def set_up_entry_point() -> None:
  """Quiets TensorFlow's logs and installs the worker guard; call it first.

  The guard's exit hook also drops TFF's default context, whose clean-up
  otherwise fails during interpreter teardown ("Exception ignored in
  ServiceManager.__del__") in any process that imported TFF.
  """
  quiet_tensorflow_logs()
  install_worker_guard()


def set_local_context(*, default_num_clients: Optional[int] = None,
                      max_concurrent_computation_calls: Optional[int] = None,
                      intra_op_threads: Optional[int] = None) -> None:
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
    intra_op_threads: Threads one TensorFlow op may use in the runtime's
      worker process (its `TF_NUM_INTRAOP_THREADS`); TensorFlow's default,
      one per core, when None. The driver's own TensorFlow is unchanged.
  """
  # pylint: disable-next=g-import-not-at-top
  import tensorflow_federated as tff
  install_worker_guard()
  if intra_op_threads is not None and intra_op_threads < 1:
    raise ValueError(
        f'intra_op_threads: must be >= 1, got {intra_op_threads}')
  worker_guard.set_worker_env(
      {} if intra_op_threads is None
      else {'TF_NUM_INTRAOP_THREADS': str(intra_op_threads)})
  kwargs = {}
  if default_num_clients is not None:
    kwargs['default_num_clients'] = default_num_clients
  if max_concurrent_computation_calls is not None:
    kwargs['max_concurrent_computation_calls'] = (
        max_concurrent_computation_calls)
  tff.backends.test.set_sync_test_cpp_execution_context(**kwargs)


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
  return worker_guard.GuardedPopen([
      worker_binary_path(), f'--port={port}',
      f'--max_concurrent_computation_calls={max_concurrent_computation_calls}'])


def worker_main(argv: Optional[list[str]] = None) -> None:
  """`fedmeta-worker --port=N`: runs TFF's worker service in this process."""
  args = sys.argv[1:] if argv is None else argv
  binary = worker_binary_path()
  os.execv(binary, [binary, *args])


def set_remote_context(workers: list[str], *,
                       connect_timeout_s: float = 10.0,
                       reconnect_timeout_s: float = 10.0) -> None:
  """Runs TFF computations on TFF workers (see `create_remote_context`)."""
  # pylint: disable-next=g-import-not-at-top
  import tensorflow_federated as tff
  install_worker_guard()  # For SIGTERM, and the local workers replaced.
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
  return remote_context.create(workers, connect_timeout_s=connect_timeout_s,
                               reconnect_timeout_s=reconnect_timeout_s)
