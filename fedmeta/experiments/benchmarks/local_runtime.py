"""The local runtime as the speed benchmarks set it: `--intra_op_threads`.

Each benchmark that runs TFF's local runtime reads this flag, so one setting
of the worker's threads can be compared across all of them (run each twice,
interleaved, with and without it).
"""

from absl import flags

from fedmeta import runtime

INTRA_OP_THREADS = flags.DEFINE_integer(
    'intra_op_threads', None, "Threads a TF op may use in TFF's worker "
    "(`fedmeta.runtime.set_local_context`); TF's default if unset.",
    lower_bound=1)


def set_local_context(**kwargs) -> None:
  """`runtime.set_local_context` with `--intra_op_threads`."""
  runtime.set_local_context(intra_op_threads=INTRA_OP_THREADS.value, **kwargs)


def flag_args() -> list[str]:
  """`--intra_op_threads` as a command-line argument, for a child process
  (none when unset)."""
  value = INTRA_OP_THREADS.value
  return [] if value is None else [f'--intra_op_threads={value}']
