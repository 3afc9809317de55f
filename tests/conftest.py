"""Quiets TF's C++ logs before TensorFlow is imported and guards TFF's worker,
as every entry point does; gives the session a fresh data cache so every run
decodes the real files; skips the tests that need the real files where there
are none."""

import os
import tempfile

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta.data import files
import pytest

os.environ.setdefault('FEDMETA_CACHE_DIR',
                      tempfile.mkdtemp(prefix='fedmeta_test_cache_'))

# Marked slow, so that `make test-fast` (under 3 minutes) leaves them out
# with the modules marked slow as a whole (processes, notebooks): the tests
# of 2.3 s or more (`pytest -m "not slow" --durations=80` on 2 cores beside a
# training run, 2026-12-02), by node id, parameterized cases by their common
# prefix. The rest ran in 119 s alone.
SLOW_TESTS = (  # pylint: disable=line-too-long
    'tests/aggregation_test.py::AggregationTest::test_a_round_without_clients_leaves_the_model_finite_alie',
    'tests/aggregation_test.py::AggregationTest::test_a_round_without_clients_leaves_the_model_finite_bulyan',
    'tests/aggregation_test.py::AggregationTest::test_a_round_without_clients_leaves_the_model_finite_compressed',
    'tests/aggregation_test.py::AggregationTest::test_a_round_without_clients_leaves_the_model_finite_geometric_median',
    'tests/aggregation_test.py::AggregationTest::test_a_round_without_clients_leaves_the_model_finite_krum',
    'tests/aggregation_test.py::AggregationTest::test_a_round_without_clients_leaves_the_model_finite_secure',
    'tests/aggregation_test.py::AggregationTest::test_alie_in_a_round_expecting_no_attacker_sends_the_mean',
    'tests/aggregation_test.py::AggregationTest::test_compressed_mean_error_within_quantization_step',
    'tests/aggregation_test.py::AggregationTest::test_omniscient_attack_spares_or_takes_every_client',
    'tests/aggregation_test.py::AggregationTest::test_omniscient_attackers_send_the_forged_update',
    'tests/aggregation_test.py::AggregationTest::test_update_bytes_are_the_encoded_tensors',
    'tests/aggregation_test.py::ByzantineTest::test_bulyan_trims_around_the_median_of_krum_selections',
    'tests/aggregation_test.py::ByzantineTest::test_defence_ignores_client_order_and_keeps_a_consensus_bulyan',
    'tests/aggregation_test.py::ByzantineTest::test_defence_ignores_client_order_and_keeps_a_consensus_centered_clip',
    'tests/aggregation_test.py::ByzantineTest::test_defence_ignores_client_order_and_keeps_a_consensus_geometric_median',
    'tests/aggregation_test.py::ByzantineTest::test_defence_ignores_client_order_and_keeps_a_consensus_krum',
    'tests/aggregation_test.py::ByzantineTest::test_geometric_median_is_the_weighted_weiszfeld_fixed_point',
    'tests/aggregation_test.py::PrivacyTest::test_epsilon_grows_with_rounds_and_sampling_shrinks_with_noise',
    'tests/aggregation_test.py::RobustnessTest::test_robust_aggregation_survives_attack_that_breaks_the_mean',
    'tests/aggregators_test.py::BuildTest::test_secure_mean_is_the_mean',
    'tests/algorithms/fed_avg_test.py::FedAvgTest::test_empty_client_is_zero_weighted_and_counted',
    'tests/algorithms/fed_avg_test.py::FedAvgTest::test_equals_tff_weighted_fed_avg_example_weighted',
    'tests/algorithms/fed_avg_test.py::FedAvgTest::test_equals_tff_weighted_fed_avg_uniform',
    'tests/algorithms/fed_avg_test.py::FedAvgTest::test_loss_decreases',
    'tests/algorithms/fed_maml_test.py::FedMamlTest::test_client_without_support_gets_no_weight',
    'tests/algorithms/fed_maml_test.py::FedMamlTest::test_clients_average_their_meta_gradients',
    'tests/algorithms/fed_maml_test.py::FedMamlTest::test_fo_maml_is_fed_maml_first_order',
    'tests/algorithms/fed_maml_test.py::FedMamlTest::test_one_client_equals_centralized_maml_step',
    'tests/algorithms/fed_maml_test.py::MetaGradientTest::test_first_order_drops_the_hessian',
    'tests/algorithms/fed_maml_test.py::MetaGradientTest::test_second_order_equals_finite_differences',
    'tests/algorithms/fed_opt_test.py::FedOptTest::test_equals_tff_fed_avg_with_server_optimizer_adagrad',
    'tests/algorithms/fed_opt_test.py::FedOptTest::test_equals_tff_fed_avg_with_server_optimizer_adam',
    'tests/algorithms/fed_opt_test.py::FedOptTest::test_equals_tff_fed_avg_with_server_optimizer_avgm',
    'tests/algorithms/fed_opt_test.py::FedOptTest::test_equals_tff_fed_avg_with_server_optimizer_yogi',
    'tests/algorithms/fed_protonet_test.py::FedProtoNetTest::test_a_client_without_support_moves_nothing',
    'tests/algorithms/fed_prox_test.py::FedProxTest::test_matches_closed_form_and_is_pulled_toward_global_model',
    'tests/algorithms/fed_prox_test.py::FedProxTest::test_tff_0_87_fed_prox_uses_the_opposite_sign',
    'tests/algorithms/fed_prox_test.py::FedProxTest::test_zero_mu_equals_fed_avg_and_tff_fed_prox',
    'tests/algorithms/fed_sgd_test.py::FedSgdTest::test_equals_tff_fed_sgd',
    'tests/algorithms/fed_sgd_test.py::FedSgdTest::test_round_is_a_full_batch_gradient_step_on_pooled_data',
    'tests/algorithms/meta_variants_test.py::MetaVariantsTest::test_meta_sgd_first_round_moves_weights_like_maml',
    'tests/algorithms/meta_variants_test.py::MetaVariantsTest::test_meta_sgd_rate_gradient_by_hand',
    'tests/algorithms/meta_variants_test.py::MetaVariantsTest::test_per_fedavg_two_local_steps_by_hand',
    'tests/algorithms/meta_variants_test.py::MetaVariantsTest::test_per_fedavg_one_step_is_a_maml_step',
    'tests/algorithms/meta_variants_test.py::MetaVariantsTest::test_reptile_moves_toward_adapted_weights',
    'tests/algorithms/meta_variants_test.py::MetaVariantsTest::test_reptile_one_step_equals_fed_avg_one_local_step',
    'tests/algorithms/meta_variants_test.py::MetaVariantsTest::test_tasks_per_batch_count_as_clients_of_one_task',
    'tests/algorithms/personalization_test.py::PersonalizationTest::test_learned_rates',
    'tests/algorithms/sinusoid_meta_test.py::SinusoidMetaLearningTest::test_fed_maml_adapts_better_than_fed_avg',
    'tests/algorithms/variable_model_test.py::VariableModelTest::test_fed_avg_equals_tff',
    'tests/algorithms/variable_model_test.py::VariableModelTest::test_fed_prox_and_eval_equal_the_functional_path',
    'tests/algorithms/variable_model_test.py::VariableModelTest::test_fed_sgd_equals_tff',
    'tests/compat_test.py::SampleTest::test_design_document_sample_equals_fed_avg',
    'tests/compat_test.py::SampleTest::test_federated_evaluation',
    'tests/data/home_activity_test.py::RealDataTest::test_clients_split_by_day',
    'tests/data/omniglot_test.py::OmniglotTest::test_alphabet_pools',
    'tests/data/omniglot_test.py::OmniglotTest::test_cache_is_used_and_keyed_by_content',
    'tests/data/omniglot_test.py::OmniglotTest::test_official_one_shot_runs',
    'tests/data/registry_test.py::ModelsFitElementsTest::test_each_tasks_model_takes_its_elements',
    'tests/data/registry_test.py::RegistryTest::test_describe_skew_grows_as_alpha_shrinks',
    'tests/data/shakespeare_plays_test.py::RealPlaysTest::test_default_source_is_plays',
    'tests/data/text_and_writers_test.py::ShakespeareTest::test_model_trains_federated_and_meta_learns',
    'tests/data/tfds_test.py::OmniglotTest::test_a_prepared_dataset_is_not_prepared_again',
    'tests/data/tfds_test.py::OmniglotTest::test_dirichlet_partition_and_iid_test_clients',
    'tests/data/tfds_test.py::OmniglotTest::test_natural_clients_are_alphabets',
    'tests/data/tfds_test.py::TinyShakespeareTest::test_chunks_are_contiguous_equal_parts',
    'tests/data/thermostat_test.py::SmallFilesTest::test_learning_process_reports_mean_absolute_error',
    'tests/experiments/local_baseline_test.py::LocalBaselineTest::test_each_client_descends_from_the_initial_weights',
    'tests/experiments/local_baseline_test.py::LocalBaselineTest::test_refuses_flags_under_which_nothing_is_fit',
    'tests/experiments/reproduce_test.py::ReproduceTest::test_failed_evaluation_exits_with_one_line',
    'tests/experiments/builders_test.py::ServerOptimizerTest::test_unset_learning_rate_is_the_builders_own',
    'tests/experiments/old_names_test.py::OldNamesTest::test_an_old_command_runs_the_runner',
    'tests/experiments/training_loop_test.py::TrainingLoopTest::test_ctrl_c_during_a_checkpoint_lets_it_finish',
    'tests/experiments/training_loop_test.py::TrainingLoopTest::test_keeps_initial_and_last_checkpoints',
    'tests/experiments/training_loop_test.py::TrainingLoopTest::test_resumed_run_equals_uninterrupted_run',
    'tests/experiments/training_loop_test.py::TrainingLoopTest::test_rounds_after_the_last_checkpoint_are_rerun_not_duplicated',
    'tests/models_test.py::EmptyBatchTest::test_client_with_one_example_on_a_conv_model',
)


def pytest_collection_modifyitems(items):
  for item in items:
    if item.nodeid.startswith(SLOW_TESTS):
      item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  """A test whose loader finds no data dir is skipped, with the reason."""
  outcome = yield
  report = outcome.get_result()
  if call.excinfo is not None and call.excinfo.errisinstance(files.NoDataDir):
    path, line, _ = item.location
    report.outcome = 'skipped'
    report.longrepr = (path, line + 1, 'Skipped: needs the real datasets '
                       f'({call.excinfo.value})')
