"""FedProx's Synthetic(alpha, beta) federated data (Li et al. 2020, "Federated
Optimization in Heterogeneous Networks", https://arxiv.org/abs/1812.06127),
generated as the authors' released `generate_synthetic.py` does.

Device k: u_k ~ N(0, alpha); W_k ~ N(u_k, 1) [60 x 10]; b_k ~ N(u_k, 1) [10];
B_k ~ N(0, beta); v_k ~ N(B_k, 1) [60]; x ~ N(v_k, Sigma) with
Sigma = diag(j^-1.2), j = 1..60; y = argmax(softmax(x W_k + b_k)). Samples per
device = int(lognormal(4, 2)) + 50; the first 90% of each device's samples
train, the rest test. alpha and beta are standard deviations. The IID
variant shares one W, b ~ N(0, 1) and v = 0 across devices. Draws follow the
released script's order on a seeded `np.random.RandomState`.
Elements: `x` float32 [60], `y` int32.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from fedmeta.data import task as task_lib

NUM_DEVICES = 30
DIMENSION = 60
NUM_CLASSES = 10
TRAIN_FRACTION = 0.9


class Generated(NamedTuple):
  """The generator's draws; `x[k]`, `y[k]` are device k's samples."""
  x: list[np.ndarray]
  y: list[np.ndarray]
  u: np.ndarray  # [devices], the mean of W_k and b_k
  big_b: np.ndarray  # [devices], B_k, the mean of v_k
  v: np.ndarray  # [devices, 60]
  w: np.ndarray  # [devices, 60, 10]
  b: np.ndarray  # [devices, 10]


def covariance_diagonal() -> np.ndarray:
  return np.power(np.arange(1, DIMENSION + 1, dtype=np.float64), -1.2)


def generate(alpha: float, beta: float, *, iid: bool = False,
             num_devices: int = NUM_DEVICES, seed: int = 0) -> Generated:
  """Draws the devices' parameters and samples."""
  if alpha < 0 or beta < 0:
    raise task_lib.DataError(
        f'alpha, beta: must be >= 0, got alpha={alpha}, beta={beta}')
  if num_devices < 1:
    raise task_lib.DataError(f'num_devices: must be >= 1, got {num_devices}')
  rng = np.random.RandomState(seed)
  samples = rng.lognormal(4, 2, num_devices).astype(int) + 50
  u = rng.normal(0, alpha, num_devices)
  big_b = rng.normal(0, beta, num_devices)
  if iid:
    v = np.zeros((num_devices, DIMENSION))
    w_global = rng.normal(0, 1, (DIMENSION, NUM_CLASSES))
    b_global = rng.normal(0, 1, NUM_CLASSES)
  else:
    v = np.stack([rng.normal(big_b[k], 1, DIMENSION)
                  for k in range(num_devices)])
  cov = np.diag(covariance_diagonal())
  xs, ys, ws, bs = [], [], [], []
  for k in range(num_devices):
    # Drawn even when IID, as the released script does, to keep its stream.
    w = rng.normal(u[k], 1, (DIMENSION, NUM_CLASSES))
    b = rng.normal(u[k], 1, NUM_CLASSES)
    if iid:
      w, b = w_global, b_global
    x = rng.multivariate_normal(v[k], cov, samples[k])
    # argmax(softmax(z)) == argmax(z).
    ys.append(np.argmax(x @ w + b, axis=1).astype(np.int32))
    xs.append(x.astype(np.float32))
    ws.append(w)
    bs.append(b)
  return Generated(xs, ys, u, big_b, v, np.stack(ws), np.stack(bs))


def model_fn():
  """Multinomial logistic regression, 60 -> 10."""
  return task_lib.classifier(task_lib.mlp([DIMENSION], [], NUM_CLASSES),
                             tf.TensorSpec([None, DIMENSION], tf.float32))


def load(*, alpha: float = 0.0, beta: float = 0.0, iid: bool = False,
         num_clients: int = NUM_DEVICES, seed: int = 0) -> task_lib.Task:
  """Synthetic(alpha, beta), or Synthetic-IID with `iid=True`, over
  `num_clients` devices (the paper's 30 by default).

  Train and test `ClientData` share the device ids; each device's first 90%
  of samples train, the remaining 10% test.
  """
  data = generate(alpha, beta, iid=iid, num_devices=num_clients, seed=seed)
  cuts = [int(TRAIN_FRACTION * len(y)) for y in data.y]
  train = [(x[:c], y[:c]) for x, y, c in zip(data.x, data.y, cuts)]
  test = [(x[c:], y[c:]) for x, y, c in zip(data.x, data.y, cuts)]
  return task_lib.Task(
      name='synthetic',
      train=task_lib.client_data_from_pairs(train, 'device'),
      test=task_lib.client_data_from_pairs(test, 'device'),
      model_fn=model_fn)
