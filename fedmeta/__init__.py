"""fedmeta: federated learning and federated meta-learning on TFF.

Importing fedmeta quiets TensorFlow's C++ start-up logs (FEDMETA_TF_LOGS=1
keeps them) and makes sure no TFF `worker_binary` outlives the process (see
`fedmeta.runtime`).
"""

from fedmeta import runtime as _runtime

_runtime.quiet_tensorflow_logs()

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow_federated as _tff  # noqa: F401,E402

_runtime.install_worker_guard()

__version__ = '0.1.0'
