"""`AggregatorConfig` to factory: closed-form rounds, and every refusal."""

import dataclasses

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow_federated as tff

from fedmeta import aggregators
from fedmeta import runtime
from tests import testing

VALUE = tff.TensorType(np.float32, [2])
# Client updates of L2 norm 5 and 0.5, weights 1 and 3.
UPDATES = [np.array([3.0, 4.0], np.float32), np.array([0.3, 0.4], np.float32)]
WEIGHTS = [1.0, 3.0]


def _round(config: aggregators.AggregatorConfig) -> np.ndarray:
  return testing.aggregate(aggregators.build_model_aggregator(config), VALUE,
                           UPDATES, WEIGHTS)[0]


def _config(**kwargs) -> aggregators.AggregatorConfig:
  return aggregators.AggregatorConfig(clients_per_round=2, **kwargs)


class BuildTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    runtime.set_local_context()

  @parameterized.named_parameters(
      ('mean', {}, (1 * UPDATES[0] + 3 * UPDATES[1]) / 4),
      # [3, 4] clipped to norm 1 is [0.6, 0.8].
      ('clip', {'aggregation': 'clip', 'clip_norm': 1.0},
       (np.array([0.6, 0.8]) + 3 * UPDATES[1]) / 4),
      # Zeroed, the first update still counts in the weights.
      ('zeroing', {'aggregation': 'zeroing', 'clip_norm': 1.0},
       3 * UPDATES[1] / 4),
      # Unweighted: the coordinate-wise median of two is their mean.
      ('median', {'aggregation': 'median'}, (UPDATES[0] + UPDATES[1]) / 2),
      # Every client attacks: sign_flip sends -10 x its update.
      ('sign_flip_everyone', {'malicious_fraction': 1.0},
       -10 * (1 * UPDATES[0] + 3 * UPDATES[1]) / 4),
      ('scale_given', {'malicious_fraction': 1.0, 'attack': 'scale',
                       'attack_scale': 2.0},
       2 * (1 * UPDATES[0] + 3 * UPDATES[1]) / 4),
      # ipm's default scale is Xie et al.'s 0.1, times the updates' plain
      # mean.
      ('ipm_everyone', {'malicious_fraction': 1.0, 'attack': 'ipm'},
       -0.1 * (UPDATES[0] + UPDATES[1]) / 2),
      # The defence sees the attackers' updates: -10 x each, clipped to norm
      # 1, is [-0.6, -0.8] for both.
      ('clip_sees_the_attack', {'aggregation': 'clip', 'clip_norm': 1.0,
                                'malicious_fraction': 1.0},
       np.array([-0.6, -0.8])),
  )
  def test_round_equals_closed_form(self, fields, expected):
    np.testing.assert_allclose(_round(_config(**fields)), expected,
                               rtol=1e-6)

  def test_compressed_mean_is_within_its_quantization_step(self):
    result = _round(_config(compression_bits=16))
    np.testing.assert_allclose(result, (UPDATES[0] + 3 * UPDATES[1]) / 4,
                               atol=5 / 2**15)

  def test_secure_mean_is_the_mean(self):
    np.testing.assert_allclose(
        _round(_config(secure_aggregation=True, secure_bound=10.0)),
        (UPDATES[0] + 3 * UPDATES[1]) / 4, atol=1e-4)

  @parameterized.named_parameters(
      ('unknown_kind', {'aggregation': 'mode'}, 'aggregation',
       'one of mean, clip'),
      ('byzantine_without_its_rule', {'byzantine': 1}, 'byzantine',
       'needs aggregation=krum, multi_krum or bulyan'),
      ('krum_without_byzantine', {'aggregation': 'krum'}, 'byzantine',
       'aggregation=krum needs it'),
      ('krum_round_too_small', {'aggregation': 'krum', 'byzantine': 1},
       'clients_per_round', r'krum: a round of 2 clients needs n >= 2f \+ 3'),
      ('keep_without_multi_krum', {'multi_krum_keep': 2}, 'multi_krum_keep',
       'needs aggregation=multi_krum'),
      ('weiszfeld_without_geometric_median',
       {'aggregation': 'median', 'weiszfeld_iterations': 2},
       'weiszfeld_iterations', 'needs aggregation=geometric_median'),
      ('centered_clip_without_radius', {'aggregation': 'centered_clip'},
       'clip_norm',
       r'aggregation=centered_clip needs it > 0 \(the radius\)'),
      ('clip_without_norm', {'aggregation': 'clip'}, 'clip_norm',
       'aggregation=clip needs it'),
      ('norm_without_clip', {'clip_norm': 1.0}, 'clip_norm',
       'needs aggregation=clip, zeroing or centered_clip'),
      ('dp_with_a_statistic', {'dp_noise_multiplier': 1.0,
                               'aggregation': 'median'},
       'aggregation', 'not with dp_noise_multiplier'),
      ('dp_with_secure_sum', {'dp_noise_multiplier': 1.0,
                              'secure_aggregation': True},
       'secure_aggregation', 'not with dp_noise_multiplier'),
      ('dp_clip_without_dp', {'dp_clip': 1.0}, 'dp_clip',
       'needs dp_noise_multiplier'),
      ('statistic_with_compression', {'aggregation': 'median',
                                      'compression_bits': 8},
       'compression_bits', 'not with aggregation=median, which needs every'),
      ('secure_with_compression', {'secure_aggregation': True,
                                   'compression_bits': 8},
       'compression_bits', 'not with secure_aggregation'),
      ('rotation_without_compression', {'rotation': True}, 'rotation',
       'needs compression_bits'),
  )
  def test_fields_that_do_not_combine_are_named(self, fields, field, message):
    with self.assertRaisesRegex(aggregators.ConfigError,
                                f'^{field}: {message}') as caught:
      aggregators.build_model_aggregator(_config(**fields))
    self.assertEqual(caught.exception.field, field)
    for mentioned in caught.exception.mentions:
      self.assertIn(mentioned, dataclasses.asdict(_config()))
      self.assertRegex(caught.exception.message, rf'\b{mentioned}\b')


if __name__ == '__main__':
  absltest.main()
