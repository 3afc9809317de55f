"""The runner's old home, kept so that existing commands and imports work.

The modules are `fedmeta.experiments.*` (installed with fedmeta);
`python -m experiments.run` from the repository runs
`fedmeta.experiments.run`, and `from experiments import run` gives that
module itself, so flags are defined once. The flag files stay in
`experiments/configs/`.
"""

import importlib
import runpy
import sys


def forward(name: str, main: bool) -> None:
  """Makes module `name` (experiments.<x>) fedmeta.experiments.<x>: runs it
  as the program if `main`, else puts the module itself under `name`."""
  target = f'fedmeta.{name}'
  if main:
    runpy.run_module(target, run_name='__main__', alter_sys=True)
  else:
    sys.modules[name] = importlib.import_module(target)
