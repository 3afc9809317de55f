"""pFedHN: personalized federated learning with a hypernetwork.

Shamsian, Navon, Fetaya & Chechik, "Personalized Federated Learning using
Hypernetworks", ICML 2021, https://arxiv.org/abs/2103.04628 (Algorithm 1).

The server holds a hypernetwork h(.; phi) and one learned embedding e_i per
client. Client i's model is theta_i = h(e_i; phi): the hypernetwork, an MLP
on the embedding with one linear head per trainable weight tensor of the
target model, outputs all of the target model's trainable weights. A sampled
client trains theta_i locally and returns delta_i = theta_i - trained; the
server updates phi and e_i with the vector-Jacobian products
(d theta_i / d phi)^T delta_i and (d theta_i / d e_i)^T delta_i.

Per-client values: each client receives only its own theta_i, through
`tff.federated_select` with the client's index as its key; `select_fn`
computes h(e_key; phi) at the server, so neither phi nor any embedding is
ever placed at a client, and no value is broadcast (all-equal) to clients.
The round has `clients_per_round` slots: the server learns which keys
take part from the sum of the clients' one-hot keys (num_clients integers),
gives the round's distinct keys the slots in ascending order
(`round_slots`), and `select_fn` sends each client its slot with theta_key.
Each client returns its delta scattered into its slot's row of
[clients_per_round, ...]-shaped zeros (and a one in that row of a count
vector). The rows go through the model aggregator (the weighted mean by
default; DP's noised mean, compression, clipping, the simulated attackers),
the counts through `tff.federated_sum`: the server then has every sampled
client's delta paired with its key, and computes the VJPs of those rows
only. The upload is clients_per_round times the model's size (num_clients
times without `clients_per_round`), which suits simulation; the clients
never hold phi, so the VJPs are computed at the server.

The hypernetwork math is plain TensorFlow on explicit weights
(`initial_server_weights`, `generate`, `server_gradients`,
`NewClientLearner`), testable without TFF.
"""

import collections
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import aggregation
from fedmeta import models
from fedmeta.algorithms import client_work as client_work_lib
from fedmeta.algorithms import local_tf
from fedmeta.algorithms import specs
from fedmeta.data import iteration

# The paper's learning rates: inner (client) SGD 5e-3, hypernetwork and
# embeddings SGD 1e-2. The authors' code adds momentum 0.9 and weight decay;
# plain SGD keeps the update exactly the chain rule.
DEFAULT_CLIENT_OPTIMIZER_FN = lambda: tff.learning.optimizers.build_sgdm(5e-3)
DEFAULT_SERVER_OPTIMIZER_FN = lambda: tff.learning.optimizers.build_sgdm(1e-2)
DEFAULT_NEW_CLIENT_OPTIMIZER_FN = (
    lambda: tff.learning.optimizers.build_sgdm(1e-2))
# Four layers of 100 units, as the authors' trainer (github.com/AvivSham/
# pFedHN: a first layer, then --n-hidden=3 more), whose last has no ReLU
# before the heads; here every hidden layer has one. Their gradient-norm
# clipping at 50 (inner and hypernetwork steps) is left out.
DEFAULT_HIDDEN = (100,) * 4

Shapes = tuple[tuple[int, ...], ...]


def default_embedding_dim(num_clients: int) -> int:
  """The authors' code's default: 1 + num_clients / 4."""
  return 1 + num_clients // 4


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise ValueError(message)


def server_size(shapes: Shapes, *, num_clients: int, embedding_dim: int,
                hidden: Sequence[int] = DEFAULT_HIDDEN) -> int:
  """The entries of `initial_server_weights`' (phi, embeddings)."""
  widths = (embedding_dim, *hidden)
  layers = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
  outputs = sum(int(np.prod(s, dtype=np.int64)) for s in shapes)
  return (layers + (widths[-1] + 1) * outputs
          + num_clients * embedding_dim)


def initial_server_weights(
    shapes: Shapes, *, num_clients: int, embedding_dim: int,
    hidden: Sequence[int] = DEFAULT_HIDDEN, seed: int = 0,
    dtype: Any = np.float32) -> tuple[Any, np.ndarray]:
  """(phi, embeddings) as numpy arrays.

  phi is `OrderedDict(layers=((kernel, bias), ...), heads=((kernel, bias),
  ...))`: the hidden layers (ReLU after each), then one linear head per
  target weight of shape `shapes[j]`, whose output is flattened. Kernels and
  biases are uniform in +-1/sqrt(fan_in) (PyTorch's `nn.Linear`, the
  authors'), embeddings standard normal (`nn.Embedding`).
  """
  rng = np.random.default_rng(seed)

  def dense(fan_in, fan_out):
    bound = 1.0 / np.sqrt(fan_in)
    return (rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype),
            rng.uniform(-bound, bound, (fan_out,)).astype(dtype))

  widths = (embedding_dim, *hidden)
  layers = tuple(dense(a, b) for a, b in zip(widths[:-1], widths[1:]))
  heads = tuple(dense(widths[-1], int(np.prod(s, dtype=np.int64)))
                for s in shapes)
  embeddings = rng.standard_normal((num_clients, embedding_dim)).astype(dtype)
  return collections.OrderedDict(layers=layers, heads=heads), embeddings


def generate_batch(phi, embeddings: tf.Tensor, shapes: Shapes):
  """The target weights of each row of `embeddings` [n, d]: a tuple of
  [n, *shapes[j]] tensors."""
  h = tf.convert_to_tensor(embeddings)
  for kernel, bias in phi['layers']:
    h = tf.nn.relu(tf.matmul(h, kernel) + bias)
  return tuple(tf.reshape(tf.matmul(h, kernel) + bias, [-1, *shape])
               for (kernel, bias), shape in zip(phi['heads'], shapes))


def generate(phi, embedding: tf.Tensor, shapes: Shapes):
  """theta = h(embedding; phi): a tuple of tensors shaped as `shapes`."""
  return tuple(w[0] for w in generate_batch(
      phi, tf.convert_to_tensor(embedding)[tf.newaxis], shapes))


def server_gradients(phi, embeddings: tf.Tensor, delta_sums, counts,
                     shapes: Shapes):
  """(d_phi, d_embeddings): the chain rule through the hypernetwork.

  Args:
    phi: The hypernetwork's weights (`initial_server_weights`).
    embeddings: [n, d]: row k the embedding of one key (all clients' in key
      order, or a round's slots).
    delta_sums: A tuple matching `shapes`, each [n, *shape]: row k the sum of
      the deltas of the clients with row k's key (zeros if none).
    counts: [n], how many clients had row k's key this round.
    shapes: The target model's trainable weight shapes.

  Returns:
    d_phi = (1/m) sum_k (d theta_k / d phi)^T delta_sums[k], m = sum(counts)
    (the mean over the round's clients), and d_embeddings whose row k is
    (d theta_k / d e_k)^T delta_sums[k] / counts[k] (zero where counts[k] is
    zero): each sampled client's own VJP, as in the paper's Algorithm 1.
  """
  counts = tf.convert_to_tensor(counts)
  with tf.GradientTape() as tape:
    tape.watch((phi, embeddings))
    thetas = generate_batch(phi, embeddings, shapes)
  d_phi, d_embeddings = tape.gradient(
      thetas, (phi, embeddings), output_gradients=tuple(delta_sums),
      unconnected_gradients=tf.UnconnectedGradients.ZERO)
  m = tf.maximum(tf.reduce_sum(counts), 1)
  d_phi = tf.nest.map_structure(lambda g: g / m, d_phi)
  d_embeddings = d_embeddings / tf.maximum(counts, 1)[:, tf.newaxis]
  return d_phi, d_embeddings


def round_slots(present: tf.Tensor, slots: int) -> tf.Tensor:
  """[slots] int32: the keys k with present[k] > 0, ascending, then -1s.

  Fails, naming `clients_per_round`, where more than `slots` keys are
  present.
  """
  keys = tf.cast(tf.where(present > 0)[:, 0], tf.int32)
  n = tf.size(keys)
  with tf.control_dependencies([tf.debugging.Assert(n <= slots, [
      f'clients_per_round: a round of pFedHN has {slots} slots, got '
      'distinct client keys:', n])]):
    padded = tf.pad(keys, [[0, slots - tf.minimum(n, slots)]],
                    constant_values=-1)
  return tf.ensure_shape(padded, [slots])


def _target_dtype(weights_type) -> np.dtype:
  dtypes = {np.dtype(w.dtype) for w in weights_type.trainable}
  if len(dtypes) != 1 or not np.issubdtype(next(iter(dtypes)), np.floating):
    raise models.ModelError(
        'model_fn: pFedHN needs trainable weights of one floating dtype, got '
        f'{sorted(str(d) for d in dtypes)}')
  return next(iter(dtypes))


def _non_trainable(model_fn):
  return tuple(models.initial_weights(model_fn).non_trainable)


class NewClientLearner:
  """Learns embeddings for clients unseen in training, phi frozen.

  The paper's generalization to novel clients: one `optimizer` step per batch
  of a client's dataset (for `epochs` passes) on the embedding alone, with
  gradient (d theta / d e)^T d loss(theta) / d theta at theta = h(e; phi).
  The computations are built on the first call and reused after; `many`
  learns a list of clients in one call, which passes phi (the largest value)
  to the runtime once, not once a client.

  Args:
    model_fn: The target model given to `build_pfedhn`.
    epochs: Passes over a client's dataset.
    optimizer: The embedding's optimizer; SGD(0.01) if None.

  Raises:
    ValueError: For `epochs` < 1.
  """

  def __init__(self, model_fn: models.ModelFn, *, epochs: int = 1,
               optimizer: Optional[tff.learning.optimizers.Optimizer] = None):
    _check(epochs >= 1, f'epochs: must be >= 1, got {epochs}')
    self._model_fn = model_fn
    self._epochs = epochs
    self._optimizer = optimizer or DEFAULT_NEW_CLIENT_OPTIMIZER_FN()
    self._fit = None
    self._fit_many = None

  def _build_fit(self, phi, embedding):
    model_fn, optimizer = self._model_fn, self._optimizer
    model_spec = models.spec(model_fn)
    shapes = tuple(tuple(w.shape) for w in model_spec.weights_type.trainable)

    def type_of(a):
      return tff.TensorType(a.dtype, a.shape)

    # A computation, not a tf.function: a Keras `FunctionalModel` runs only
    # in a graph.
    @tff.tensorflow.computation(
        tf.nest.map_structure(type_of, phi), type_of(embedding),
        model_spec.data_type)
    def fit(phi, e0, dataset):
      model = models.build(model_fn)
      non_trainable = _non_trainable(model_fn)

      def step(carry, batch):
        e, opt_state = carry
        with tf.GradientTape() as tape:
          tape.watch(e)
          theta = generate(phi, e, shapes)
        _, _, d_theta = model.forward_and_gradient((theta, non_trainable),
                                                   batch)
        d_e = tape.gradient(theta, e, output_gradients=list(d_theta))
        opt_state, e = optimizer.next(opt_state, e, d_e)
        return e, opt_state

      e, _ = iteration.reduce(
          dataset.repeat(self._epochs),
          (e0, optimizer.initialize(tf.TensorSpec.from_tensor(e0))), step)
      return e, generate(phi, e, shapes)

    return fit

  def _build_fit_many(self, fit):
    server_type = tff.StructType([fit.type_signature.parameter[0],
                                  fit.type_signature.parameter[1]])
    data_type = fit.type_signature.parameter[2]

    @tff.tensorflow.computation(server_type, data_type)
    def fit_client(server_value, dataset):
      return fit(server_value[0], server_value[1], dataset)

    # Simulation only: each new client is handed phi to learn its embedding
    # with, as if the server ran the steps on its theta's gradients (the
    # same numbers); training never places phi at a client.
    @tff.federated_computation(tff.FederatedType(server_type, tff.SERVER),
                               tff.FederatedType(data_type, tff.CLIENTS))
    def fit_many(server_value, datasets):
      return tff.federated_map(
          fit_client, (tff.federated_broadcast(server_value), datasets))

    return fit_many

  def _start(self, state, initial_embedding):
    phi = tf.nest.map_structure(np.asarray, state['hypernetwork'])
    embeddings = np.asarray(state['embeddings'])
    if initial_embedding is None:
      initial_embedding = embeddings.mean(axis=0)
    initial_embedding = np.asarray(initial_embedding, embeddings.dtype)
    _check(initial_embedding.shape == embeddings.shape[1:],
           f'initial_embedding: must have shape {embeddings.shape[1:]}, got '
           f'{initial_embedding.shape}')
    if self._fit is None:
      self._fit = self._build_fit(phi, initial_embedding)
    return phi, initial_embedding

  def _result(self, e, theta):
    return np.asarray(e), tff.learning.models.ModelWeights(
        tuple(np.asarray(w) for w in theta),
        tuple(np.asarray(w) for w in models.initial_weights(
            self._model_fn).non_trainable))

  def many(self, state, datasets: Sequence[tf.data.Dataset],
           initial_embedding: Optional[np.ndarray] = None) -> list:
    """`__call__` for each of `datasets`, in one runtime call: a list of
    (embedding, weights)."""
    phi, initial_embedding = self._start(state, initial_embedding)
    if self._fit_many is None:
      self._fit_many = self._build_fit_many(self._fit)
    return [self._result(e, theta) for e, theta in self._fit_many(
        (phi, initial_embedding), list(datasets))]

  def __call__(self, state, dataset: tf.data.Dataset,
               initial_embedding: Optional[np.ndarray] = None):
    """Learns one client's embedding from `dataset`, its batches.

    Args:
      state: A `build_pfedhn` process state (its `hypernetwork` and
        `embeddings`).
      dataset: The new client's batches.
      initial_embedding: Where to start; the mean of the trained clients'
        embeddings if None.

    Returns:
      (embedding, `tff.learning.models.ModelWeights` generated from it),
      numpy. It runs as a `tff.tensorflow.computation` on the current TFF
      context.

    Raises:
      ValueError: For a misshapen `initial_embedding`.
    """
    phi, initial_embedding = self._start(state, initial_embedding)
    return self._result(*self._fit(phi, initial_embedding, dataset))


def learn_new_client(
    model_fn: models.ModelFn, state, dataset: tf.data.Dataset, *,
    epochs: int = 1,
    optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    initial_embedding: Optional[np.ndarray] = None,
):
  """One client's `NewClientLearner` (see there); for many clients, build
  one learner and call it for each."""
  return NewClientLearner(model_fn, epochs=epochs, optimizer=optimizer)(
      state, dataset, initial_embedding)


class PFedHNProcess(tff.templates.IterativeProcess):
  """The `tff.templates.IterativeProcess` of `build_pfedhn`, plus
  `select_client_weights` and `get_client_weights`."""

  def __init__(self, initialize_fn, next_fn, select_client_weights,
               model_fn, num_clients: int, clients_per_round: int,
               shapes: Shapes):
    super().__init__(initialize_fn, next_fn)
    self._select_client_weights = select_client_weights
    self._model_fn = model_fn
    self._num_clients = num_clients
    self._clients_per_round = clients_per_round
    self._shapes = shapes

  @property
  def select_client_weights(self) -> tff.Computation:
    """`(<state@SERVER, client_keys={int32}@CLIENTS> -> {theta}@CLIENTS)`:
    each client's generated weights, by `tff.federated_select`."""
    return self._select_client_weights

  @property
  def num_clients(self) -> int:
    return self._num_clients

  @property
  def clients_per_round(self) -> int:
    """The round's slots: the rows of a client's upload."""
    return self._clients_per_round

  def get_client_weights(self, state, client_index: int
                         ) -> tff.learning.models.ModelWeights:
    """The personalized `ModelWeights` h(e_i; phi) of client `client_index`,
    as numpy arrays (for evaluation).

    Raises:
      ValueError: If `client_index` is not in [0, num_clients).
    """
    _check(0 <= client_index < self._num_clients,
           f'client_index: must be in [0, {self._num_clients}), got '
           f'{client_index}')
    phi = tf.nest.map_structure(tf.convert_to_tensor, state['hypernetwork'])
    theta = generate(phi, np.asarray(state['embeddings'])[client_index],
                     self._shapes)
    return tff.learning.models.ModelWeights(
        tuple(w.numpy() for w in theta),
        tuple(np.asarray(w) for w in models.initial_weights(
            self._model_fn).non_trainable))


def build_pfedhn(
    model_fn: models.ModelFn,
    *,
    num_clients: int,
    clients_per_round: Optional[int] = None,
    embedding_dim: Optional[int] = None,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    client_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    server_optimizer: Optional[tff.learning.optimizers.Optimizer] = None,
    model_aggregator: Optional[tff.aggregators.AggregationFactory] = None,
    seed: int = 0,
) -> PFedHNProcess:
  """Builds pFedHN (Algorithm 1): a hypernetwork generates each client's
  model from its learned embedding.

  Paper: Shamsian et al. 2021, https://arxiv.org/abs/2103.04628.

  Each round, client i (its key, an int32 in [0, num_clients)) receives only
  theta_i = h(e_i; phi) and its slot in the round, by
  `tff.federated_select`; it takes one
  `client_optimizer` step per batch of its dataset
  (`fedmeta.algorithms.local_tf.train_locally`) and returns
  delta_i = theta_i - trained, in its slot's row. The server applies, with `server_optimizer`,
  the gradients (1/m) sum_i (d theta_i / d phi)^T delta_i to phi (m clients
  this round) and (d theta_i / d e_i)^T delta_i to e_i (see
  `server_gradients`); the embeddings of clients not sampled are kept as
  they are, whatever the optimizer (their rows of its state see zero
  gradients). A client whose delta is non-finite, or which has no example,
  counts as not sampled; a key given to several clients in a round gets the
  mean of their VJPs.

  Args:
    model_fn: The target model (see `fedmeta.models.ModelFn`), trainable
      weights of one floating dtype; its trainable weight shapes define the
      hypernetwork's heads, its non-trainable weights stay at their initial
      values.
    num_clients: How many clients (embeddings) there are.
    clients_per_round: The most distinct keys in a round, the rows of the
      upload; num_clients if None. A round with more fails, naming
      `clients_per_round`.
    embedding_dim: The embeddings' size; 1 + num_clients // 4 (the authors'
      code) if None.
    hidden: Widths of the hypernetwork's hidden layers (ReLU); () makes it
      linear, theta = e A + b per target weight.
    client_optimizer: The clients' step per batch; SGD(5e-3) (the paper's
      inner rate) if None.
    server_optimizer: Applied to (phi, embeddings); SGD(1e-2) (the paper's)
      if None.
    model_aggregator: Combines the clients' [clients_per_round, ...] uploads,
      each weighted by 1 (0 for a client that counts as not sampled), into
      their mean; `fedmeta.aggregation.FusedMeanFactory()` if None. The server
      multiplies it by m to recover the row sums, so a mean whose
      denominator is fixed (DP's clients_per_round) is exact when every
      client of the round reports. Each client's delta fills its own row, so
      a secure sum would still show the server every delta, and a statistic
      over clients (median, Krum) would see mostly zero rows: neither suits
      this layout.
    seed: Seeds the hypernetwork's and embeddings' initialization.

  Returns:
    A `PFedHNProcess` (a `tff.templates.IterativeProcess`) with
    `initialize: ( -> S@SERVER)`, S = <hypernetwork=phi, embeddings=
    float[num_clients, embedding_dim], optimizer_state=...> (and
    aggregator=..., the aggregator's state, if it has any), and
    `next: (<state=S@SERVER, client_keys={int32}@CLIENTS,
    client_data={B*}@CLIENTS> -> <state=S@SERVER, metrics=<train=...,
    clients_empty=int32, clients_non_finite=int32, aggregator=...>@SERVER>)`
    returning a
    `tff.learning.templates.LearningProcessOutput`; call it as
    `next(state, keys, datasets)` with two lists of equal length, client j's
    key and dataset. A key outside [0, num_clients) fails the round with an
    error naming `client_keys`.

  Raises:
    ValueError: For `num_clients` < 1, `clients_per_round` not in
      [1, num_clients], `embedding_dim` < 1 or a hidden width < 1.
    fedmeta.models.ModelError: For an unsuitable `model_fn`.
  """
  _check(isinstance(num_clients, (int, np.integer)) and num_clients >= 1,
         f'num_clients: must be an int >= 1, got {num_clients!r}')
  num_clients = int(num_clients)
  if clients_per_round is None:
    clients_per_round = num_clients
  _check(isinstance(clients_per_round, (int, np.integer))
         and 1 <= clients_per_round <= num_clients,
         f'clients_per_round: must be an int in [1, {num_clients}], got '
         f'{clients_per_round!r}')
  slots = int(clients_per_round)
  if embedding_dim is None:
    embedding_dim = default_embedding_dim(num_clients)
  _check(embedding_dim >= 1,
         f'embedding_dim: must be >= 1, got {embedding_dim}')
  hidden = tuple(int(h) for h in hidden)
  _check(all(h >= 1 for h in hidden),
         f'hidden: widths must be >= 1, got {hidden}')
  client_optimizer = client_optimizer or DEFAULT_CLIENT_OPTIMIZER_FN()
  server_optimizer = server_optimizer or DEFAULT_SERVER_OPTIMIZER_FN()

  model_spec = models.spec(model_fn)
  weights_type = model_spec.weights_type
  dtype = _target_dtype(weights_type)
  shapes = tuple(tuple(int(d) for d in w.shape)
                 for w in weights_type.trainable)
  phi0, embeddings0 = initial_server_weights(
      shapes, num_clients=num_clients, embedding_dim=embedding_dim,
      hidden=hidden, seed=seed, dtype=dtype)

  @tff.tensorflow.computation
  def initialize_server():
    phi = tf.nest.map_structure(tf.constant, phi0)
    embeddings = tf.constant(embeddings0)
    tensor_specs = tf.nest.map_structure(tf.TensorSpec.from_tensor,
                                         (phi, embeddings))
    return collections.OrderedDict(
        hypernetwork=phi, embeddings=embeddings,
        optimizer_state=server_optimizer.initialize(tensor_specs))

  model_aggregator = model_aggregator or aggregation.FusedMeanFactory()
  rows_type = tff.StructWithPythonType(
      [tff.TensorType(dtype, [slots, *s]) for s in shapes], tuple)
  aggregator = aggregation.as_weighted(model_aggregator).create(
      rows_type, tff.TensorType(np.float32))
  model_state_type = initialize_server.type_signature.result
  # A stateless aggregator is initialized each round, so that its state
  # does not enter S and the state keeps its structure without one.
  stateful = tff.types.contains(
      aggregator.initialize.type_signature.result.member,
      lambda t: isinstance(t, tff.TensorType))

  @tff.tensorflow.computation(
      model_state_type, aggregator.initialize.type_signature.result.member)
  def with_aggregator(model_state, aggregator_state):
    return collections.OrderedDict(**model_state, aggregator=aggregator_state)

  state_type = (with_aggregator.type_signature.result if stateful
                else model_state_type)

  @tff.tensorflow.computation(state_type)
  def hypernetwork_and_embeddings(state):
    return state['hypernetwork'], state['embeddings']

  @tff.tensorflow.computation(
      hypernetwork_and_embeddings.type_signature.result, np.int32)
  def select_fn(server_val, key):
    phi, embeddings = server_val
    return generate(phi, tf.gather(embeddings, key), shapes)

  theta_type = select_fn.type_signature.result

  @tff.tensorflow.computation(np.int32)
  def one_hot_key(key):
    return tf.one_hot(key, num_clients, dtype=tf.int32)

  @tff.tensorflow.computation(tff.TensorType(np.int32, [num_clients]))
  def slots_of_round(present):
    return round_slots(present, slots)

  @tff.tensorflow.computation(state_type, slots_of_round.type_signature.result)
  def server_value(state, slot_keys):
    return state['hypernetwork'], state['embeddings'], slot_keys

  @tff.tensorflow.computation(server_value.type_signature.result, np.int32)
  def select_with_slot_fn(server_val, key):
    phi, embeddings, slot_keys = server_val
    slot = tf.cast(tf.argmax(tf.cast(tf.equal(slot_keys, key), tf.int32)),
                   tf.int32)
    return generate(phi, tf.gather(embeddings, key), shapes), slot

  @tff.tensorflow.computation(np.int32)
  def as_select_key(key):
    in_range = tf.logical_and(key >= 0, key < num_clients)
    with tf.control_dependencies([tf.debugging.Assert(in_range, [
        f'client_keys: a key must be in [0, {num_clients}), got', key])]):
      return tf.reshape(key, [1])

  zeros = lambda: tuple(tf.zeros(s, dtype) for s in shapes)

  @tff.tensorflow.computation(tff.SequenceType(theta_type))
  def only_element(selected):
    return iteration.first_or(selected, zeros())

  @tff.tensorflow.computation(
      tff.SequenceType(select_with_slot_fn.type_signature.result))
  def only_element_with_slot(selected):
    return iteration.first_or(selected, (zeros(), tf.constant(0)))

  @tff.federated_computation(tff.FederatedType(state_type, tff.SERVER),
                             tff.FederatedType(np.int32, tff.CLIENTS))
  def select_client_weights(state, client_keys):
    selected = tff.federated_select(
        tff.federated_map(as_select_key, client_keys),
        tff.federated_value(np.int32(num_clients - 1), tff.SERVER),
        tff.federated_map(hypernetwork_and_embeddings, state), select_fn)
    return tff.federated_map(only_element, selected)

  def local_delta(model, theta, slot, dataset):
    result = local_tf.train_locally(
        model, (tuple(theta), _non_trainable(model_fn)), dataset,
        optimizer=client_optimizer)
    client_result, metrics, dropped = client_work_lib.finalize_client_result(
        result, client_work_lib.ClientWeighting.UNIFORM)
    keep = tf.cast(client_result.update_weight, dtype)
    index = tf.reshape(slot, [1, 1])
    rows = tuple(
        tf.scatter_nd(index, (keep * d)[tf.newaxis], [slots, *s])
        for d, s in zip(client_result.update, shapes))
    counts = tf.scatter_nd(index, keep[tf.newaxis], [slots])
    return (rows, tf.cast(client_result.update_weight, tf.float32), counts,
            metrics, dropped)

  @tff.tensorflow.computation(
      only_element_with_slot.type_signature.result, model_spec.data_type)
  def client_update(theta_and_slot, dataset):
    theta, slot = theta_and_slot
    return models.build(model_fn).run(local_delta, theta, slot, dataset)

  counts_type = client_update.type_signature.result[2]

  @tff.tensorflow.computation(state_type, slots_of_round.type_signature.result,
                              aggregator.next.type_signature.result.result
                              .member, counts_type)
  def server_update(state, slot_keys, mean_rows, slot_counts):
    phi, embeddings = state['hypernetwork'], state['embeddings']
    # The slots' rows, then their embedding gradients back in their keys'
    # rows; an empty slot's delta and count are zero.
    taken = slot_keys >= 0
    keys = tf.boolean_mask(slot_keys, taken)[:, tf.newaxis]
    m = tf.reduce_sum(slot_counts)
    d_phi, d_slots = server_gradients(
        phi, tf.gather(embeddings, tf.maximum(slot_keys, 0)),
        tuple(r * m for r in mean_rows), slot_counts, shapes)
    d_embeddings = tf.scatter_nd(keys, tf.boolean_mask(d_slots, taken),
                                 tf.shape(embeddings))
    counts = tf.scatter_nd(keys, tf.boolean_mask(slot_counts, taken),
                           [num_clients])
    optimizer_state, (phi_new, embeddings_new) = server_optimizer.next(
        state['optimizer_state'], (phi, embeddings), (d_phi, d_embeddings))
    embeddings_new = tf.where(counts[:, tf.newaxis] > 0, embeddings_new,
                              embeddings)
    return collections.OrderedDict(
        hypernetwork=phi_new, embeddings=embeddings_new,
        optimizer_state=optimizer_state)

  finalize_metrics = local_tf.build_metrics_finalizer(
      model_spec.finalize_metrics)

  @tff.federated_computation
  def initialize_fn():
    model_state = tff.federated_eval(initialize_server, tff.SERVER)
    if not stateful:
      return model_state
    return tff.federated_map(with_aggregator,
                             (model_state, aggregator.initialize()))

  @tff.federated_computation(
      tff.FederatedType(state_type, tff.SERVER),
      tff.FederatedType(np.int32, tff.CLIENTS),
      tff.FederatedType(model_spec.data_type, tff.CLIENTS))
  def next_fn(state, client_keys, client_data):
    slot_keys = tff.federated_map(slots_of_round, tff.federated_sum(
        tff.federated_map(one_hot_key, client_keys)))
    selected = tff.federated_select(
        tff.federated_map(as_select_key, client_keys),
        tff.federated_value(np.int32(num_clients - 1), tff.SERVER),
        tff.federated_map(server_value, (state, slot_keys)),
        select_with_slot_fn)
    rows, weights, counts, metrics, dropped = tff.federated_map(
        client_update,
        (tff.federated_map(only_element_with_slot, selected), client_data))
    aggregate = aggregator.next(
        state.aggregator if stateful else aggregator.initialize(), rows,
        weights)
    new_state = tff.federated_map(server_update, (
        state, slot_keys, aggregate.result, tff.federated_sum(counts)))
    if stateful:
      new_state = tff.federated_map(with_aggregator,
                                    (new_state, aggregate.state))
    measurements = tff.federated_zip(collections.OrderedDict(
        train=tff.learning.metrics.sum_then_finalize(finalize_metrics)(
            metrics),
        clients_empty=tff.federated_sum(dropped.clients_empty),
        clients_non_finite=tff.federated_sum(dropped.clients_non_finite),
        aggregator=aggregate.measurements))
    return tff.learning.templates.LearningProcessOutput(new_state,
                                                        measurements)

  return PFedHNProcess(initialize_fn, next_fn, select_client_weights,
                       model_fn, num_clients, slots, shapes)


SPECS = {'pfedhn': specs.AlgorithmSpec(build_pfedhn, specs.client_sgd,
                                       per_client_models=True)}
