"""Tasks by name (the runner's `--task` values), and `describe`."""

import collections
import functools
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf

from fedmeta.data import credit
from fedmeta.data import digits
from fedmeta.data import emnist
from fedmeta.data import femnist
from fedmeta.data import heart_disease
from fedmeta.data import home_activity
from fedmeta.data import omniglot
from fedmeta.data import shakespeare
from fedmeta.data import sinusoid
from fedmeta.data import synthetic
from fedmeta.data import task as task_lib
from fedmeta.data import thermostat
from fedmeta.data import wisdm


class TaskInfo(NamedTuple):
  """A registered task.

  Attributes:
    load: The loader; takes `data_dir` first when `uses_data_dir`.
    uses_data_dir: Whether it reads files.
    clients: Train / test clients with default arguments.
    elements: Element spec and model, in words.
    classes: Whether `y` is a class label, so K-shot splits apply.
  """
  load: Callable[..., task_lib.Task]
  uses_data_dir: bool
  clients: str
  elements: str
  classes: bool = True


TASKS = collections.OrderedDict(
    sinusoid=TaskInfo(
        sinusoid.load, False, '100,000 lazily generated sines / 1,000 held out',
        'x, y float32 [1]; 1-40-40-1 MLP, MSE', classes=False),
    synthetic=TaskInfo(
        synthetic.load, False, '30 devices / their 10% test samples',
        'x float32 [60], y int32 (10 classes); logistic regression'),
    omniglot=TaskInfo(
        omniglot.load, True, '240 five-character groups / 84 held out',
        'x float32 [28, 28, 1], y int32 (N-way); MAML 4-block conv net'),
    femnist=TaskInfo(
        femnist.load, True, '105 writers / 184 writers (79 unseen)',
        'x float32 [28, 28, 1], y int32 (62 classes); LEAF CNN'),
    shakespeare=TaskInfo(
        shakespeare.load, True, "848 (play, role) clients / their last 20% "
        "of text (source=tiny: tiny-shakespeare's 192 speakers)",
        'x int32 [80], y int32 (81 symbols); 2-layer LSTM'),
    heart_disease=TaskInfo(
        heart_disease.load, True, '4 hospitals / their 34% test rows',
        'x float32 [13], y float32 [1]; logistic regression'),
    credit=TaskInfo(
        credit.load, True, '4 education levels / their 20% test rows',
        'x float32 [23], y float32 [1]; 23-32-1 MLP, AUC'),
    digits=TaskInfo(
        digits.load, False, '20 Dirichlet(0.5) clients / their 20% test rows',
        'x float32 [64], y int32 (10 classes); 64-32-10 MLP'),
    emnist=TaskInfo(
        emnist.load, True, "3,383 writers / same writers (TFF's file)",
        'x float32 [28, 28, 1], y int32 (10 or 62 classes); LEAF CNN'),
    home_activity=TaskInfo(
        home_activity.load, True, '2 homes / their last 30% of days',
        'x float32 [17] (15 binary sensors, time of day), y int32 (10 '
        'activities); 17-64-10 MLP'),
    thermostat=TaskInfo(
        thermostat.load, True, "6 rooms / their last 25% of time",
        'x float32 [6] (time of week, room and outdoor temperature), y '
        'float32 [1] (setpoint, degC); 6-32-32-1 MLP, MSE, MAE',
        classes=False),
    wisdm=TaskInfo(
        wisdm.load, True, '27 phone users / 9 held-out users (or each '
        "user's 25%)", 'x float32 [43], y int32 (6 activities); 43-64-64-6 '
        'MLP'),
)


# `--task=tfds:<name>`: any TensorFlow Datasets classification or text set.
TFDS_PREFIX = 'tfds:'


def task_info(name: str) -> TaskInfo:
  """The registered task `name`, or TFDS dataset `tfds:<dataset>`.

  Raises:
    DataError: For an unknown name.
  """
  if name.startswith(TFDS_PREFIX):
    dataset = name[len(TFDS_PREFIX):]
    if not dataset:
      raise task_lib.DataError(
          f'task: {name!r} names no dataset; e.g. {TFDS_PREFIX}mnist')
    # Imported here: tensorflow_datasets costs seconds to import, and only
    # tfds tasks need it.
    # pylint: disable-next=g-import-not-at-top
    from fedmeta.data import tfds as tfds_task
    return TaskInfo(
        functools.partial(tfds_task.load, dataset), True,
        'by a client feature, or a partitioner (iid, dirichlet, shards)',
        "from the dataset's features; a CNN for images, a character conv "
        "net for labelled text, LEAF's LSTM for next-character text")
  if name not in TASKS:
    raise task_lib.DataError(
        f'task: unknown {name!r}; one of {", ".join(TASKS)} or '
        f'{TFDS_PREFIX}<dataset>')
  return TASKS[name]


def is_task_name(name: str) -> bool:
  """Whether `name` is a registered task or `tfds:<dataset>`."""
  return name in TASKS or (name.startswith(TFDS_PREFIX)
                           and len(name) > len(TFDS_PREFIX))


def load(name: str, *, data_dir: str | None = None,
         **kwargs) -> task_lib.Task:
  """Loads a task by name; keyword arguments go to its loader."""
  info = task_info(name)
  if info.uses_data_dir:
    return info.load(data_dir=data_dir, **kwargs)
  return info.load(**kwargs)


def _labels(dataset: tf.data.Dataset) -> np.ndarray:
  ys = list(dataset.map(lambda e: e['y']).batch(4096).as_numpy_iterator())
  return np.concatenate(ys).reshape(-1) if ys else np.zeros([0])


def _label_skew(labels: list[np.ndarray]) -> tuple[int, float] | None:
  """(number of labels, mean TV distance to the pooled histogram), or None
  for real-valued targets."""
  pooled = np.concatenate(labels)
  if not np.all(pooled == np.round(pooled)) or len(np.unique(pooled)) > 1000:
    return None
  classes = np.unique(pooled)

  def histogram(y):
    counts = np.bincount(np.searchsorted(classes, y), minlength=len(classes))
    return counts / max(len(y), 1)

  reference = histogram(pooled)
  return len(classes), float(np.mean(
      [0.5 * np.abs(histogram(y) - reference).sum() for y in labels if len(y)]))


def describe(task: task_lib.Task, *, max_clients: int = 1000,
             seed: int = 0) -> str:
  """Clients, examples per client (min / median / max) and label skew.

  Label skew is the mean total-variation distance between each client's
  label histogram and the pooled one (0 = IID, 1 = disjoint labels); it is
  not reported for real-valued targets. Populations larger than
  `max_clients` are described from a seeded sample of that many clients.
  """
  lines = [f'task {task.name}']
  for split, client_data in (('train', task.train), ('test', task.test)):
    ids = client_data.client_ids
    sampled = ids
    if len(ids) > max_clients:
      picks = np.random.default_rng(seed).choice(len(ids), max_clients,
                                                 replace=False)
      sampled = [ids[i] for i in np.sort(picks)]
    labels = [_labels(client_data.create_tf_dataset_for_client(c))
              for c in sampled]
    counts = np.asarray([len(y) for y in labels])
    line = (f'  {split}: {len(ids)} clients'
            + (f' ({len(sampled)} sampled)' if len(sampled) < len(ids) else '')
            + f', {counts.sum()} examples, per client min {counts.min()} / '
            f'median {np.median(counts):g} / max {counts.max()}')
    skew = _label_skew(labels) if task_info(task.name).classes else None
    if skew is not None:
      line += f', {skew[0]} labels, label skew {skew[1]:.3f}'
    lines.append(line)
  spec = ', '.join(f'{k} {v.dtype.name} {v.shape.as_list()}'
                   for k, v in task.train.element_type_structure.items())
  lines.append(f'  elements: {spec}')
  return '\n'.join(lines)
