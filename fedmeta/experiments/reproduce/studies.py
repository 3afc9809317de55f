"""The published results fedmeta reproduces, each a set of runner runs.

A run is a committed flag file under experiments/configs/ plus flags added
after it (absl: the later value wins). `short` flags are added too unless the
full version is asked for: fewer rounds and fewer held-out clients evaluated,
so that a study runs in minutes to hours on 2 cores, not days. A run gives one
table row per (label, metrics.csv column) it reports; `paper` is what the
paper reports for that row, in the paper's own terms.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Row:
  label: str
  column: str
  paper: str = ''


@dataclasses.dataclass(frozen=True)
class Run:
  name: str
  config: str
  flags: tuple[str, ...] = ()
  rows: tuple[Row, ...] = ()
  # A name of `reproduce.EVALUATIONS`: more metrics of the final model, for
  # rows whose column metrics.csv lacks.
  evaluation: Optional[str] = None
  # Added after the study's `short` flags in the short version.
  short: tuple[str, ...] = ()
  # The program run with the runner's flags: the runner, or a baseline that
  # takes its flags and writes its outputs.
  module: str = 'fedmeta.experiments.run'


@dataclasses.dataclass(frozen=True)
class Study:
  title: str
  paper: str
  runs: tuple[Run, ...]
  short: tuple[str, ...]
  # For the communication column: the first evaluated round whose value of
  # the row's column reaches it (below it where `lower_is_better`).
  target: Optional[float] = None
  lower_is_better: bool = False
  # Time-to-accuracy: for each, the tasks seen (rounds x clients) and the
  # training seconds (the rounds' own, evaluation excluded) until the first
  # evaluation that reaches it.
  time_targets: tuple[float, ...] = ()


def _after(metric):
  return f'eval/after/{metric}/mean'


def _before(metric):
  return f'eval/before/{metric}/mean'


ACC = 'sparse_categorical_accuracy'
# pFedHN's: a training client's own generated model, a new client's from
# the embedding it learned (fedmeta.experiments.builders).
_PARTICIPATING_ACC = f'eval/participating/{ACC}/mean'
_NEW_CLIENT_ACC = f'eval/new_client/{ACC}/mean'


def _fedmeta_runs(task: str, inner_flags: tuple[str, ...],
                  flags: tuple[str, ...] = ()) -> tuple[Run, ...]:
  """FedMeta's comparison: FedAvg, FedAvg(Meta), FedMeta (MAML, Meta-SGD);
  `inner_flags` give FedAvg(Meta)'s fine-tuning the meta-learners' steps,
  `flags` go to every run."""
  return (
      Run('fed_avg', f'{task}_fed_avg',
          ('--personalization_eval', '--support_fraction=0.2', *inner_flags,
           *flags),
          rows=(Row('FedAvg', _before(ACC), 'baseline'),
                Row('FedAvg(Meta): FedAvg + fine-tune', _after(ACC),
                    'about FedAvg'))),
      Run('fed_maml', f'{task}_fed_maml', flags, rows=(
          Row('FedMeta (MAML)', _after(ACC), 'above FedAvg'),)),
      Run('meta_sgd', f'{task}_meta_sgd', flags, rows=(
          Row('FedMeta (Meta-SGD)', _after(ACC),
              'above FedAvg (its best: +3.23% to +14.84%)'),)),
  )
_OMNIGLOT_PAPER = {  # 5-way accuracy, 1-shot / 5-shot, as published.
    'fed_maml': ('98.7 +- 0.4% (MAML, Finn et al. 2017)',
                 '99.9 +- 0.1% (MAML)'),
    'fo_maml': ('98.3 +- 0.5% (first-order MAML, Finn et al. 2017)',
                '99.2 +- 0.2%'),
    'reptile': ('97.68 +- 0.04% (Reptile, transductive, Nichol et al. 2018)',
                '99.48 +- 0.06%'),
    'meta_sgd': ('99.53 +- 0.26% (Meta-SGD, Li et al. 2017)',
                 '99.93 +- 0.09%'),
}
_FEDMETA_CLAIM = ('FedMeta (Chen et al. 2018): FedMeta +3.23% to +14.84% '
                  'accuracy over FedAvg across its datasets, 2.82-4.33x less '
                  'communication to a target accuracy')

def _percentile_rows(label: str, column: str, paper: str) -> tuple[Row, ...]:
  """The mean over clients, then its 10th, 50th and 90th percentiles."""
  return (Row(label, column, paper),) + tuple(
      Row(f'{label}, p{q}', column.replace('/mean', f'/p{q}'))
      for q in (10, 50, 90))


def _federated_fine_tuned_local(config: str, clients: tuple[str, ...],
                                metric: str,
                                local_flags: tuple[str, ...]) -> tuple:
  """Per client and on average: the federated model, fine-tuned on the
  client's own training data (the config's steps, then as many as the local
  model's), and a local model fit from the initial weights by
  `local_flags`' steps."""

  def rows(label, stage, column):
    return tuple(Row(f'{c}: {label}', f'clients/{c}/{stage}/{metric}')
                 for c in clients) + (Row(f'mean: {label}', column),)

  return (
      Run('fed_avg', config, rows=rows('federated', 'before', _before(metric))
          + rows('federated + fine-tune', 'after', _after(metric))),
      Run('fed_avg_long_fine_tune', config, local_flags,
          rows=rows('federated + fine-tune as long as local', 'after',
                    _after(metric))),
      Run('local', config, ('--rounds=1', *local_flags),
          rows=rows('local', 'after', _after(metric)),
          module='fedmeta.experiments.reproduce.local_baseline'),
  )


_MAE = 'mean_absolute_error'
_ROOMS = ('Bathroom', 'Kitchen', 'Room1', 'Room2', 'Room3', 'Toilet')
_HAR_CONTEXT = ('context only, UCI HAR (30 subjects, another dataset): a '
                'global model 94-95%, local models 98.3%, federated '
                'multi-task 99%')

STUDIES = {
    'maml_sinusoid': Study(
        title='MAML sinusoid regression, K = 10 (Finn et al. 2017, sec. 5.1)',
        paper='https://arxiv.org/abs/1703.03400 Fig. 3 (curves, no table): '
              'MAML adapts with lower MSE than a model pretrained on all '
              'tasks, after 1 step and after 10',
        runs=tuple(
            Run(name + suffix, config, flags, rows=(
                Row(f'{label}, {steps}', _after('loss'), paper),))
            for name, config, label, paper in (
                ('fed_maml', 'maml_sinusoid', 'fed MAML',
                 'MAML < pretrained (Fig. 3)'),
                ('fed_avg', 'maml_sinusoid_fed_avg', 'FedAvg+fine-tune',
                 'pretrained, fine-tuned (Fig. 3)'))
            for suffix, flags, steps in (
                ('', (), '1 step'),
                ('_10_steps', ('--eval_inner_steps=10',), '10 steps'))),
        # At the paper's Adam(0.001), 300 rounds leave every model near the
        # 3.0 MSE of a flat line; 0.01 makes the short version tell apart.
        short=('--rounds=300', '--clients_per_round=10',
               '--server_learning_rate=0.01', '--eval_every=100',
               '--checkpoint_every=100', '--eval_clients=100'),
        target=2.0, lower_is_better=True),
    'omniglot': Study(
        title='Omniglot with MAML\'s protocol, federated: fresh N-way '
              'episodes from random 20-character pools (1,200 / 423 '
              'shuffled characters, rotations as classes), conv4 with batch '
              'statistics, 600 held-out episodes (mean +- 95% CI)',
        paper='MAML https://arxiv.org/abs/1703.03400 Table 1; Reptile '
              'https://arxiv.org/abs/1803.02999 Table 1; Meta-SGD '
              'https://arxiv.org/abs/1707.09835 Table 1',
        runs=(
            Run('5way_1shot_fed_maml', 'omniglot_episodes_5way_1shot_fed_maml',
                rows=(Row('fed MAML, 5-way 1-shot', _after(ACC),
                          _OMNIGLOT_PAPER['fed_maml'][0]),),
                short=('--rounds=2000',)),
            Run('5way_1shot_centralized',
                'omniglot_episodes_5way_1shot_fed_maml',
                rows=(Row('centralized MAML (same episodes), 5-way 1-shot',
                          _after(ACC), _OMNIGLOT_PAPER['fed_maml'][0]),),
                module='fedmeta.experiments.reproduce.centralized_maml'),
        ) + tuple(
            # MAML's split in set order (meta-test characters partly from
            # unseen alphabets), IID pools beside non-IID alphabet pools.
            Run(f'5way_1shot_fed_maml_{name}',
                'omniglot_episodes_5way_1shot_fed_maml',
                ('--task_option=split=maml', *options),
                rows=(Row(f'fed MAML, 5-way 1-shot, split in set order, '
                          f'{label}', _after(ACC),
                          _OMNIGLOT_PAPER['fed_maml'][0]),),
                short=('--rounds=2000',))
            for name, options, label in (
                ('set_order', (), 'random pools (IID)'),
                ('alphabets', ('--task_option=pool_by=alphabet',),
                 'alphabet pools (non-IID)'))
        ) + tuple(
            Run(f'5way_{shots}shot_{algorithm}',
                f'omniglot_episodes_5way_{shots}shot_{algorithm}', rows=(
                    Row(f'{algorithm}, 5-way {shots}-shot', _after(ACC),
                        _OMNIGLOT_PAPER[algorithm][shots == 5]),))
            for shots, algorithm in ((1, 'fo_maml'), (1, 'meta_sgd'),
                                     (1, 'reptile'), (5, 'fed_maml'))
        ) + tuple(
            # Nichol et al.'s settings (10 training shots, minibatches of
            # 10, the outer step annealed), with their inner Adam (its state
            # fresh on each task) or with SGD.
            Run(f'5way_1shot_reptile_{name}',
                'omniglot_episodes_5way_1shot_reptile_adam', flags,
                rows=(Row(f'reptile, 5-way 1-shot, {label}', _after(ACC),
                          _OMNIGLOT_PAPER['reptile'][0]),),
                short=('--rounds=5000', '--eval_every=500',
                       '--checkpoint_every=250'))
            for name, flags, label in (
                ('adam', (), "Nichol et al.'s settings, inner Adam"),
                ('sgd_minibatches',
                 ('--inner_optimizer=sgd', '--inner_learning_rate=0.1'),
                 "Nichol et al.'s settings, inner SGD at 0.1"))
        ) + (
            Run('20way_1shot_fed_maml',
                'omniglot_episodes_20way_1shot_fed_maml',
                rows=(Row('fed MAML, 20-way 1-shot, held-out characters',
                          _after(ACC), '95.8 +- 0.3% (MAML)'),
                      Row('fed MAML, 20-way 1-shot, official all_runs',
                          'all_runs/accuracy',
                          '95.8 +- 0.3% (MAML, on its own split)')),
                evaluation='omniglot_all_runs'),),
        short=('--rounds=1000', '--eval_every=100', '--checkpoint_every=50'),
        time_targets=(0.9, 0.95)),
    'omniglot_protonet': Study(
        title='Omniglot, federated Prototypical Networks: fresh 60-way '
              'training episodes (5 query drawings a class) from random '
              '20-character pools, rotations as classes, MAML\'s conv4 '
              'embedding with batch statistics, Adam(0.001) on 4 clients a '
              'round; 600 held-out episodes classified by their prototypes '
              '(mean +- 95% CI)',
        paper='Snell et al. 2017 https://arxiv.org/abs/1703.05175 Table 1; '
              'all_runs: Lake et al. 2015 (Science) error rates',
        runs=tuple(
            Run(f'{ways}way_{shots}shot_fed_protonet',
                f'omniglot_episodes_{ways}way_{shots}shot_fed_protonet',
                rows=(Row(f'fed ProtoNet, {ways}-way {shots}-shot',
                          _after(ACC), f'{paper} (ProtoNets)'),))
            for ways, shots, paper in ((5, 1, '98.8%'), (5, 5, '99.7%'),
                                       (20, 5, '98.9%'))
        ) + (
            Run('20way_1shot_fed_protonet',
                'omniglot_episodes_20way_1shot_fed_protonet',
                rows=(Row('fed ProtoNet, 20-way 1-shot, held-out characters',
                          _after(ACC), '96.0% (ProtoNets)'),
                      Row('fed ProtoNet, 20-way 1-shot, official all_runs',
                          'all_runs/accuracy',
                          'error 4.5% people, 3.3% BPL, 8% Siamese net '
                          '(Lake et al. 2015)')),
                evaluation='omniglot_all_runs'),
            # Snell et al.'s max-pooled embedding (3.7x the multiply-adds).
            Run('20way_1shot_fed_protonet_max_pool',
                'omniglot_episodes_20way_1shot_fed_protonet',
                ('--task_option=downsample=max_pool',),
                rows=(Row('fed ProtoNet, 20-way 1-shot, max-pooled '
                          'embedding', _after(ACC), '96.0% (ProtoNets)'),
                      Row('fed ProtoNet, 20-way 1-shot, max-pooled '
                          'embedding, official all_runs', 'all_runs/accuracy',
                          'error 4.5% people, 3.3% BPL, 8% Siamese net '
                          '(Lake et al. 2015)')),
                evaluation='omniglot_all_runs',
                short=('--rounds=2000', '--eval_every=250'))),
        short=('--rounds=3000', '--checkpoint_every=50'),
        time_targets=(0.95, 0.98)),
    'fedprox_synthetic': Study(
        title='FedProx synthetic data: FedAvg vs FedProx (mu = 1), lr 0.01, '
              '10 clients a round, batch 10, 20 local epochs',
        paper='https://arxiv.org/abs/1812.06127 Fig. 2 (curves): FedProx '
              'with mu = 1 trains more stably than FedAvg, the more so the '
              'more heterogeneous the data (IID: the same)',
        runs=tuple(
            Run(f'{data}_{algorithm}', f'fedprox_synthetic_{data}_{algorithm}',
                rows=(Row(f'{data} {name}, test accuracy', f'eval/{ACC}'),
                      Row(f'{data} {name}, train loss', 'train/loss')))
            for data in ('iid', '0_0', '0.5_0.5', '1_1')
            for algorithm, name in (('fed_avg', 'FedAvg'),
                                    ('fed_prox', 'FedProx'))),
        short=('--rounds=20', '--client_epochs=2', '--eval_every=5',
               '--checkpoint_every=10')),
    'femnist': Study(
        title='FEMNIST by writer (LEAF subset), FedMeta protocol: support '
              '0.2 / query 0.8, 4 clients a round, batch 10, Adam, inner / '
              'outer lr 1e-3 / 1e-4, 5 inner steps, held-out writers',
        paper='https://arxiv.org/abs/1802.07876 Table 2 and Fig. 3; '
              + _FEDMETA_CLAIM,
        runs=_fedmeta_runs('femnist', ('--inner_steps=5',
                                        '--inner_learning_rate=0.001')),
        short=('--rounds=50', '--eval_every=25', '--checkpoint_every=25',
               '--eval_clients=50'),
        target=0.5),
    'femnist_lenet': Study(
        title='FEMNIST by writer, FedMeta protocol as `femnist` (support 0.2 '
              '/ query 0.8, 4 clients a round, batch 10, Adam, inner / outer '
              'lr 1e-3 / 1e-4, 5 inner steps) at its 2,000 rounds, on '
              "pFedHN's LeNet (90,242 weights) instead of LEAF's CNN; 50 "
              'held-out writers',
        paper='https://arxiv.org/abs/1802.07876 Table 2 and Fig. 3; '
              + _FEDMETA_CLAIM,
        runs=_fedmeta_runs('femnist', ('--inner_steps=5',
                                        '--inner_learning_rate=0.001'),
                           ('--task_option=model=lenet',)),
        short=('--rounds=2000', '--eval_every=250', '--checkpoint_every=100',
               '--eval_clients=50'),
        target=0.5),
    'heart_disease': Study(
        title='Fed-Heart-Disease (4 hospitals): FedAvg and FedProx vs each '
              'hospital alone vs pooled; accuracy on all hospitals\' test sets',
        paper='FLamby (du Terrail et al. 2022, https://arxiv.org/abs/'
              '2210.04620) Fig. 3: federated strategies close to pooled '
              'training; local models of small hospitals well below',
        runs=(
            Run('fed_avg', 'heart_disease_fed_avg', rows=(
                Row('FedAvg', 'eval/binary_accuracy', 'close to pooled'),)),
            Run('fed_prox', 'heart_disease_fed_prox', rows=(
                Row('FedProx', 'eval/binary_accuracy', 'close to pooled'),)),
            Run('pooled', 'heart_disease_fed_avg',
                ('--task_option=train_on=pooled', '--clients_per_round=1'),
                rows=(Row('pooled', 'eval/binary_accuracy', 'upper bound'),)),
        ) + tuple(
            Run(f'local_{hospital}', 'heart_disease_fed_avg',
                (f'--task_option=train_on={hospital}',
                 '--clients_per_round=1'),
                rows=(Row(f'{hospital} alone', 'eval/binary_accuracy',
                          'local baseline, below federated'),))
            for hospital in ('cleveland', 'hungarian', 'switzerland', 'va')),
        short=()),
    'wisdm': Study(
        title='WISDM v1.1 activity recognition, held-out users: 27 users '
              'train, 9 held out adapt from K = 5 windows per activity and '
              'are scored on their other windows (mean and percentiles over '
              'the 9 users); every adaptation is 20 full-batch SGD steps at '
              '0.05, local models 300',
        paper='Kwapisz et al. 2010 (dataset); ' + _HAR_CONTEXT,
        runs=(
            Run('fed_avg', 'wisdm_fed_avg', rows=(
                _percentile_rows('FedAvg (global model)', _before(ACC),
                                 'global model 94-95% (UCI HAR)')
                + _percentile_rows('FedAvg + fine-tune', _after(ACC),
                                   'between global and local'))),
            Run('fed_maml', 'wisdm_fed_maml', rows=_percentile_rows(
                'fed MAML', _after(ACC), 'above FedAvg + fine-tune')),
            Run('reptile', 'wisdm_reptile', rows=_percentile_rows(
                'Reptile', _after(ACC), 'above FedAvg + fine-tune')),
            Run('pfedhn', 'wisdm_pfedhn', rows=_percentile_rows(
                'pFedHN (an embedding learned on K = 5 per activity)',
                _NEW_CLIENT_ACC, 'pFedHN above FedAvg + fine-tune '
                '(Shamsian et al. 2021)')),
            Run('local', 'wisdm_fed_avg',
                ('--rounds=1', '--eval_inner_steps=300'),
                rows=_percentile_rows('local model (K = 5 per activity)',
                                      _after(ACC), 'local models 98.3% (UCI '
                                      'HAR, 70% of each subject)'),
                short=('--rounds=1',),
                module='fedmeta.experiments.reproduce.local_baseline'),
        ) + tuple(
            # The federated HAR papers' protocol: every user trains on 75%
            # of its windows and is scored on the rest; personalized models
            # adapt on the user's own 75% (--eval_support=train), pFedHN's
            # are each user's own.
            Run(f'within_user_{name}', config,
                ('--task_option=protocol=within_user', *flags),
                rows=rows, short=short, module=module)
            for name, config, flags, short, module, rows in (
                ('fed_avg', 'wisdm_fed_avg',
                 ('--eval_support=train', '--inner_steps=100'), (),
                 'fedmeta.experiments.run',
                 _percentile_rows('within users: FedAvg (global model)',
                                  _before(ACC), 'global model 94-95% (UCI '
                                  'HAR)')
                 + _percentile_rows('within users: FedAvg + fine-tune',
                                    _after(ACC), '')),
                ('pfedhn', 'wisdm_pfedhn', (), (), 'fedmeta.experiments.run',
                 _percentile_rows('within users: pFedHN', _PARTICIPATING_ACC,
                                  'above FedAvg + fine-tune (Shamsian et '
                                  'al. 2021)')),
                ('local', 'wisdm_fed_avg',
                 ('--eval_support=train', '--rounds=1',
                  '--eval_inner_steps=1000', '--inner_learning_rate=0.5'),
                 ('--rounds=1',),
                 'fedmeta.experiments.reproduce.local_baseline',
                 _percentile_rows('within users: local model', _after(ACC),
                                  'local models 98.3% (UCI HAR)')))),
        short=(),
        target=0.85),
    'femnist_pfedhn': Study(
        title='FEMNIST writers (LEAF subset), pFedHN against FedAvg, FedAvg '
              '+ fine-tune and local models on pFedHN\'s target network '
              '(LeNet-style, 90,242 weights): 105 training writers, 10 a '
              'round, 2 local epochs of batch 20 at SGD 0.05, 300 rounds; '
              'each training writer scored on its own test data (mean and '
              'percentiles over the 105), each of the 79 unseen writers '
              'adapting on half of its data and scored on the other half',
        paper='Shamsian et al. 2021 https://arxiv.org/abs/2103.04628 Tables '
              '1-2 (CIFAR and Omniglot; no FEMNIST figure): pFedHN above '
              'FedAvg + fine-tune and local models; Table 4: new clients '
              'close to the training clients',
        runs=(
            Run('pfedhn', 'femnist_pfedhn', rows=_percentile_rows(
                'training writers: pFedHN (own generated model)',
                _PARTICIPATING_ACC, 'above FedAvg + fine-tune')
                + _percentile_rows(
                    'unseen writers: pFedHN (an embedding learned on half)',
                    _NEW_CLIENT_ACC, 'close to the training writers\'')),
        ) + tuple(
            # The same FedAvg training, scored on either set of writers; the
            # local models fit each writer's support set alone.
            Run(f'{name}_{writers}', 'femnist_lenet_fed_avg',
                (f'--task_option=test_writers={writers}', support, *flags),
                rows=rows, module=module)
            for writers, label, support in (
                ('seen', 'training writers', '--eval_support=train'),
                ('unseen', 'unseen writers', '--support_fraction=0.5'))
            for name, flags, module, rows in (
                ('fed_avg', (), 'fedmeta.experiments.run',
                 _percentile_rows(f'{label}: FedAvg (global model)',
                                  _before(ACC), 'below pFedHN')
                 + _percentile_rows(f'{label}: FedAvg + fine-tune',
                                    _after(ACC), 'below pFedHN')),
                ('local', ('--rounds=1', '--eval_inner_steps=300'),
                 'fedmeta.experiments.reproduce.local_baseline',
                 _percentile_rows(f'{label}: local model', _after(ACC),
                                  'below pFedHN')))),
        short=()),
    'thermostat': Study(
        title='Open Smart Home thermostat, one client per room, the last '
              "25% of each room's time held out: per-room setpoint MAE "
              '(degC) of the federated model, the federated model '
              "fine-tuned on the room's own training period, and a local "
              'model trained on that period alone (full-batch gradient '
              'descent from the same initialization)',
        paper='Schneider et al. 2018 (dataset; no model figure): read '
              "against fedmeta.data.thermostat.baseline_mae's per-room "
              'training-mean and hour-of-week baselines',
        runs=_federated_fine_tuned_local(
            'thermostat_fed_avg', _ROOMS, _MAE,
            ('--eval_inner_steps=2000', '--inner_learning_rate=0.02')),
        short=(), lower_is_better=True),
    'home_activity': Study(
        title="Ordonez et al.'s two homes, 60 s slices, last 30% of each "
              "home's days held out: per-home accuracy of the federated "
              'model, the federated model fine-tuned on the home\'s own '
              'training days, and a local model trained on those days alone '
              '(full-batch gradient descent from the same initialization)',
        paper='Ordonez et al. 2013, Sensors 13(5) (dataset; per-home '
              'models, no federated figure)',
        runs=_federated_fine_tuned_local(
            'home_activity_fed_avg', ('home_A', 'home_B'), ACC,
            ('--eval_inner_steps=1000', '--inner_learning_rate=0.5')),
        short=()),
    'shakespeare': Study(
        title='Shakespeare by role, FedMeta protocol: roles 0.8 / 0.2 train '
              '/ held-out, support 0.2 / query 0.8, 4 clients a round, batch '
              '10, Adam, inner / outer lr 0.1 / 0.01, 1 inner step',
        paper='https://arxiv.org/abs/1802.07876 Table 2; ' + _FEDMETA_CLAIM,
        runs=_fedmeta_runs('shakespeare', ('--inner_learning_rate=0.1',)),
        # LEAF's stride-1 windows make a round of 4 roles take minutes on 2
        # cores; non-overlapping ones (TFF's tutorial) ~80x fewer examples.
        short=('--task_option=stride=81', '--rounds=50', '--eval_every=10',
               '--checkpoint_every=10'),
        target=0.2),
}
