"""Federated datasets: tasks by name, partitioners, client data helpers."""

from fedmeta.data import digits
from fedmeta.data.task import DataError
from fedmeta.data.task import Task

# Name (the runner's --task value) -> loader taking keyword arguments.
LOADERS = {
    'digits': digits.load,
}
