"""Quiets TF's C++ logs before TensorFlow is imported and guards TFF's worker,
as every entry point does; gives the session a fresh data cache so every run
decodes the real files; skips the tests that need the real files where there
are none."""

import os
import tempfile

from fedmeta import runtime
runtime.set_up_entry_point()  # Before TensorFlow's first import.
# pylint: disable=g-import-not-at-top,wrong-import-position
from fedmeta.data import files
import pytest

os.environ.setdefault('FEDMETA_CACHE_DIR',
                      tempfile.mkdtemp(prefix='fedmeta_test_cache_'))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  """A test whose loader finds no data dir is skipped, with the reason."""
  outcome = yield
  report = outcome.get_result()
  if call.excinfo is not None and call.excinfo.errisinstance(files.NoDataDir):
    path, line, _ = item.location
    report.outcome = 'skipped'
    report.longrepr = (path, line + 1, 'Skipped: needs the real datasets '
                       f'({call.excinfo.value})')
