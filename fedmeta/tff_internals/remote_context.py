"""TFF workers as one context: TFF's mergeable form, patched to fail fast.

Private TFF 0.87 modules (see `fedmeta.tff_internals`): the public
`create_remote_context` is in `fedmeta.runtime`.
"""

from collections.abc import Mapping

from fedmeta import tff_internals


class WorkerError(RuntimeError):
  """A TFF worker that cannot be reached, or that stopped answering."""


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


def create(workers: list[str], *, connect_timeout_s: float,
           reconnect_timeout_s: float):
  """`fedmeta.runtime.create_remote_context`'s context."""
  tff_internals.check_version()
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
