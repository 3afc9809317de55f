"""TFF's removed FedAvg API on fedmeta: the design document's sample, and
Keras optimizers mapped onto tff.learning's."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from fedmeta import algorithms
from fedmeta import compat
from fedmeta import runtime
import tensorflow as tf  # pylint: disable=g-bad-import-order
import tensorflow_federated as tff  # pylint: disable=g-bad-import-order
from tests import testing

# The design document's sample with its `...` filled in (a Keras model
# wrapped by from_keras_model, and a loss) and its import line changed;
# `federated_train_data` and NUM_ROUNDS come from the test.
SAMPLE = '''
from fedmeta.compat import tff
import tensorflow as tf

def create_model():
  keras_model = tf.keras.Sequential([
      tf.keras.layers.Input([4]),
      tf.keras.layers.Dense(
          3, kernel_initializer=tf.keras.initializers.Constant(INITIAL))])
  return tff.learning.models.from_keras_model(
      keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(
          from_logits=True),
      input_spec=federated_train_data[0].element_spec)

def loss_fn(model, batch):
  return model.forward_pass(batch).loss

iterative_process = tff.learning.build_federated_averaging_process(
    model_fn=create_model,
    client_optimizer_fn=tf.keras.optimizers.SGD,
    server_optimizer_fn=tf.keras.optimizers.SGD)

state = iterative_process.initialize()
for round_num in range(NUM_ROUNDS):
  state, metrics = iterative_process.next(state, federated_train_data)
  print('round {:2d}, metrics={}'.format(round_num, metrics))
'''
INITIAL = np.linspace(-1, 1, 12).reshape(4, 3).astype(np.float32)


def _datasets():
  return [tf.data.Dataset.from_tensor_slices(
      {'x': x, 'y': y[:, None]}).batch(4).map(lambda e: (e['x'], e['y']))
          for x, y in testing.client_arrays([5, 8, 3])]


class SampleTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()

  def test_design_document_sample_equals_fed_avg(self):
    namespace = {'federated_train_data': _datasets(), 'NUM_ROUNDS': 3,
                 'INITIAL': INITIAL}
    exec(SAMPLE, namespace)  # pylint: disable=exec-used
    process = namespace['iterative_process']
    self.assertIsInstance(process, tff.templates.IterativeProcess)
    self.assertIn('client_work', namespace['metrics'])
    # The classes themselves as optimizer fns: Keras SGD's default 0.01.
    reference = algorithms.build_fed_avg(
        namespace['create_model'],
        client_optimizer=tff.learning.optimizers.build_sgdm(0.01),
        server_optimizer=tff.learning.optimizers.build_sgdm(0.01))
    expected, _ = testing.run_rounds(reference, _datasets(), 3)
    actual = process.get_model_weights(namespace['state'])
    for a, b in zip(tf.nest.flatten(actual), tf.nest.flatten(expected),
                    strict=True):
      np.testing.assert_array_equal(a, b)
    self.assertGreater(testing.max_abs_diff(actual.trainable,
                                            [INITIAL, np.zeros(3)]), 1e-4)

  def test_federated_evaluation(self):
    namespace = {'federated_train_data': _datasets(), 'NUM_ROUNDS': 1,
                 'INITIAL': INITIAL}
    exec(SAMPLE, namespace)  # pylint: disable=exec-used
    evaluate = compat.tff.learning.build_federated_evaluation(
        namespace['create_model'])
    weights = namespace['iterative_process'].get_model_weights(
        namespace['state'])
    metrics = evaluate(weights, _datasets())
    self.assertEqual(metrics['num_examples'], 16)
    reference = algorithms.build_fed_eval(namespace['create_model'])(
        weights, _datasets())
    self.assertAlmostEqual(metrics['loss'], reference['loss'], places=6)

  def test_keras_model_unwrapped_is_a_one_line_error(self):
    with self.assertRaisesRegex(compat.CompatError,
                                r'^model_fn: returns a tf.keras.Model'):
      compat.build_federated_averaging_process(
          lambda: tf.keras.Sequential([tf.keras.layers.Dense(1)]),
          tf.keras.optimizers.SGD)

  def test_rest_of_tff_is_tff(self):
    self.assertIs(compat.tff.federated_computation, tff.federated_computation)
    self.assertIs(compat.tff.learning.models, tff.learning.models)
    self.assertIs(compat.tff.learning.from_keras_model,
                  tff.learning.models.from_keras_model)
    self.assertIn('build_federated_averaging_process', dir(
        compat.tff.learning))


class KerasOptimizerTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('sgd', lambda: tf.keras.optimizers.SGD(0.1)),
      ('sgd_momentum', lambda: tf.keras.optimizers.SGD(0.1, momentum=0.9)),
      ('legacy_sgd', lambda: tf.keras.optimizers.legacy.SGD(0.05, 0.5)),
      # Large epsilons and small gradients: where epsilon goes shows.
      ('adam', lambda: tf.keras.optimizers.Adam(0.01, beta_1=0.8,
                                                beta_2=0.99, epsilon=0.1)),
      ('legacy_adam', lambda: tf.keras.optimizers.legacy.Adam(
          0.01, epsilon=0.1)),
      ('adagrad', lambda: tf.keras.optimizers.Adagrad(
          0.1, initial_accumulator_value=0.2, epsilon=0.1)))
  def test_steps_equal_keras(self, optimizer_fn):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 2)).astype(np.float32)
    gradients = [0.1 * rng.normal(size=(3, 2)).astype(np.float32)
                 for _ in range(4)]
    keras_optimizer = optimizer_fn()
    variable = tf.Variable(start)
    for g in gradients:
      keras_optimizer.apply_gradients([(tf.constant(g), variable)])
    optimizer = compat.keras_optimizer(optimizer_fn, 'client_optimizer_fn')
    weights = (tf.constant(start),)
    state = optimizer.initialize((tf.TensorSpec([3, 2], tf.float32),))
    for g in gradients:
      state, weights = optimizer.next(state, weights, (tf.constant(g),))
    np.testing.assert_allclose(weights[0], variable.numpy(), rtol=1e-5,
                               atol=1e-6)

  @parameterized.named_parameters(
      ('nadam', tf.keras.optimizers.Nadam,
       r'^server_optimizer_fn: tf.keras.optimizers.Nadam has no '
       r'tff.learning.optimizers equivalent'),
      ('nesterov', lambda: tf.keras.optimizers.SGD(0.1, momentum=0.9,
                                                   nesterov=True),
       r'^server_optimizer_fn: SGD: nesterov=True'),
      ('weight_decay', lambda: tf.keras.optimizers.Adam(weight_decay=0.1),
       r'^server_optimizer_fn: Adam: weight_decay=0.1'),
      ('rmsprop', tf.keras.optimizers.RMSprop,
       r'^server_optimizer_fn: RMSprop: Keras and tff.learning.optimizers '
       r'place its epsilon differently'),
      ('legacy_adagrad', tf.keras.optimizers.legacy.Adagrad,
       r'^server_optimizer_fn: Adagrad: Keras and tff.learning'),
      ('not_an_optimizer', lambda: 0.1,
       r'^server_optimizer_fn: expected a Keras optimizer, got float'))
  def test_no_equivalent_is_a_one_line_error(self, optimizer_fn, error):
    with self.assertRaisesRegex(compat.CompatError, error):
      compat.keras_optimizer(optimizer_fn, 'server_optimizer_fn')

  def test_weighting_function_is_a_one_line_error(self):
    with self.assertRaisesRegex(compat.CompatError, r'^client_weighting: '):
      compat.build_federated_averaging_process(
          lambda: None, tf.keras.optimizers.SGD,
          client_weighting=lambda metrics: 1.0)

  def test_tff_optimizer_passes_through(self):
    optimizer = tff.learning.optimizers.build_yogi(0.1)
    self.assertIs(compat.keras_optimizer(lambda: optimizer, 'x'), optimizer)


if __name__ == '__main__':
  absltest.main()
