"""BUILD stays true to the tree; the check itself catches what it promises."""

import os
import shutil
import tempfile

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
      f.write('\nfrom experiments import training_loop\n')
    problems = build_consistency.check(root)
    self.assertIn('BUILD: fedmeta/models lists missing file fedmeta/models.py',
                  problems)
    self.assertIn('BUILD: fedmeta/runtime imports '
                  'experiments/training_loop.py but does not depend on '
                  ':experiments/training_loop', problems)


if __name__ == '__main__':
  absltest.main()
