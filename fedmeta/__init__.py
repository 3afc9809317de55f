"""fedmeta: federated learning and federated meta-learning on TFF.

Importing fedmeta has no process-wide effect. Entry points call
`fedmeta.runtime.set_up_entry_point()` before TensorFlow's first import: it
quiets TensorFlow's C++ logs and makes sure no TFF `worker_binary` outlives
the process (`set_local_context()` and its siblings install that guard too).
"""

__version__ = '0.1.0'
