"""Sinusoid regression, MAML's few-shot benchmark (Finn et al. 2017,
https://arxiv.org/abs/1703.03400, section 5.1), one client per sine.

Client `i` draws amplitude ~ U[0.1, 5], phase ~ U[0, pi] and its inputs
x ~ U[-5, 5]; y = amplitude * sin(x - phase). Everything is a stateless
function of (seed, split, i), so clients are generated lazily from their ids:
a population of 100,000 clients costs nothing until a client is read.
Elements: `x` float32 [1], `y` float32 [1].
"""

import tensorflow as tf

from fedmeta import models
from fedmeta.data import task as task_lib

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, 3.141592653589793)
X_RANGE = (-5.0, 5.0)
_SPLITS = {'train': 0, 'test': 1}


def model_fn():
  """MAML's regressor: 1-40-40-1 ReLU MLP, mean squared error."""
  return models.from_keras(
      task_lib.mlp([1], [40, 40], 1),
      loss=tf.keras.losses.MeanSquaredError(),
      input_spec={'x': tf.TensorSpec([None, 1], tf.float32),
                  'y': tf.TensorSpec([None, 1], tf.float32)})


def _client_seed(seed: int, split: str, client_id) -> tf.Tensor:
  if isinstance(client_id, str):  # Eager string ops cost a client ~2 ms.
    index = tf.constant(int(client_id.split('_')[-1]), tf.int64)
  else:
    index = tf.strings.to_number(
        tf.strings.split(client_id, '_')[-1], tf.int64)
  return tf.stack([tf.constant(seed, tf.int64) * 2 + _SPLITS[split], index])


def sine(seed: int, split: str, client_id) -> tuple[tf.Tensor, tf.Tensor]:
  """(amplitude, phase) of a client's sine."""
  u = tf.random.stateless_uniform(
      [2], _client_seed(seed, split, client_id), dtype=tf.float32)
  return (AMPLITUDE[0] + (AMPLITUDE[1] - AMPLITUDE[0]) * u[0],
          PHASE[0] + (PHASE[1] - PHASE[0]) * u[1])


def client_data(split: str, num_clients: int, examples_per_client: int,
                seed: int) -> task_lib.LazyClientData:
  """`num_clients` lazily generated sines with ids `f'{split}_{i:06d}'`."""

  def dataset_fn(client_id):
    amplitude, phase = sine(seed, split, client_id)
    x = tf.random.stateless_uniform(
        [examples_per_client, 1],
        _client_seed(seed, split, client_id) + [0, 1 << 40],
        X_RANGE[0], X_RANGE[1])
    return tf.data.Dataset.from_tensor_slices(
        {'x': x, 'y': amplitude * tf.sin(x - phase)})

  return task_lib.LazyClientData(task_lib.ClientIds(split, num_clients),
                                 dataset_fn)


def load(*, num_clients: int = 100_000, num_test_clients: int = 1_000,
         examples_per_client: int = 20, seed: int = 0) -> task_lib.Task:
  """Train and held-out test sines.

  Args:
    num_clients: Training clients (tasks).
    num_test_clients: Held-out clients for meta-test, drawn independently.
    examples_per_client: Points per client; MAML's K = 10 support plus 10
      query with the default 20 and `support_fraction=0.5`.
    seed: Seed of every draw.
  """
  for name, value in (('num_clients', num_clients),
                      ('num_test_clients', num_test_clients),
                      ('examples_per_client', examples_per_client)):
    if value < 1:
      raise task_lib.DataError(f'{name}: must be >= 1, got {value}')
  return task_lib.Task(
      name='sinusoid',
      train=client_data('train', num_clients, examples_per_client, seed),
      test=client_data('test', num_test_clients, examples_per_client, seed),
      model_fn=model_fn)
