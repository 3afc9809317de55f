"""Personalization evaluation: how well global weights adapt to each client.

For each client, the query metrics of the global weights before and after
`inner_steps` SGD steps on the client's support set, summarized across
clients by their mean and 10th / 50th / 90th percentiles: the meta-test
protocol of MAML (Finn et al. 2017) and FedMeta (Chen et al. 2018,
https://arxiv.org/abs/1802.07876). On FedAvg weights it gives FedMeta's
"FedAvg(Meta)" baseline (FedAvg plus local fine-tuning).
"""

import collections
from typing import Optional

import tensorflow_federated as tff

from fedmeta import models
from fedmeta.algorithms import client_work
from fedmeta.algorithms import evaluation
from fedmeta.algorithms import local_tf
from fedmeta.algorithms import meta_tf

def build_personalization_eval(model_fn: models.ModelFn, *,
                               inner_learning_rate: float = 0.01,
                               inner_steps: int = 1,
                               learned_rates: bool = False,
                               inner_optimizer: Optional[
                                   tff.learning.optimizers.Optimizer] = None):
  """Builds `evaluate(weights, client_datasets) -> summary`.

  Paper: Finn et al. 2017 (meta-test protocol),
  https://arxiv.org/abs/1703.03400; Chen et al. 2018 (FedMeta),
  https://arxiv.org/abs/1802.07876.

  Args:
    model_fn: A `tff.learning.models.FunctionalModel` with input spec
      `{'x': ..., 'y': ...}`; client datasets carry a `support` flag
      (`fedmeta.data.split_client_data`).
    inner_learning_rate: SGD rate of the adaptation steps.
    inner_steps: Adaptation steps, each on the whole support set.
    learned_rates: Weights are Meta-SGD's (model weights then per-parameter
      rates, `fedmeta.algorithms.meta_sgd`); adapt with those rates.
    inner_optimizer: Adapt with this optimizer, from a fresh state, instead
      of SGD (Reptile's Adam, `fedmeta.algorithms.specs.inner_optimizer`).

  Returns:
    A function of (`tff.learning.models.ModelWeights`, list of client
    datasets) returning `fedmeta.algorithms.evaluation.summarize`'s summary
    of the clients' finalized query metrics before and after adaptation;
    with `clients=True`, each client's metrics, `{stage: {metric: value}}`,
    in order.
  """
  client_work.check_hyperparameters(inner_steps=inner_steps,
                                    inner_learning_rate=inner_learning_rate)
  data_type = client_work.support_flagged_data_type(model_fn)
  model_spec = models.spec(model_fn)
  weights_type = model_spec.weights_type
  if learned_rates:
    weights_type = meta_tf.LearnedRates.weights_type(weights_type)
  finalize = local_tf.build_metrics_finalizer(model_spec.finalize_metrics)

  def personalize(model, weights, dataset):
    trainable, non_trainable = weights
    if learned_rates:
      trainable, rates = meta_tf.LearnedRates.split(trainable)
    else:
      rates = meta_tf.scalar_rates(inner_learning_rate, trainable)
    metrics = meta_tf.personalize(model, (trainable, non_trainable), dataset,
                                  rates, inner_steps=inner_steps,
                                  optimizer=inner_optimizer)
    return collections.OrderedDict(
        (stage, finalize(state)) for stage, state in metrics.items())

  @tff.tensorflow.computation(weights_type, data_type)
  def client_eval(weights, dataset):
    return models.build(model_fn).run(
        personalize, (weights.trainable, weights.non_trainable), dataset)

  @tff.federated_computation(tff.FederatedType(weights_type, tff.SERVER),
                             tff.FederatedType(data_type, tff.CLIENTS))
  def per_client(weights, data):
    return tff.federated_map(client_eval,
                             (tff.federated_broadcast(weights), data))

  def evaluate(weights, client_datasets, *, clients: bool = False):
    results = per_client(weights, client_datasets)
    return results if clients else evaluation.summarize(results)

  return evaluate

