"""Imports fedmeta before TensorFlow so TF's C++ logs stay quiet in tests."""

import fedmeta  # noqa: F401  pylint: disable=unused-import
