"""Federated Prototypical Networks against hand-written numpy."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import models
from fedmeta import runtime
from fedmeta.algorithms import fed_protonet
from fedmeta.data import omniglot
from tests import testing

FEATURES, DIM = 4, 3


def float64_linear_embedding():
  """The embedding x W + b, in float64 so gradients compare to 1e-6."""
  def keras_model():
    return tf.keras.Sequential([
        tf.keras.layers.Input([FEATURES], dtype=tf.float64),
        tf.keras.layers.Dense(DIM, dtype=tf.float64,
                              bias_initializer='random_normal')])
  tf.keras.utils.set_random_seed(0)
  return models.from_keras(
      keras_model,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec={'x': tf.TensorSpec([None, FEATURES], tf.float64),
                  'y': tf.TensorSpec([None], tf.int32)},
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy])


def episode(rng, ways, shots, queries):
  """Arrays of one episode: support first, labels 0..ways-1."""
  y = np.concatenate([np.repeat(np.arange(ways), shots),
                      np.repeat(np.arange(ways), queries)]).astype(np.int32)
  x = rng.normal(size=(len(y), FEATURES)) + y[:, None]
  support = np.arange(len(y)) < ways * shots
  return x, y, support


def as_dataset(episodes):
  """One batch an episode."""
  datasets = [tf.data.Dataset.from_tensor_slices(
      {'support': s, 'x': x, 'y': y}).batch(len(y)) for x, y, s in episodes]
  dataset = datasets[0]
  for more in datasets[1:]:
    dataset = dataset.concatenate(more)
  return dataset


def hand_loss_and_gradient(kernel, bias, x, y, support):
  """The prototypical loss and its gradient, by the chain rule in numpy."""
  f = x @ kernel + bias
  ways = y[support].max() + 1
  counts = np.bincount(y[support], minlength=ways)
  centers = np.stack([f[support][y[support] == k].mean(0)
                      for k in range(ways)])
  fq, yq = f[~support], y[~support]
  diff = fq[:, None, :] - centers[None, :, :]  # [q, ways, d]
  logits = -np.sum(diff**2, -1)
  logits -= logits.max(1, keepdims=True)
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  loss = -np.mean(np.log(p[np.arange(len(yq)), yq]))
  d_logits = (p - np.eye(ways)[yq]) / len(yq)
  # logits_qk = -|f_q - c_k|^2; c_k is the mean of class k's support.
  d_fq = -2 * np.einsum('qk,qkd->qd', d_logits, diff)
  d_centers = 2 * np.einsum('qk,qkd->kd', d_logits, diff)
  d_f = np.zeros_like(f)
  d_f[~support] = d_fq
  d_f[support] = d_centers[y[support]] / counts[y[support], None]
  return loss, (x.T @ d_f, d_f.sum(0))


class PrototypesTest(parameterized.TestCase):

  def test_prototypes_are_support_means_and_logits_minus_distances(self):
    # Two classes in 2-D: prototypes (1, 0) and (0, 2).
    embeddings = tf.constant([[0., 0.], [2., 0.], [0., 1.], [0., 3.]])
    centers = fed_protonet.prototypes(embeddings, tf.constant([0, 0, 1, 1]),
                                      2)
    np.testing.assert_allclose(centers, [[1., 0.], [0., 2.]])
    queries = tf.constant([[1., 1.], [3., 2.]])
    # |(1,1)-(1,0)|^2 = 1, |(1,1)-(0,2)|^2 = 2; |(3,2)-(1,0)|^2 = 8,
    # |(3,2)-(0,2)|^2 = 9.
    np.testing.assert_allclose(fed_protonet.distance_logits(
        queries, centers, 'squared_euclidean'), [[-1., -2.], [-8., -9.]])
    # Cosines: (1,1).(1,0) = 1/sqrt2, (1,1).(0,1) = 1/sqrt2;
    # (3,2).(1,0) = 3/sqrt13, (3,2).(0,1) = 2/sqrt13.
    np.testing.assert_allclose(
        fed_protonet.distance_logits(queries, centers, 'cosine'),
        [[2**-0.5, 2**-0.5], [3 / 13**0.5, 2 / 13**0.5]], rtol=1e-6)

  @parameterized.parameters('group', 'batch')
  def test_omniglot_embedding_is_conv4_without_its_dense_layer(self, norm):
    embedding = omniglot.conv4_model_fn(None, norm)
    classifier = omniglot.conv4_model_fn(5, norm)
    # Snell et al.'s 64 dimensions; the classifier adds a 64 x 5 kernel.
    self.assertEqual(np.shape(embedding.initial_weights[0][-1]), (64,))
    self.assertEqual(
        [np.shape(w) for w in classifier.initial_weights[0][-2:]],
        [(64, 5), (5,)])
    self.assertLen(classifier.initial_weights[0],
                   len(embedding.initial_weights[0]) + 2)


class FedProtoNetTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    runtime.set_local_context()

  def setUp(self):
    super().setUp()
    self.model = float64_linear_embedding()
    self.initial = [np.asarray(w) for w in self.model.initial_weights[0]]

  def test_one_client_round_is_a_hand_written_gradient_step(self):
    rng = np.random.default_rng(1)
    x, y, support = episode(rng, ways=3, shots=2, queries=4)
    lr = 0.3
    process = algorithms.build_fed_protonet(
        self.model,
        client_optimizer=tff.learning.optimizers.build_sgdm(lr),
        server_optimizer=tff.learning.optimizers.build_sgdm(1.0))
    weights, outputs = testing.run_rounds(
        process, [as_dataset([(x, y, support)])], 1)
    loss, gradient = hand_loss_and_gradient(*self.initial, x, y, support)
    expected = [w - lr * g for w, g in zip(self.initial, gradient)]
    self.assertLess(testing.max_abs_diff(weights.trainable, expected), 1e-6)
    train = outputs[0].metrics['client_work']['train']
    self.assertAlmostEqual(train['loss'], loss, places=5)
    self.assertEqual(train['num_examples'], 12)

  def test_local_episodes_are_sequential_steps(self):
    rng = np.random.default_rng(2)
    episodes = [episode(rng, ways=2, shots=3, queries=2),
                episode(rng, ways=4, shots=1, queries=3)]
    lr = 0.2
    weights, _ = testing.run_rounds(algorithms.build_fed_protonet(
        self.model, client_optimizer=tff.learning.optimizers.build_sgdm(lr),
        server_optimizer=tff.learning.optimizers.build_sgdm(1.0)),
        [as_dataset(episodes)], 1)
    expected = self.initial
    for x, y, support in episodes:
      _, gradient = hand_loss_and_gradient(*expected, x, y, support)
      expected = [w - lr * g for w, g in zip(expected, gradient)]
    self.assertLess(testing.max_abs_diff(weights.trainable, expected), 1e-6)

  def test_server_averages_clients_by_queries(self):
    rng = np.random.default_rng(3)
    a = episode(rng, ways=2, shots=1, queries=1)  # 2 queries.
    b = episode(rng, ways=3, shots=1, queries=2)  # 6 queries.
    weights, _ = testing.run_rounds(algorithms.build_fed_protonet(
        self.model, client_optimizer=tff.learning.optimizers.build_sgdm(1.0),
        server_optimizer=tff.learning.optimizers.build_sgdm(0.5)),
        [as_dataset([a]), as_dataset([b])], 1)
    grads = [hand_loss_and_gradient(*self.initial, *e)[1] for e in (a, b)]
    expected = [w - 0.5 * (2 * ga + 6 * gb) / 8
                for w, ga, gb in zip(self.initial, *grads)]
    self.assertLess(testing.max_abs_diff(weights.trainable, expected), 1e-6)

  @parameterized.parameters('squared_euclidean', 'cosine')
  def test_evaluation_classifies_by_nearest_prototype(self, distance):
    rng = np.random.default_rng(4)
    episodes = [episode(rng, ways=5, shots=2, queries=3) for _ in range(6)]
    evaluate = algorithms.build_protonet_eval(self.model, distance=distance)
    weights = models.initial_weights(self.model)
    # Batches of 7 split the episodes: evaluation must see each whole.
    summary = evaluate(weights, [
        tf.data.Dataset.from_tensor_slices(
            {'support': s, 'x': x, 'y': y}).batch(7) for x, y, s in episodes])
    kernel, bias = self.initial
    accuracies = []
    for x, y, support in episodes:
      f = x @ kernel + bias
      centers = np.stack([f[support][y[support] == k].mean(0)
                          for k in range(5)])
      q = f[~support]
      if distance == 'cosine':
        score = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
            centers / np.linalg.norm(centers, axis=1, keepdims=True)).T
      else:
        score = -((q[:, None] - centers[None]) ** 2).sum(-1)
      accuracies.append(np.mean(score.argmax(1) == y[~support]))
    self.assertEqual(summary['num_clients'], 6)
    self.assertEqual(list(summary), ['num_clients', 'after'])
    self.assertLess(abs(summary['after']['sparse_categorical_accuracy']['mean']
                        - np.mean(accuracies)), 1e-6)

  def test_a_client_without_support_moves_nothing(self):
    x = np.ones((3, FEATURES))
    dataset = as_dataset([(x, np.zeros(3, np.int32), np.zeros(3, bool))])
    weights, outputs = testing.run_rounds(algorithms.build_fed_protonet(
        self.model), [dataset], 1)
    self.assertEqual(testing.max_abs_diff(weights.trainable, self.initial),
                     0.0)
    self.assertEqual(
        outputs[0].metrics['client_work']['train']['num_examples'], 0)

  def test_unknown_distance_is_refused(self):
    with self.assertRaisesRegex(ValueError, 'distance'):
      algorithms.build_fed_protonet(self.model, distance='manhattan')


if __name__ == '__main__':
  absltest.main()
