"""fedmeta's uses of TFF's private modules, behind one version check.

Everything here reaches into TensorFlow Federated internals that have no
public equivalent (the local runtime's worker process, the mergeable-form
context's result containers, the remote stub's retry loop). They are written
against one TFF release; `check_version` refuses any other in one line, so a
TFF upgrade fails where these patches are applied, not somewhere inside TFF.
"""

PATCHED_TFF_VERSION = '0.87.0'


class UnsupportedTffVersion(RuntimeError):
  """TFF is not the release fedmeta's internals patches were written for."""


def check_version() -> None:
  """Raises `UnsupportedTffVersion` unless TFF is `PATCHED_TFF_VERSION`."""
  # pylint: disable-next=g-import-not-at-top
  import tensorflow_federated as tff
  if tff.__version__ != PATCHED_TFF_VERSION:
    raise UnsupportedTffVersion(
        f'fedmeta.tff_internals patches tensorflow-federated '
        f'{PATCHED_TFF_VERSION} internals, found {tff.__version__}: install '
        f'the version in requirements.lock')
