"""Sinusoid clients: MAML's distribution, lazily generated, deterministic."""

import tracemalloc

from absl.testing import absltest
import numpy as np

from fedmeta.data import sinusoid
from tests import testing


class SinusoidTest(absltest.TestCase):

  def test_population_is_lazy(self):
    tracemalloc.start()
    task = sinusoid.load(num_clients=100_000, seed=3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    self.assertLess(peak, 2_000_000)  # A list of 100,000 ids is ~7 MB.
    self.assertLen(task.train.client_ids, 100_000)
    self.assertEqual(task.train.client_ids[-1], 'train_099999')
    self.assertIn('train_099999', task.train.client_ids)
    self.assertNotIn('train_100000', task.train.client_ids)
    self.assertNotIn('test_000001', task.train.client_ids)

  def test_points_lie_on_the_clients_sine(self):
    task = sinusoid.load(num_clients=50, examples_per_client=30, seed=1)
    amplitudes, phases = [], []
    for cid in task.train.client_ids:
      data = testing.client_arrays_of(task.train, cid)
      amplitude, phase = (float(v) for v in sinusoid.sine(1, 'train', cid))
      self.assertEqual(data['x'].shape, (30, 1))
      self.assertTrue(np.all(np.abs(data['x']) <= 5.0))
      np.testing.assert_allclose(
          data['y'], amplitude * np.sin(data['x'] - phase), atol=1e-5)
      amplitudes.append(amplitude)
      phases.append(phase)
    self.assertTrue(0.1 <= min(amplitudes) and max(amplitudes) <= 5.0)
    self.assertTrue(0.0 <= min(phases) and max(phases) <= np.pi)

  def test_parameter_distribution_is_uniform(self):
    a, p = (np.asarray(v) for v in zip(*[
        sinusoid.sine(0, 'train', f'train_{i:06d}') for i in range(3000)]))
    # U[0.1, 5]: mean 2.55, sd 1.41; U[0, pi]: mean pi/2, sd 0.907.
    self.assertAlmostEqual(a.mean(), 2.55, delta=0.08)
    self.assertAlmostEqual(a.std(), 4.9 / np.sqrt(12), delta=0.05)
    self.assertAlmostEqual(p.mean(), np.pi / 2, delta=0.05)

  def test_deterministic_and_splits_independent(self):
    first = testing.client_arrays_of(sinusoid.load(seed=5).train,
                                     'train_000007')
    again = testing.client_arrays_of(sinusoid.load(seed=5).train,
                                     'train_000007')
    other = testing.client_arrays_of(sinusoid.load(seed=6).train,
                                     'train_000007')
    test = testing.client_arrays_of(sinusoid.load(seed=5).test, 'test_000007')
    np.testing.assert_array_equal(first['y'], again['y'])
    self.assertFalse(np.allclose(first['x'], other['x']))
    self.assertFalse(np.allclose(first['x'], test['x']))

  def test_bad_sizes(self):
    with self.assertRaisesRegex(ValueError, 'examples_per_client'):
      sinusoid.load(examples_per_client=0)


if __name__ == '__main__':
  absltest.main()
