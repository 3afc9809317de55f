"""fedmeta's federated algorithms, each a `build_<name>(model_fn, *, ...)`.

Every builder in `BUILDERS` returns a `tff.learning.templates.LearningProcess`
composed from broadcast, a client work process, a TFF aggregation factory and
a server optimizer (see `fedmeta.algorithms.client_work`). `build_pfedhn`'s
process sends each client its own weights (`tff.federated_select`) and takes
client keys beside the datasets; the runner does not run it yet.
"""

from fedmeta.algorithms.client_work import ClientWeighting
from fedmeta.algorithms.evaluation import build_fed_eval
from fedmeta.algorithms.fed_avg import build_fed_avg
from fedmeta.algorithms.fed_opt import build_fed_adagrad
from fedmeta.algorithms.fed_opt import build_fed_adam
from fedmeta.algorithms.fed_opt import build_fed_avgm
from fedmeta.algorithms.fed_opt import build_fed_yogi
from fedmeta.algorithms.fed_prox import build_fed_prox
from fedmeta.algorithms.fed_protonet import build_fed_protonet
from fedmeta.algorithms.fed_protonet import build_protonet_eval
from fedmeta.algorithms.fed_maml import build_fed_maml
from fedmeta.algorithms.fed_maml import build_fo_maml
from fedmeta.algorithms.fed_sgd import build_fed_sgd
from fedmeta.algorithms.meta_sgd import build_meta_sgd
from fedmeta.algorithms.per_fedavg import build_per_fedavg_fo
from fedmeta.algorithms.per_fedavg import build_per_fedavg_hf
from fedmeta.algorithms.personalization import build_personalization_eval
from fedmeta.algorithms.pfedhn import build_pfedhn
from fedmeta.algorithms.reptile import build_reptile

# Name (the runner's --algorithm value) -> builder.
BUILDERS = {
    'fed_avg': build_fed_avg,
    'fed_sgd': build_fed_sgd,
    'fed_prox': build_fed_prox,
    'fed_adam': build_fed_adam,
    'fed_yogi': build_fed_yogi,
    'fed_adagrad': build_fed_adagrad,
    'fed_avgm': build_fed_avgm,
    'fed_maml': build_fed_maml,
    'fo_maml': build_fo_maml,
    'meta_sgd': build_meta_sgd,
    'reptile': build_reptile,
    'per_fedavg_fo': build_per_fedavg_fo,
    'per_fedavg_hf': build_per_fedavg_hf,
    'fed_protonet': build_fed_protonet,
}
# Those that train on support/query-split client datasets.
META_LEARNING = ('fed_maml', 'fo_maml', 'meta_sgd', 'reptile',
                 'per_fedavg_fo', 'per_fedavg_hf', 'fed_protonet')
# Those that train and evaluate on episodes (--ways) only.
EPISODIC = ('fed_protonet',)
