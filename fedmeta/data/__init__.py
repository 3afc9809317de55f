"""Federated datasets: tasks by name, partitioners, support/query splits.

`load(name, data_dir=..., **kwargs)` returns a `Task` (train and test
`tff.simulation.datasets.ClientData`, and the task's model); `TASKS` lists the
names with their clients and elements; `describe(task)` summarizes one.
"""

from fedmeta.data.episodes import EpisodeSampler
from fedmeta.data.files import default_data_dir
from fedmeta.data.registry import describe
from fedmeta.data.registry import is_task_name
from fedmeta.data.registry import load
from fedmeta.data.registry import task_info
from fedmeta.data.registry import TASKS
from fedmeta.data.registry import TFDS_PREFIX
from fedmeta.data.support_query import split_client_data
from fedmeta.data.support_query import with_training_support
from fedmeta.data.task import DataError
from fedmeta.data.task import Task

# Name -> loader, as before the registry carried more than loaders.
LOADERS = {name: info.load for name, info in TASKS.items()}
