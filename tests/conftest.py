"""Imports fedmeta before TensorFlow so TF's C++ logs stay quiet in tests, and
gives the session a fresh data cache so every run decodes the real files."""

import os
import tempfile

import fedmeta  # noqa: F401  pylint: disable=unused-import

os.environ.setdefault('FEDMETA_CACHE_DIR',
                      tempfile.mkdtemp(prefix='fedmeta_test_cache_'))
