"""fedmeta: federated learning and federated meta-learning on TFF.

Importing fedmeta has no process-wide effect. Entry points call
`fedmeta.runtime.quiet_tensorflow_logs()` before TensorFlow's first import,
and `fedmeta.runtime.set_local_context()` (or its siblings), which also makes
sure no TFF `worker_binary` outlives the process.
"""

__version__ = '0.1.0'
