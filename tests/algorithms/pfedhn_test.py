"""pFedHN against the chain rule by hand, finite differences and numpy."""

from absl.testing import absltest
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import aggregation
from fedmeta import runtime
from fedmeta.algorithms import pfedhn
from tests import testing

NUM_CLIENTS, EMBEDDING_DIM = 4, 2
CLIENT_LR, SERVER_LR = 0.1, 0.5
SHAPES = ((3, 1), (1,))


def linear_regression(dtype=np.float64):
  """x k + b with a 3x1 kernel, squared loss, float64 (or `dtype`), so the
  hand-written chain rule compares to 1e-6."""
  initial = (np.zeros((3, 1), dtype), np.zeros(1, dtype))

  @tf.function
  def predict_on_batch(weights, x, training=True):
    del training
    kernel, bias = weights[0]
    return tf.matmul(x, kernel) + bias

  @tf.function
  def loss(output, label, sample_weight=None):
    del sample_weight
    return tf.reduce_mean(tf.square(output - label))

  return tff.learning.models.FunctionalModel(
      initial_weights=(initial, ()), predict_on_batch_fn=predict_on_batch,
      loss_fn=loss,
      input_spec={'x': tf.TensorSpec([None, 3], dtype),
                  'y': tf.TensorSpec([None, 1], dtype)})


def client_arrays(seed, n=4):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 3))
  return x, x @ np.array([[1.0], [-2.0], [0.5]]) + rng.normal(size=(n, 1))


def as_dataset(x, y, batch_size=2):
  return tf.data.Dataset.from_tensor_slices({'x': x, 'y': y}).batch(batch_size)


def np_generate(phi, e, shapes):
  """The hypernetwork in numpy: ReLU hidden layers, then linear heads."""
  h = np.asarray(e)
  for kernel, bias in phi['layers']:
    h = np.maximum(h @ kernel + bias, 0.0)
  return [(h @ kernel + bias).reshape(s)
          for (kernel, bias), s in zip(phi['heads'], shapes)]


def np_delta(theta, x, y, lr=CLIENT_LR, batch_size=2):
  """theta - SGD-trained theta, one step per batch, squared loss."""
  kernel, bias = theta
  for i in range(0, len(x), batch_size):
    xb, yb = x[i:i + batch_size], y[i:i + batch_size]
    r = xb @ kernel + bias - yb
    kernel = kernel - lr * 2 * xb.T @ r / len(xb)
    bias = bias - lr * 2 * r.sum(0) / len(xb)
  return [theta[0] - kernel, theta[1] - bias]


def tensor_types(type_spec):
  """The `tff.TensorType`s in a type, in order."""
  if isinstance(type_spec, tff.TensorType):
    return [type_spec]
  return [t for member in type_spec for t in tensor_types(member)]


class PFedHNProcessTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    runtime.set_local_context()
    cls.model = linear_regression()
    cls.process = pfedhn.build_pfedhn(
        cls.model, num_clients=NUM_CLIENTS, embedding_dim=EMBEDDING_DIM,
        hidden=(),
        client_optimizer=tff.learning.optimizers.build_sgdm(CLIENT_LR),
        server_optimizer=tff.learning.optimizers.build_sgdm(SERVER_LR))
    cls.state = cls.process.initialize()
    cls.keys = [np.int32(2), np.int32(0)]
    cls.arrays = [client_arrays(1), client_arrays(2)]
    cls.output = cls.process.next(
        cls.state, cls.keys, [as_dataset(x, y) for x, y in cls.arrays])

  def hand_deltas(self, state, keys, arrays):
    """(key, client's flattened delta tensors) for each client with data."""
    phi, e = state['hypernetwork'], state['embeddings']
    found = []
    for key, (x, y) in zip(keys, arrays):
      if not len(x):
        continue  # An empty client is not counted.
      theta = [(e[key] @ k + b).reshape(s)
               for (k, b), s in zip(phi['heads'], SHAPES)]
      found.append((key, [d.reshape(-1) for d in np_delta(theta, x, y)]))
    return found

  def hand_round(self, state, keys, arrays, clip=None):
    """(new heads, new embeddings) by the chain rule in numpy, for a linear
    hypernetwork theta = e A + b per (flattened) target tensor: d_A = e
    delta^T and d_b = delta averaged over the clients with data, d_e = A
    delta averaged over the clients with key e; each delta scaled to L2
    norm at most `clip` first, if given."""
    phi, e = state['hypernetwork'], state['embeddings']
    heads = phi['heads']
    d_heads = [[np.zeros_like(k), np.zeros_like(b)] for k, b in heads]
    d_e, counts = np.zeros_like(e), np.zeros(NUM_CLIENTS)
    for key, delta in self.hand_deltas(state, keys, arrays):
      if clip is not None:
        norm = np.sqrt(sum(np.sum(d**2) for d in delta))
        delta = [d * min(1.0, clip / norm) for d in delta]
      for j, dj in enumerate(delta):
        d_heads[j][0] += np.outer(e[key], dj)
        d_heads[j][1] += dj
      d_e[key] += sum(k @ dj for (k, _), dj in zip(heads, delta))
      counts[key] += 1
    m = counts.sum()
    new_heads = [(k - SERVER_LR * dk / m, b - SERVER_LR * db / m)
                 for (k, b), (dk, db) in zip(heads, d_heads)]
    new_e = e - SERVER_LR * d_e / np.maximum(counts, 1)[:, None]
    return new_heads, new_e

  def assert_round_matches_hand(self, state, output, keys, arrays,
                                clip=None, atol=1e-6):
    new_heads, new_e = self.hand_round(state, keys, arrays, clip)
    self.assertEqual(output.state['hypernetwork']['layers'], ())
    for got, want in zip(output.state['hypernetwork']['heads'], new_heads):
      for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=atol)
    np.testing.assert_allclose(output.state['embeddings'], new_e, rtol=0,
                               atol=atol)

  def test_server_update_is_the_chain_rule_by_hand(self):
    self.assert_round_matches_hand(self.state, self.output, self.keys,
                                   self.arrays)
    self.assertEqual(self.output.metrics['train']['num_examples'], 8)
    self.assertEqual(self.output.metrics['train']['num_batches'], 4)

  def test_repeated_key_averages_and_empty_client_is_not_counted(self):
    keys = [np.int32(1), np.int32(1), np.int32(3)]
    empty = (np.zeros((0, 3)), np.zeros((0, 1)))
    arrays = [client_arrays(3), client_arrays(4), empty]
    output = self.process.next(self.state, keys,
                               [as_dataset(x, y) for x, y in arrays])
    self.assert_round_matches_hand(self.state, output, keys, arrays)
    np.testing.assert_array_equal(output.state['embeddings'][3],
                                  self.state['embeddings'][3])
    self.assertEqual(output.metrics['clients_empty'], 1)

  def test_unsampled_embeddings_do_not_change(self):
    before, after = self.state['embeddings'], self.output.state['embeddings']
    for key in (1, 3):
      np.testing.assert_array_equal(after[key], before[key])
    for key in (0, 2):
      self.assertGreater(np.abs(after[key] - before[key]).max(), 1e-3)

  def test_unsampled_embeddings_do_not_change_with_momentum(self):
    # float32: TFF 0.87's momentum SGD does not cast its momentum to float64.
    process = pfedhn.build_pfedhn(
        linear_regression(np.float32), num_clients=NUM_CLIENTS,
        embedding_dim=EMBEDDING_DIM, hidden=(3,),
        server_optimizer=tff.learning.optimizers.build_sgdm(0.1,
                                                            momentum=0.9))
    state = process.initialize()
    x, y = (a.astype(np.float32) for a in self.arrays[0])
    state = process.next(state, [np.int32(1)], [as_dataset(x, y)]).state
    after_first = state['embeddings']
    state = process.next(state, [np.int32(3)], [as_dataset(x, y)]).state
    # Client 1's momentum would move it; its row is kept.
    np.testing.assert_array_equal(state['embeddings'][1], after_first[1])
    self.assertGreater(
        np.abs(state['embeddings'][3] - after_first[3]).max(), 0.0)

  def test_each_client_receives_its_own_generated_weights(self):
    phi, e = self.state['hypernetwork'], self.state['embeddings']
    keys = [np.int32(3), np.int32(0), np.int32(3), np.int32(1)]
    received = self.process.select_client_weights(self.state, keys)
    self.assertLen(received, len(keys))
    for key, theta in zip(keys, received):
      expected = np_generate(phi, e[key], SHAPES)
      for got, want in zip(theta, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
      for got, want in zip(
          self.process.get_client_weights(self.state, int(key)).trainable,
          expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

  def test_weights_reach_clients_only_by_federated_select(self):
    theta_type = tff.StructType([tff.TensorType(np.float64, [3, 1]),
                                 tff.TensorType(np.float64, [1])])
    select_type = self.process.select_client_weights.type_signature
    self.assertTrue(select_type.result.is_equivalent_to(
        tff.FederatedType(theta_type, tff.CLIENTS, all_equal=False)))
    self.assertFalse(select_type.result.all_equal)

    next_type = self.process.next.type_signature
    for parameter in next_type.parameter:
      if parameter.placement is tff.CLIENTS:
        self.assertFalse(parameter.all_equal)
        self.assertIsInstance(parameter.member, (tff.TensorType,
                                                 tff.SequenceType))

    calls = testing.intrinsic_calls(self.process.next.to_building_block())
    uris = [uri for uri, _ in calls]
    self.assertEqual(uris.count('federated_select'), 1)
    self.assertNotIn('federated_broadcast', uris)
    self.assertNotIn('federated_value_at_clients', uris)
    (select_call_type,) = [t for uri, t in calls if uri == 'federated_select']
    # Its own weights and its slot in the round.
    self.assertTrue(select_call_type.is_equivalent_to(tff.FederatedType(
        tff.SequenceType(tff.StructType([theta_type, np.int32])),
        tff.CLIENTS, all_equal=False)))
    # Nothing else is sent from the server to the clients: every other
    # intrinsic with a result at CLIENTS maps or zips client values.
    at_clients = {uri for uri, t in calls
                  if isinstance(t, tff.FederatedType)
                  and t.placement is tff.CLIENTS}
    self.assertEqual(at_clients, {'federated_select', 'federated_map',
                                  'federated_zip_at_clients'})

  def test_out_of_range_key_fails_naming_client_keys(self):
    x, y = self.arrays[0]
    for key in (NUM_CLIENTS, -1):
      with self.assertRaisesRegex(
          Exception, r'client_keys: a key must be in \[0, 4\), got\] \[%d\]'
          % key):
        self.process.next(self.state, [np.int32(key)], [as_dataset(x, y)])
    with self.assertRaisesRegex(ValueError, 'client_index'):
      self.process.get_client_weights(self.state, NUM_CLIENTS)

  def slotted(self, slots, model=None, server_lr=SERVER_LR, **kwargs):
    return pfedhn.build_pfedhn(
        model or self.model, num_clients=NUM_CLIENTS, clients_per_round=slots,
        embedding_dim=EMBEDDING_DIM, hidden=(),
        client_optimizer=tff.learning.optimizers.build_sgdm(CLIENT_LR),
        server_optimizer=tff.learning.optimizers.build_sgdm(server_lr),
        **kwargs)

  def test_round_slots_upload_their_rows_only_and_equal_the_chain_rule(self):
    process = self.slotted(2)
    # Every float tensor the clients send is a [2, ...] slot layout (the
    # rows through the mean, then their counts) or a scalar (the weights'
    # and metrics' sums); the one-hot keys are int32[4].
    sent = [tuple(t.shape) for uri, call in testing.intrinsic_calls(
        process.next.to_building_block()) if uri == 'federated_sum'
            for t in tensor_types(call.member) if t.dtype == np.float64]
    self.assertCountEqual(sent, [(2, 3, 1), (2, 1), (2,)])
    empty = (np.zeros((0, 3)), np.zeros((0, 1)))
    for keys, arrays in (
        (self.keys, self.arrays),
        # Two clients share a key's slot; an empty client takes one.
        ([np.int32(3), np.int32(1), np.int32(3)],
         [client_arrays(3), empty, client_arrays(4)])):
      datasets = [as_dataset(x, y) for x, y in arrays]
      output = process.next(self.state, keys, datasets)
      self.assert_round_matches_hand(self.state, output, keys, arrays)
      unslotted = self.process.next(self.state, keys, datasets)
      for got, want in zip(tf.nest.flatten(output.state),
                           tf.nest.flatten(unslotted.state)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

  def test_aggregators_clip_each_clients_delta(self):
    # A client's upload is its delta in its row and zeros, so clipping the
    # upload clips the delta; DP's mean without noise divides by the fixed
    # clients_per_round, here the round's 2 clients.
    norms = [np.sqrt(sum(np.sum(d**2) for d in delta)) for _, delta in
             self.hand_deltas(self.state, self.keys, self.arrays)]
    clip = float(np.mean(norms))
    self.assertLess(min(norms), clip)  # One client clipped, one not.
    # TFF's DP takes float32 only.
    for factory, dtype, atol in (
        (tff.aggregators.clipping_factory(clip, tff.aggregators.MeanFactory()),
         np.float64, 1e-6),
        (tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
            0.0, 2, clip), np.float32, 1e-5)):
      process = self.slotted(2, linear_regression(dtype),
                             model_aggregator=factory)
      state = process.initialize()
      arrays = [tuple(a.astype(dtype) for a in xy) for xy in self.arrays]
      output = process.next(state, self.keys,
                            [as_dataset(x, y) for x, y in arrays])
      in_float64 = {name: tf.nest.map_structure(
          lambda a: np.asarray(a, np.float64), state[name])
                    for name in ('hypernetwork', 'embeddings')}
      self.assert_round_matches_hand(in_float64, output, self.keys,
                                     self.arrays, clip=clip, atol=atol)

  def test_sign_flip_attackers_flip_their_own_rows(self):
    # Every client attacks, sending -10 x its delta in its row: the round
    # moves the weights by minus the honest round's at 10 x SERVER_LR.
    datasets = [as_dataset(x, y) for x, y in self.arrays]
    attacker = self.slotted(2, model_aggregator=(
        aggregation.MaliciousClientsFactory(
            tff.aggregators.MeanFactory(), fraction=1.0, attack='sign_flip',
            scale=10.0)))
    attacked = attacker.next(attacker.initialize(), self.keys, datasets)
    # Its own state: TFF's SGD keeps its rate in the optimizer state.
    honest_process = self.slotted(2, server_lr=10 * SERVER_LR)
    honest = honest_process.next(honest_process.initialize(), self.keys,
                                 datasets)
    for name in ('hypernetwork', 'embeddings'):
      for got, want, before in zip(tf.nest.flatten(attacked.state[name]),
                                   tf.nest.flatten(honest.state[name]),
                                   tf.nest.flatten(self.state[name])):
        np.testing.assert_allclose(got - before, before - want, rtol=0,
                                   atol=1e-9)
    self.assertGreater(np.abs(attacked.state['embeddings']
                              - self.state['embeddings']).max(), 1e-3)

  def test_a_stateful_aggregator_keeps_its_state_in_the_servers(self):
    self.assertEqual(list(self.state),
                     ['hypernetwork', 'embeddings', 'optimizer_state'])
    # DP with adaptive clipping: its clip moves towards the median norm.
    process = pfedhn.build_pfedhn(
        linear_regression(np.float32), num_clients=NUM_CLIENTS,
        clients_per_round=2, embedding_dim=EMBEDDING_DIM, hidden=(),
        model_aggregator=(
            tff.aggregators.DifferentiallyPrivateFactory.gaussian_adaptive(
                0.0, 2, initial_l2_norm_clip=1e-4)))
    state = process.initialize()
    self.assertEqual(list(state), ['hypernetwork', 'embeddings',
                                   'optimizer_state', 'aggregator'])
    datasets = [as_dataset(*(a.astype(np.float32) for a in arrays))
                for arrays in self.arrays]
    outputs = [process.next(state, self.keys, datasets)]
    outputs.append(process.next(outputs[0].state, self.keys, datasets))
    clips = [o.metrics['aggregator']['dp_query_metrics']['clip']
             for o in outputs]
    # Both deltas are far above the clip, so it grows by exp(0.2 * 0.5) a
    # round (TFF's geometric update at learning rate 0.2, quantile 0.5).
    np.testing.assert_allclose(clips, [1e-4 * np.exp(0.1), 1e-4 * np.exp(0.2)],
                               rtol=1e-5)
    tf.nest.assert_same_structure(state, outputs[1].state)

  def test_round_with_more_keys_than_slots_fails_naming_it(self):
    x, y = self.arrays[0]
    with self.assertRaisesRegex(
        Exception, r'clients_per_round: a round of pFedHN has 2 slots, got '
        r'distinct client keys:\] \[3\]'):
      self.slotted(2).next(self.state, [np.int32(k) for k in (0, 1, 3)],
                           [as_dataset(x, y)] * 3)

  def test_round_slots_are_the_present_keys_in_order(self):
    np.testing.assert_array_equal(
        pfedhn.round_slots(tf.constant([0, 2, 0, 1]), 3), [1, 3, -1])
    np.testing.assert_array_equal(
        pfedhn.round_slots(tf.constant([1, 1]), 2), [0, 1])

  def test_bad_arguments_raise(self):
    for kwargs, name in [(dict(num_clients=0), 'num_clients'),
                         (dict(num_clients=2, clients_per_round=3),
                          'clients_per_round'),
                         (dict(num_clients=2, clients_per_round=0),
                          'clients_per_round'),
                         (dict(num_clients=2, embedding_dim=0),
                          'embedding_dim'),
                         (dict(num_clients=2, hidden=(4, 0)), 'hidden')]:
      with self.assertRaisesRegex(ValueError, name):
        pfedhn.build_pfedhn(self.model, **kwargs)


class HypernetworkMathTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    runtime.set_local_context()  # learn_new_client runs a computation.

  def setUp(self):
    super().setUp()
    self.shapes = ((3, 2), (2,), (2, 1))
    self.phi, self.embeddings = pfedhn.initial_server_weights(
        self.shapes, num_clients=3, embedding_dim=3, hidden=(5, 4), seed=7,
        dtype=np.float64)
    rng = np.random.default_rng(1)
    self.counts = np.array([2.0, 0.0, 1.0])
    self.delta_sums = [rng.normal(size=(3, *s)) * self.counts.reshape(
        (3,) + (1,) * len(s)) for s in self.shapes]

  def objective(self, phi, embeddings):
    """sum_k <h(e_k; phi), delta_sums[k]>, in numpy."""
    return sum(float(np.sum(t * d[k])) for k in range(3) for t, d in zip(
        np_generate(phi, embeddings[k], self.shapes), self.delta_sums))

  def test_server_size_counts_the_initial_weights(self):
    entries = sum(np.size(a) for a in tf.nest.flatten(self.phi))
    self.assertEqual(
        pfedhn.server_size(self.shapes, num_clients=3, embedding_dim=3,
                           hidden=(5, 4)),
        entries + np.size(self.embeddings))

  def test_generate_matches_numpy(self):
    for k in range(3):
      got = pfedhn.generate(self.phi, self.embeddings[k], self.shapes)
      for g, w in zip(got, np_generate(self.phi, self.embeddings[k],
                                       self.shapes)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)

  def test_vjp_equals_central_differences(self):
    d_phi, d_e = pfedhn.server_gradients(
        tf.nest.map_structure(tf.constant, self.phi),
        tf.constant(self.embeddings), self.delta_sums, self.counts,
        self.shapes)
    eps, m = 1e-6, self.counts.sum()
    flat_phi = tf.nest.flatten(self.phi)
    for i, analytic in enumerate(tf.nest.flatten(d_phi)):
      numeric = np.zeros_like(flat_phi[i])
      for index in np.ndindex(flat_phi[i].shape):
        values = []
        for sign in (1, -1):
          moved = [w.copy() for w in flat_phi]
          moved[i][index] += sign * eps
          values.append(self.objective(
              tf.nest.pack_sequence_as(self.phi, moved), self.embeddings))
        numeric[index] = (values[0] - values[1]) / (2 * eps) / m
      np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    numeric = np.zeros_like(self.embeddings)
    for index in np.ndindex(self.embeddings.shape):
      values = []
      for sign in (1, -1):
        moved = self.embeddings.copy()
        moved[index] += sign * eps
        values.append(self.objective(self.phi, moved))
      numeric[index] = (values[0] - values[1]) / (2 * eps) / max(
          self.counts[index[0]], 1)
    np.testing.assert_allclose(d_e, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(d_e[1], 0.0)  # Not sampled.

  def test_new_client_embedding_lowers_its_loss(self):
    model = linear_regression()
    shapes = SHAPES
    phi, embeddings = pfedhn.initial_server_weights(
        shapes, num_clients=5, embedding_dim=3, hidden=(8,), seed=3,
        dtype=np.float64)
    state = {'hypernetwork': phi, 'embeddings': embeddings}
    phi_before = [w.copy() for w in tf.nest.flatten(phi)]
    x, y = client_arrays(5, n=16)

    def loss(theta):
      kernel, bias = theta
      return float(np.mean(np.square(x @ kernel + bias - y)))

    before = loss(np_generate(phi, embeddings.mean(0), shapes))
    e_new, weights = pfedhn.learn_new_client(
        model, state, as_dataset(x, y, batch_size=4), epochs=10,
        optimizer=tff.learning.optimizers.build_sgdm(0.05))
    after = loss(weights.trainable)
    self.assertLess(after, 0.8 * before)
    self.assertEqual(e_new.shape, (3,))
    for got, want in zip(weights.trainable, np_generate(phi, e_new, shapes)):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for w, w0 in zip(tf.nest.flatten(phi), phi_before):
      np.testing.assert_array_equal(w, w0)
    with self.assertRaisesRegex(ValueError, 'epochs'):
      pfedhn.learn_new_client(model, state, as_dataset(x, y), epochs=0)

  def test_many_new_clients_in_one_call_equal_one_at_a_time(self):
    model = linear_regression()
    phi, embeddings = pfedhn.initial_server_weights(
        SHAPES, num_clients=5, embedding_dim=3, hidden=(8,), seed=4,
        dtype=np.float64)
    state = {'hypernetwork': phi, 'embeddings': embeddings}
    learner = pfedhn.NewClientLearner(
        model, epochs=3, optimizer=tff.learning.optimizers.build_sgdm(0.05))
    datasets = [as_dataset(*client_arrays(seed, n=n), batch_size=4)
                for seed, n in ((1, 9), (2, 14), (3, 5))]
    together = learner.many(state, datasets)
    self.assertLen(together, 3)
    for dataset, (e, weights) in zip(datasets, together):
      e_alone, alone = learner(state, dataset)
      np.testing.assert_allclose(e, e_alone, rtol=1e-12, atol=1e-12)
      for got, want in zip(weights.trainable, alone.trainable):
        np.testing.assert_array_equal(got, want)


if __name__ == '__main__':
  absltest.main()
