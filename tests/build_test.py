"""BUILD stays true to the tree; the check itself catches what it promises."""

import ast
import glob
import importlib.metadata
import os
import re
import shutil
import sys
import tempfile
import tomllib

from absl.testing import absltest

from tests import build_consistency

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BuildTest(absltest.TestCase):

  def test_build_matches_tree(self):
    problems = build_consistency.check(REPO)
    self.assertEmpty(problems, '\n'.join(problems))

  def _copy(self) -> str:
    root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, root)
    for name in ('BUILD', *build_consistency.PACKAGES):
      source = os.path.join(REPO, name)
      if os.path.isdir(source):
        shutil.copytree(source, os.path.join(root, name),
                        ignore=shutil.ignore_patterns('__pycache__'))
      else:
        shutil.copy(source, root)
    return root

  def test_detects_module_without_target(self):
    root = self._copy()
    with open(os.path.join(root, 'fedmeta', 'orphan.py'), 'w') as f:
      f.write('"""Not in BUILD."""\n')
    self.assertIn('BUILD: no target lists fedmeta/orphan.py',
                  build_consistency.check(root))

  def test_detects_missing_file_and_missing_dep(self):
    root = self._copy()
    os.remove(os.path.join(root, 'fedmeta', 'models.py'))
    with open(os.path.join(root, 'fedmeta', 'runtime.py'), 'a') as f:
      f.write('\nfrom fedmeta.experiments import training_loop\n')
    problems = build_consistency.check(root)
    self.assertIn('BUILD: fedmeta/models lists missing file fedmeta/models.py',
                  problems)
    self.assertIn('BUILD: fedmeta/runtime imports '
                  'fedmeta/experiments/training_loop.py but does not depend '
                  'on :fedmeta/experiments/training_loop', problems)


def _third_party_imports(pattern: str) -> set[str]:
  """Top-level names imported by the files under REPO matching `pattern`."""
  names = set()
  for path in glob.glob(os.path.join(REPO, pattern), recursive=True):
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        names.update(alias.name.split('.')[0] for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        names.add(node.module.split('.')[0])
  return names - set(sys.stdlib_module_names) - {
      'fedmeta', 'experiments', 'tests'}


def _distribution(requirement: str) -> str:
  name = re.match(r'[A-Za-z0-9._-]+', requirement).group(0)
  return re.sub(r'[-_.]+', '-', name).lower()


class PackagingTest(absltest.TestCase):
  """pyproject.toml declares every distribution the code imports."""

  def setUp(self):
    super().setUp()
    with open(os.path.join(REPO, 'pyproject.toml'), 'rb') as f:
      self.project = tomllib.load(f)['project']
    self.providers = importlib.metadata.packages_distributions()

  def _undeclared(self, pattern: str, declared: list[str]) -> list[str]:
    declared = {_distribution(r) for r in declared}
    return sorted(
        f'{name} (from {"/".join(self.providers.get(name, ["?"]))})'
        for name in _third_party_imports(pattern)
        if not declared & {_distribution(d)
                           for d in self.providers.get(name, [name])})

  def test_library_and_runner_imports_are_dependencies(self):
    for pattern in ('fedmeta/**/*.py', 'experiments/**/*.py'):
      self.assertEmpty(
          self._undeclared(pattern, self.project['dependencies']), pattern)

  def test_test_imports_are_dependencies_or_the_test_extra(self):
    self.assertEmpty(self._undeclared(
        'tests/**/*.py', self.project['dependencies']
        + self.project['optional-dependencies']['test']))


if __name__ == '__main__':
  absltest.main()
