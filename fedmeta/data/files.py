"""Data files: where they are, checked opening, and a cache of decoded arrays.

Nothing here downloads. Decoded arrays (Omniglot images, Shakespeare roles)
are cached as `.npz` under a cache dir, keyed by the SHA-256 of the source
files and the decoding parameters, so a changed file is never read stale.
"""

import hashlib
import json
import os
import tempfile
import zipfile
from typing import Callable, Mapping, Optional, Sequence

from absl import logging
import numpy as np

from fedmeta.data import task as task_lib

DATA_DIR_ENV = 'FEDMETA_DATA_DIR'
CACHE_DIR_ENV = 'FEDMETA_CACHE_DIR'
# Bump when a decoder changes what it writes, so old cache files are ignored.
CACHE_FORMAT = 1

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class NoDataDir(task_lib.DataError):
  """No data dir was given, and none is set or found."""


def default_data_dir() -> Optional[str]:
  """$FEDMETA_DATA_DIR, else `../shared/data` beside the checkout or the
  CWD, else None."""
  if os.environ.get(DATA_DIR_ENV):
    return os.environ[DATA_DIR_ENV]
  for root in (_REPO_ROOT, os.getcwd()):
    candidate = os.path.normpath(os.path.join(root, '..', 'shared', 'data'))
    if os.path.isdir(candidate):
      return candidate
  return None


def resolve(data_dir: Optional[str], subdir: str) -> str:
  """`data_dir/subdir` if it exists, else `data_dir` itself.

  Raises:
    NoDataDir: if no data dir is given or found.
    DataError: if it does not exist.
  """
  data_dir = data_dir or default_data_dir()
  if not data_dir:
    raise NoDataDir(
        f'data_dir: none given and ../shared/data not found; pass one or set '
        f'${DATA_DIR_ENV}')
  if not os.path.isdir(data_dir):
    raise task_lib.DataError(f'data_dir: {data_dir} does not exist')
  nested = os.path.join(data_dir, subdir)
  return nested if os.path.isdir(nested) else data_dir


def require(path: str, what: str) -> str:
  """Returns `path`, or raises `DataError` naming it if it is not a file."""
  if not os.path.isfile(path):
    raise task_lib.DataError(f'{path}: {what} not found')
  return path


def open_zip(path: str) -> zipfile.ZipFile:
  """Opens a zip archive; a missing or truncated one raises `DataError`."""
  require(path, 'zip archive')
  try:
    archive = zipfile.ZipFile(path)
    bad = archive.testzip()
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise task_lib.DataError(f'{path}: not a readable zip archive ({e})') from e
  if bad is not None:
    raise task_lib.DataError(f'{path}: corrupt member {bad}')
  return archive


def load_npz(path: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
  """Arrays `keys` of an `.npz`; a missing or malformed one raises DataError."""
  require(path, 'numpy archive')
  try:
    with np.load(path, allow_pickle=False) as npz:
      missing = [k for k in keys if k not in npz.files]
      if missing:
        raise task_lib.DataError(f'{path}: missing arrays {missing}')
      return {k: npz[k] for k in keys}
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise task_lib.DataError(f'{path}: not a readable .npz ({e})') from e


def default_cache_dir() -> str:
  return os.environ.get(CACHE_DIR_ENV) or os.path.join(
      os.path.expanduser('~'), '.cache', 'fedmeta')


def _digest(paths: Sequence[str], params: Mapping[str, object]) -> str:
  h = hashlib.sha256(json.dumps(
      {'format': CACHE_FORMAT, 'params': params}, sort_keys=True).encode())
  for path in paths:
    with open(path, 'rb') as f:
      while chunk := f.read(1 << 20):
        h.update(chunk)
  return h.hexdigest()[:20]


def cached(name: str, sources: Sequence[str], params: Mapping[str, object],
           build: Callable[[], Mapping[str, np.ndarray]], *,
           cache_dir: Optional[str] = None) -> dict[str, np.ndarray]:
  """Returns `build()`'s arrays, from the cache when the sources are unchanged.

  Args:
    name: File name prefix in the cache dir.
    sources: Files the arrays are decoded from (hashed into the key).
    params: JSON-serializable decoding parameters (hashed into the key).
    build: Decodes the sources; returns named arrays (no object dtype).
    cache_dir: Where to cache; default `$FEDMETA_CACHE_DIR` or
      `~/.cache/fedmeta`. An unwritable cache dir only costs the decoding.
  """
  cache_dir = cache_dir or default_cache_dir()
  path = os.path.join(cache_dir, f'{name}-{_digest(sources, params)}.npz')
  if os.path.isfile(path):
    try:
      with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
      logging.warning('%s: unreadable cache file, decoding again', path)
  arrays = dict(build())
  try:
    os.makedirs(cache_dir, exist_ok=True)
    # Written under a temporary name and renamed, so a killed process never
    # leaves a truncated cache file behind.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix='.npz.tmp')
    with os.fdopen(fd, 'wb') as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  except OSError as e:
    logging.warning('%s: cannot write cache (%s)', cache_dir, e)
  return arrays
