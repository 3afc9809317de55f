"""fedmeta's federated algorithms, each a `build_<name>(model_fn, *, ...)`.

Every builder in `BUILDERS` but `build_pfedhn` returns a
`tff.learning.templates.LearningProcess` composed from broadcast, a client
work process, a TFF aggregation factory and a server optimizer (see
`fedmeta.algorithms.client_work`). `build_pfedhn`'s process sends each
client its own weights (`tff.federated_select`) and takes client keys
beside the datasets (`specs.AlgorithmSpec.per_client_models`).

`ALGORITHMS` maps each runner name to its `specs.AlgorithmSpec`, declared
beside the builder (its module's `SPECS`); a new algorithm is its module and
one line there.
"""

from fedmeta.algorithms import fed_avg
from fedmeta.algorithms import fed_maml
from fedmeta.algorithms import fed_opt
from fedmeta.algorithms import fed_protonet
from fedmeta.algorithms import fed_prox
from fedmeta.algorithms import fed_sgd
from fedmeta.algorithms import meta_sgd
from fedmeta.algorithms import per_fedavg
from fedmeta.algorithms import pfedhn
from fedmeta.algorithms import reptile
from fedmeta.algorithms import specs
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

# Runner name (--algorithm) -> spec: a line for each algorithm module.
ALGORITHMS = {
    **fed_avg.SPECS,
    **fed_sgd.SPECS,
    **fed_prox.SPECS,
    **fed_opt.SPECS,
    **fed_maml.SPECS,
    **meta_sgd.SPECS,
    **reptile.SPECS,
    **per_fedavg.SPECS,
    **fed_protonet.SPECS,
    **pfedhn.SPECS,
}
# Runner name -> builder.
BUILDERS = {name: spec.builder for name, spec in ALGORITHMS.items()}
# Those that train on tasks: support/query-split datasets or episodes.
META_LEARNING = tuple(name for name, spec in ALGORITHMS.items()
                      if spec.meta_learning)
# Those that train and evaluate on episodes (--ways) only.
EPISODIC = tuple(name for name, spec in ALGORITHMS.items()
                 if spec.data is specs.Data.EPISODIC)
