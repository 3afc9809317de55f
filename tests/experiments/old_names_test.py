"""The old `experiments.*` names are the modules under fedmeta.experiments."""

import importlib
import os
import subprocess
import sys

from absl.testing import absltest

from fedmeta import experiments

OLD = os.path.join(experiments.REPO, 'experiments')
NEW = os.path.dirname(os.path.abspath(experiments.__file__))


def _modules(root):
  found = set()
  for dirpath, _, filenames in os.walk(root):
    for name in filenames:
      if name.endswith(('.py', '.sh')) and name != '__init__.py':
        found.add(os.path.relpath(os.path.join(dirpath, name), root))
  return found


class OldNamesTest(absltest.TestCase):

  def test_every_entry_point_keeps_its_old_name(self):
    entry_points = set()
    for path in _modules(NEW):
      with open(os.path.join(NEW, path)) as f:
        if path.endswith('.sh') or "__name__ == '__main__'" in f.read():
          entry_points.add(path)
    self.assertContainsSubset(entry_points, _modules(OLD))
    self.assertContainsSubset(_modules(OLD), _modules(NEW))

  def test_an_old_import_is_the_module_itself(self):
    for name in ('run', 'training_loop', 'reproduce.studies'):
      self.assertIs(importlib.import_module(f'experiments.{name}'),
                    importlib.import_module(f'fedmeta.experiments.{name}'))

  def test_an_old_command_runs_the_runner(self):
    result = subprocess.run(
        [sys.executable, '-m', 'experiments.run', '--rounds=0'],
        cwd=experiments.REPO, capture_output=True, text=True, timeout=300,
        check=False)
    self.assertEqual(result.returncode, 1, result.stderr)
    self.assertIn('flag --rounds=0: 0 is not a positive integer',
                  result.stderr)


if __name__ == '__main__':
  absltest.main()
