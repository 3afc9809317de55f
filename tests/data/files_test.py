"""Where the data dir comes from: the argument, $FEDMETA_DATA_DIR, then
../shared/data discovery."""

import os
import tempfile
from unittest import mock

from absl.testing import absltest

from fedmeta.data import DataError
from fedmeta.data import files


class FilesTest(absltest.TestCase):

  def test_argument_then_environment_then_discovery(self):
    root = tempfile.mkdtemp()
    repo, shared = (os.path.join(root, 'repo'),
                    os.path.join(root, 'shared', 'data'))
    given, env = tempfile.mkdtemp(), tempfile.mkdtemp()
    for folder in (repo, shared, os.path.join(env, 'omniglot')):
      os.makedirs(folder)
    with mock.patch.object(files, '_REPO_ROOT', repo):
      with mock.patch.dict(os.environ, {files.DATA_DIR_ENV: env}):
        self.assertEqual(files.default_data_dir(), env)
        self.assertEqual(files.resolve(None, 'omniglot'),
                         os.path.join(env, 'omniglot'))
        self.assertEqual(files.resolve(given, 'omniglot'), given)
      with mock.patch.dict(os.environ, {files.DATA_DIR_ENV: ''}):
        self.assertEqual(files.default_data_dir(), shared)

  def test_no_data_dir(self):
    nowhere = tempfile.mkdtemp()
    with mock.patch.dict(os.environ, {files.DATA_DIR_ENV: ''}), \
        mock.patch.object(files, '_REPO_ROOT', nowhere), \
        mock.patch.object(os, 'getcwd', lambda: nowhere):
      self.assertIsNone(files.default_data_dir())
      with self.assertRaisesRegex(files.NoDataDir,
                                  '^data_dir: none given and ../shared/data '
                                  'not found'):
        files.resolve(None, 'omniglot')
    with self.assertRaisesRegex(DataError, 'does not exist'):
      files.resolve(os.path.join(nowhere, 'missing'), 'omniglot')


if __name__ == '__main__':
  absltest.main()
