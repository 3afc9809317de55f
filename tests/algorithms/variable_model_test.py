"""The FedAvg family on `tff.learning.models.VariableModel`s equals TFF's
variable-model builders, and fedmeta's own functional path."""

from absl.testing import absltest
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta import algorithms
from fedmeta import models
from fedmeta import runtime
from tests import testing

SIZES = (10, 7, 13)
OPT = tff.learning.optimizers


def keras_mlp():
  return tf.keras.Sequential([
      tf.keras.layers.Input([testing.NUM_FEATURES]),
      tf.keras.layers.Dense(5, activation='tanh'),
      tf.keras.layers.Dense(testing.NUM_CLASSES)])


def variable_model_fn():
  return tff.learning.models.from_keras_model(
      keras_mlp(), input_spec=testing.INPUT_SPEC,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])


def functional_model():
  return models.from_keras(
      keras_mlp, input_spec=testing.INPUT_SPEC,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy])


def run_from(process, weights, datasets, rounds):
  """Like `testing.run_rounds`, but starting from the given model weights."""
  state = process.set_model_weights(process.initialize(), weights)
  output = None
  for _ in range(rounds):
    output = process.next(state, datasets)
    state = output.state
  return process.get_model_weights(state), output


class VariableModelTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    runtime.set_local_context()
    self.datasets = testing.client_datasets(SIZES)

  def test_fed_avg_equals_tff(self):
    ours = algorithms.build_fed_avg(
        variable_model_fn, client_optimizer=OPT.build_sgdm(0.1),
        server_optimizer=OPT.build_sgdm(0.7))
    ref = tff.learning.algorithms.build_weighted_fed_avg(
        variable_model_fn, OPT.build_sgdm(0.1), OPT.build_sgdm(0.7))
    start = ours.get_model_weights(ours.initialize())
    ours_weights, output = run_from(ours, start, self.datasets, 3)
    ref_weights, ref_output = run_from(ref, start, self.datasets, 3)
    self.assertLess(testing.max_abs_diff(ours_weights, ref_weights), 1e-5)
    train = output.metrics['client_work']['train']
    self.assertAlmostEqual(
        train['sparse_categorical_accuracy'],
        ref_output.metrics['client_work']['train'][
            'sparse_categorical_accuracy'], places=6)
    self.assertEqual(train['num_examples'], sum(SIZES))

  def test_fed_sgd_equals_tff(self):
    ours = algorithms.build_fed_sgd(variable_model_fn,
                                    server_optimizer=OPT.build_sgdm(0.5))
    ref = tff.learning.algorithms.build_fed_sgd(variable_model_fn,
                                                OPT.build_sgdm(0.5))
    start = ours.get_model_weights(ours.initialize())
    ours_weights, _ = run_from(ours, start, self.datasets, 3)
    ref_weights, _ = run_from(ref, start, self.datasets, 3)
    self.assertLess(testing.max_abs_diff(ours_weights, ref_weights), 1e-5)

  def test_fed_prox_and_eval_equal_the_functional_path(self):
    variable = algorithms.build_fed_prox(
        variable_model_fn, proximal_strength=2.0,
        client_optimizer=OPT.build_sgdm(0.1))
    model = functional_model()
    functional = algorithms.build_fed_prox(
        model, proximal_strength=2.0,
        client_optimizer=OPT.build_sgdm(0.1))
    start = functional.get_model_weights(functional.initialize())
    var_weights, _ = run_from(variable, start, self.datasets, 2)
    fun_weights, _ = run_from(functional, start, self.datasets, 2)
    self.assertLess(testing.max_abs_diff(var_weights, fun_weights), 1e-5)

    var_eval = algorithms.build_fed_eval(variable_model_fn)(
        var_weights, self.datasets)
    fun_eval = algorithms.build_fed_eval(model)(
        var_weights, self.datasets)
    for key in ('loss', 'sparse_categorical_accuracy', 'num_examples'):
      self.assertAlmostEqual(var_eval[key], fun_eval[key], places=5)

  def test_callable_must_return_a_variable_model(self):
    with self.assertRaisesRegex(models.ModelError, 'VariableModel'):
      algorithms.build_fed_avg(keras_mlp)

  def test_rejects_neither_kind(self):
    with self.assertRaisesRegex(models.ModelError, 'model_fn'):
      algorithms.build_fed_avg(42)


if __name__ == '__main__':
  absltest.main()
