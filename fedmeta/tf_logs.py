"""TensorFlow's C++ start-up logs: off unless FEDMETA_TF_LOGS=1."""

import os

# Read before TensorFlow is imported (see `quiet`).
ENV = 'FEDMETA_TF_LOGS'


def enabled() -> bool:
  return os.environ.get(ENV, '').lower() in ('1', 'true', 'yes')


def quiet() -> None:
  """Silences TensorFlow's C++ start-up logging unless FEDMETA_TF_LOGS=1.

  Level 3, not 2: TF 2.14 logs spurious cuDNN/cuFFT/cuBLAS "Unable to register
  factory" errors at every start, GPU or not. Must run before `tensorflow` is
  first imported; an explicit TF_CPP_MIN_LOG_LEVEL set by the user wins.
  """
  if not enabled():
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
