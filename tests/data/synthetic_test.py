"""FedProx Synthetic(alpha, beta): statistics match the generator's formulas."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from fedmeta.data import synthetic
from tests import testing


class SyntheticTest(parameterized.TestCase):

  @parameterized.parameters((0.5, 0.5), (1.0, 1.0), (2.0, 0.3))
  def test_parameters_follow_the_formulas(self, alpha, beta):
    g = synthetic.generate(alpha, beta, num_devices=400, seed=1)
    # u_k ~ N(0, alpha) and B_k ~ N(0, beta): standard deviations.
    self.assertAlmostEqual(g.u.std() / alpha, 1.0, delta=0.12)
    self.assertAlmostEqual(g.big_b.std() / beta, 1.0, delta=0.12)
    # W_k, b_k ~ N(u_k, 1) with the same u_k; v_k ~ N(B_k, 1).
    self.assertAlmostEqual(np.std(g.w - g.u[:, None, None]), 1.0, delta=0.02)
    self.assertAlmostEqual(np.mean(g.w - g.u[:, None, None]), 0.0, delta=0.02)
    self.assertAlmostEqual(np.std(g.b - g.u[:, None]), 1.0, delta=0.03)
    self.assertAlmostEqual(np.std(g.v - g.big_b[:, None]), 1.0, delta=0.03)
    # Samples: int(lognormal(4, 2)) + 50.
    counts = np.asarray([len(y) for y in g.y])
    self.assertGreaterEqual(counts.min(), 50)
    # The median of lognormal(4, 2) is e^4; int() floors, hence + 0.5.
    self.assertAlmostEqual(np.median(np.log(counts - 50 + 0.5)), 4.0,
                           delta=0.35)
    # x ~ N(v_k, diag(j^-1.2)).
    centered = np.concatenate([x - v for x, v in zip(g.x, g.v)])
    np.testing.assert_allclose(centered.var(axis=0),
                               synthetic.covariance_diagonal(), rtol=0.05)
    # y = argmax(softmax(W_k x + b_k)).
    for x, y, w, b in zip(g.x[:20], g.y, g.w, g.b):
      np.testing.assert_array_equal(y, np.argmax(x @ w + b, axis=1))

  def test_iid_shares_the_model_and_the_input_mean(self):
    g = synthetic.generate(0.0, 0.0, iid=True, num_devices=5, seed=2)
    for k in range(1, 5):
      np.testing.assert_array_equal(g.w[k], g.w[0])
      np.testing.assert_array_equal(g.b[k], g.b[0])
    np.testing.assert_array_equal(g.v, 0.0)
    self.assertAlmostEqual(np.std(g.w[0]), 1.0, delta=0.15)

  def test_task_splits_each_device_90_10(self):
    task = synthetic.load(alpha=1.0, beta=1.0, seed=4)
    g = synthetic.generate(1.0, 1.0, seed=4)
    self.assertLen(task.train.client_ids, 30)
    train = testing.client_sizes(task.train)
    test = testing.client_sizes(task.test)
    for n_train, n_test, y in zip(train, test, g.y):
      self.assertEqual(n_train, int(0.9 * len(y)))
      self.assertEqual(n_train + n_test, len(y))
    first = testing.client_arrays_of(task.test, task.test.client_ids[0])
    np.testing.assert_array_equal(first['y'], g.y[0][train[0]:])

  def test_negative_alpha_is_an_error(self):
    with self.assertRaisesRegex(ValueError, 'alpha'):
      synthetic.generate(-1.0, 0.0)


if __name__ == '__main__':
  absltest.main()
