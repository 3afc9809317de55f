"""Small models and client datasets shared by the tests."""

import unittest

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import models

NUM_FEATURES = 4
NUM_CLASSES = 3
INPUT_SPEC = {'x': tf.TensorSpec([None, NUM_FEATURES], tf.float32),
              'y': tf.TensorSpec([None], tf.int32)}


def softmax_regression(hidden: int = 0):
  """A functional softmax regression (or 1-hidden-layer MLP) model."""
  def keras_model():
    layers = [tf.keras.layers.Input([NUM_FEATURES])]
    if hidden:
      layers.append(tf.keras.layers.Dense(hidden, activation='tanh'))
    layers.append(tf.keras.layers.Dense(NUM_CLASSES))
    return tf.keras.Sequential(layers)
  return models.from_keras(
      keras_model,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec=INPUT_SPEC,
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy])


def client_arrays(sizes, seed=0):
  """One (x, y) pair of arrays per client, of the given sizes."""
  rng = np.random.default_rng(seed)
  return [(rng.normal(size=(n, NUM_FEATURES)).astype(np.float32),
           rng.integers(0, NUM_CLASSES, n).astype(np.int32)) for n in sizes]


def as_dataset(x, y, batch_size):
  return tf.data.Dataset.from_tensor_slices({'x': x, 'y': y}).batch(batch_size)


def client_datasets(sizes, batch_size=4, seed=0):
  return [as_dataset(x, y, batch_size) for x, y in client_arrays(sizes, seed)]


def max_abs_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
             for u, v in zip(tf.nest.flatten(a), tf.nest.flatten(b)))


def run_rounds(process, datasets, rounds):
  """Runs `rounds` rounds on the same datasets; returns (weights, outputs)."""
  state = process.initialize()
  outputs = []
  for _ in range(rounds):
    output = process.next(state, datasets)
    state = output.state
    outputs.append(output)
  return process.get_model_weights(state), outputs


def data_dir() -> str:
  """The real datasets (`fedmeta.data.files.default_data_dir`).

  Raises:
    unittest.SkipTest: Where there are none; at import, pytest skips the
      whole module with this reason.
  """
  # pylint: disable-next=g-import-not-at-top
  from fedmeta.data import files
  path = files.default_data_dir()
  if not path:
    raise unittest.SkipTest('needs the real datasets: $FEDMETA_DATA_DIR is '
                            'unset and ../shared/data is missing')
  return path


def client_sizes(client_data) -> list[int]:
  return [int(client_data.create_tf_dataset_for_client(c).reduce(
      0, lambda n, _: n + 1)) for c in client_data.client_ids]


def client_arrays_of(client_data, client_id) -> dict:
  """A client's whole dataset as numpy arrays."""
  batches = list(client_data.create_tf_dataset_for_client(client_id)
                 .batch(1024).as_numpy_iterator())
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def flagged_dataset(x, y, support, batch_size=4):
  """A batched meta-learning client dataset with the given support mask."""
  return tf.data.Dataset.from_tensor_slices(
      {'support': np.asarray(support, bool), 'x': x, 'y': y}).batch(batch_size)


def meta_clients(sizes, support_fraction=0.5, seed=0):
  """(x, y, support mask) per client; the first part of each is support."""
  clients = []
  for x, y in client_arrays(sizes, seed):
    support = np.arange(len(y)) < int(round(support_fraction * len(y)))
    clients.append((x, y, support))
  return clients


def mlp_loss(trainable, x, y):
  """`softmax_regression(hidden)`'s loss written out by hand in TF."""
  *hidden, kernel, bias = trainable
  h = x
  for w, b in zip(hidden[::2], hidden[1::2]):
    h = tf.tanh(tf.matmul(h, w) + b)
  return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
      y, tf.matmul(h, kernel) + bias, from_logits=True))


def hand_maml_gradient(trainable, support, query, inner_lr, inner_steps=1,
                       first_order=False):
  """MAML's meta-gradient of `mlp_loss`, written independently of fedmeta."""
  trainable = [tf.constant(w) for w in trainable]
  with tf.GradientTape() as outer:
    outer.watch(trainable)
    adapted = trainable
    for _ in range(inner_steps):
      with tf.GradientTape() as inner:
        inner.watch(adapted)
        loss = mlp_loss(adapted, *support)
      grads = inner.gradient(loss, adapted)
      if first_order:
        grads = [tf.stop_gradient(g) for g in grads]
      adapted = [w - inner_lr * g for w, g in zip(adapted, grads)]
    query_loss = mlp_loss(adapted, *query)
  return [g.numpy() for g in outer.gradient(query_loss, trainable)]


def output_and_loss(model, batch) -> tuple[np.ndarray, np.ndarray]:
  """A functional model's predictions and loss on a numpy batch, at its
  initial weights."""
  # Keras-backed functional models run only in graphs.
  with tf.Graph().as_default() as graph:
    output = model.predict_on_batch(model.initial_weights, batch['x'],
                                    training=False)
    loss = model.loss(output, batch['y'])
    with tf.compat.v1.Session(graph=graph) as session:
      return session.run([output, loss])


def aggregate(factory, value_type, values, weights=None):
  """One round of aggregation `factory` on client `values` of `value_type`
  (float32 weights where it is weighted): (result, measurements)."""
  if isinstance(factory, tff.aggregators.WeightedAggregationFactory):
    process = factory.create(value_type, tff.TensorType(np.float32))
    output = process.next(process.initialize(), values, weights)
  else:
    process = factory.create(value_type)
    output = process.next(process.initialize(), values)
  return np.asarray(output.result), output.measurements


def intrinsic_calls(building_block):
  """(uri, call type) of every intrinsic call in a building block."""
  found, stack = [], [building_block]
  while stack:
    block = stack.pop()
    if (isinstance(block, tff.framework.Call)
        and isinstance(block.function, tff.framework.Intrinsic)):
      found.append((block.function.uri, block.type_signature))
    stack.extend(block.children())
  return found


def intrinsic_uris(process):
  """The URI of every intrinsic call in `process.next`."""
  return [uri for uri, _ in intrinsic_calls(process.next.to_building_block())]


def runner_config(*args):
  """The runner's `ExperimentConfig` for command-line `args`, parsed in
  this process (the runner's flags are defined on first use)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from fedmeta.experiments import run  # pylint: disable=g-import-not-at-top
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['run', *args])
  return run.config_from_flags()
