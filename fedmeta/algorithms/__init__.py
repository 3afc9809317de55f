"""fedmeta's federated algorithms, each a `build_<name>(model_fn, *, ...)`.

Every builder returns a `tff.learning.templates.LearningProcess` composed from
broadcast, a client work process, a TFF aggregation factory and a server
optimizer (see `fedmeta.algorithms.client_work`).
"""

from fedmeta.algorithms.client_work import ClientWeighting
from fedmeta.algorithms.evaluation import build_fed_eval
from fedmeta.algorithms.fed_avg import build_fed_avg
from fedmeta.algorithms.fed_opt import build_fed_adagrad
from fedmeta.algorithms.fed_opt import build_fed_adam
from fedmeta.algorithms.fed_opt import build_fed_avgm
from fedmeta.algorithms.fed_opt import build_fed_yogi
from fedmeta.algorithms.fed_prox import build_fed_prox
from fedmeta.algorithms.fed_sgd import build_fed_sgd

# Name (the runner's --algorithm value) -> builder.
BUILDERS = {
    'fed_avg': build_fed_avg,
    'fed_sgd': build_fed_sgd,
    'fed_prox': build_fed_prox,
    'fed_adam': build_fed_adam,
    'fed_yogi': build_fed_yogi,
    'fed_adagrad': build_fed_adagrad,
    'fed_avgm': build_fed_avgm,
}
