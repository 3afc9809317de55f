"""Omniglot few-shot classification (Lake et al. 2015, Science), federated:
clients are groups of characters (each client's data an N-way task), pools
of characters that draw a fresh N-way episode each round, as MAML's Omniglot
experiments do (Finn et al. 2017, https://arxiv.org/abs/1703.03400), or
drawers.

Sources, in a folder `omniglot/` (or the folder itself):
- `images_background.npz` / `images_evaluation.npz`: all 1,623 characters x
  20 drawers (`images` bool, True = white); or else the official
  `images_background.zip` / `images_evaluation.zip` of PNGs (what online
  users have), or for the small split the `images_background_small{1,2}.zip`.
- `all_runs.zip`: the official 20-way one-shot runs (`load_one_shot_runs`).

Images are inverted (ink = 1) and resized from 105x105 to 28x28 with a
Lanczos filter as MAML does; decoded arrays are cached
(`fedmeta.data.files.cached`). Character splits: 'maml' (1,200 meta-train /
423 meta-test characters, MAML's sizes, cut in set order so alphabets stay
whole where possible), 'maml_shuffled' (the same sizes cut after a seeded
shuffle of all 1,623 characters, as MAML cuts: meta-test characters then
come from alphabets seen in training), 'background' (964 / 659) and
'background_small' (the 242 characters of the 8 small-set alphabets / 659).

Clients (`clients_by`): 'characters' groups `ways` consecutive characters of
one alphabet (alphabets are known for the 8 small-set alphabets of the npz
and for every zip; elsewhere consecutive indices, which follow alphabets)
into one client holding all 20 drawings of each, labels 0..ways-1; leftover
characters of all alphabets are grouped together, a final remainder dropped.
'pools' gives each training client a disjoint pool of `pool_size`
meta-train characters, and one test client all meta-test characters,
labelled by global class ids, for episodes drawn afresh each round
(`fedmeta.data.episodes`; MAML's protocol with `rotations`). Pools are
assigned at random (`pool_by='random'`, IID) or cut within alphabets as
'characters' groups are (`pool_by='alphabet'`, non-IID: a client sees one
alphabet, except where a pool straddles two alphabets the npz does not
name, and in the pools of leftovers).
'drawer' makes one client per drawer with one drawing of every character of
the meta-train split: drawers 0-15 train, 16-19 test (classification only).
With `rotations`, each character also appears rotated by 90, 180 and 270
degrees as new characters (MAML's augmentation).
Elements: `x` float32 [28, 28, 1] (ink = 1), `y` int32.
"""

import io
import os
import re
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf

from fedmeta import models
from fedmeta.data import episodes
from fedmeta.data import files
from fedmeta.data import task as task_lib

IMAGE_SIZE = 28
ORIGINAL_SIZE = 105
DRAWERS = 20
TRAIN_DRAWERS = 16
SPLITS = ('maml', 'maml_shuffled', 'background', 'background_small')
# MAML shuffles all characters before its cut (random.seed(1)); so does
# 'maml_shuffled', with its own generator: the characters differ from MAML's.
MAML_SHUFFLE_SEED = 1
CLIENTS_BY = ('characters', 'pools', 'drawer')
POOL_BY = ('random', 'alphabet')
NORMS = ('group', 'batch')
DOWNSAMPLES = ('stride', 'max_pool')
MAML_TRAIN_CHARACTERS = 1200
# Ranges (inclusive) of the small-set alphabets in the background set, as
# ../shared/data/README.md gives them: 1-based, like the PNG file ids
# (Balinese/character01 is 0108_*.png and npz index 107; tested).
SMALL_ALPHABETS = {
    'Balinese': (108, 131), 'Early_Aramaic': (251, 272),
    'Greek': (394, 417), 'Japanese_(katakana)': (596, 642),
    'Korean': (643, 682), 'Latin': (683, 708), 'Sanskrit': (851, 892),
    'Tagalog': (893, 909),
}
_PNG = re.compile(r'(?:^|/)([^/]+)/character(\d+)/\d+_(\d+)\.png$')


def to_ink(white: np.ndarray, size: int | None = IMAGE_SIZE) -> np.ndarray:
  """Black-on-white image(s) [..., 105, 105] (bool or uint8) -> ink uint8
  [..., size, size] (255 = ink), Lanczos-resized unless `size` is None."""
  # pylint: disable-next=g-import-not-at-top
  from PIL import Image
  white = np.asarray(white)
  ink = np.where(white > (0 if white.dtype == bool else 127), 0, 255)
  ink = ink.astype(np.uint8)
  if size is None:
    return ink
  flat = ink.reshape((-1,) + ink.shape[-2:])
  resized = [np.asarray(Image.fromarray(im).resize(
      (size, size), resample=Image.LANCZOS)) for im in flat]
  return np.stack(resized).reshape(ink.shape[:-2] + (size, size))


def _decode_png(data: bytes) -> np.ndarray:
  # pylint: disable-next=g-import-not-at-top
  from PIL import Image
  return np.asarray(Image.open(io.BytesIO(data)).convert('L'))


def _decode_npz(path: str) -> dict[str, np.ndarray]:
  images = files.load_npz(path, ('images',))['images']
  if images.ndim != 4 or images.shape[1:] != (DRAWERS, ORIGINAL_SIZE,
                                               ORIGINAL_SIZE):
    raise task_lib.DataError(
        f'{path}: expected images [characters, 20, 105, 105], got '
        f'{images.shape}')
  alphabets = np.full(len(images), '', dtype='<U32')
  if 'background' in path.rsplit('/', 1)[-1]:
    for name, (first, last) in SMALL_ALPHABETS.items():
      alphabets[first - 1:last] = name
  return {'images': to_ink(images), 'alphabets': alphabets}


def _decode_zip(path: str) -> dict[str, np.ndarray]:
  with files.open_zip(path) as archive:
    drawings = {}
    for name in archive.namelist():
      match = _PNG.search(name)
      if match:
        alphabet, character, drawer = match.groups()
        drawings[(alphabet, int(character), int(drawer))] = name
    characters = sorted({key[:2] for key in drawings})
    if not characters:
      raise task_lib.DataError(
          f'{path}: no <Alphabet>/characterNN/<id>_<drawer>.png images')
    images = np.zeros((len(characters), DRAWERS, ORIGINAL_SIZE,
                       ORIGINAL_SIZE), np.uint8)
    for i, (alphabet, character) in enumerate(characters):
      names = sorted((d, n) for (a, c, d), n in drawings.items()
                     if (a, c) == (alphabet, character))
      if len(names) != DRAWERS:
        raise task_lib.DataError(
            f'{path}: {alphabet}/character{character:02d} has {len(names)} '
            f'drawings, expected {DRAWERS}')
      for j, (_, name) in enumerate(names):
        try:
          images[i, j] = _decode_png(archive.read(name))
        except Exception as e:  # PIL raises several unrelated types.
          raise task_lib.DataError(f'{path}: {name}: bad PNG ({e})') from e
  return {'images': to_ink(images),
          'alphabets': np.asarray([a for a, _ in characters])}


def _read_set(path: str, cache_dir: str | None) -> dict[str, np.ndarray]:
  decode = _decode_npz if path.endswith('.npz') else _decode_zip
  return files.cached('omniglot', [path], {'size': IMAGE_SIZE},
                      lambda: decode(path), cache_dir=cache_dir)


def _set_path(folder: str, name: str) -> str | None:
  for ext in ('.npz', '.zip'):
    path = f'{folder}/{name}{ext}'
    if os.path.isfile(path):
      return path
  return None


def read_characters(folder: str, split: str,
                    cache_dir: str | None = None):
  """((train images, alphabets), (test images, alphabets)) of a split.

  Images are uint8 [characters, 20, 28, 28], 255 = ink.
  """
  background = _set_path(folder, 'images_background')
  evaluation = _set_path(folder, 'images_evaluation')
  if evaluation is None:
    raise task_lib.DataError(
        f'{folder}/images_evaluation.npz: not found (nor .zip)')
  test = _read_set(evaluation, cache_dir)
  if background is None and split == 'background_small':
    first, second = (_read_set(files.require(
        f'{folder}/images_background_small{i}.zip', 'Omniglot zip'),
                               cache_dir) for i in (1, 2))
    # Greek and Latin are in both zips; the npz orders alphabets by name.
    extra = ~np.isin(second['alphabets'], first['alphabets'])
    alphabets = np.concatenate([first['alphabets'], second['alphabets'][extra]])
    images = np.concatenate([first['images'], second['images'][extra]])
    order = np.argsort(alphabets, kind='stable')
    return (images[order], alphabets[order]), (test['images'],
                                               test['alphabets'])
  if background is None:
    raise task_lib.DataError(
        f'{folder}/images_background.npz: not found (nor .zip)')
  train = _read_set(background, cache_dir)
  if split == 'background':
    return (train['images'], train['alphabets']), (test['images'],
                                                    test['alphabets'])
  if split == 'background_small':
    keep = np.isin(train['alphabets'], list(SMALL_ALPHABETS))
    return ((train['images'][keep], train['alphabets'][keep]),
            (test['images'], test['alphabets']))
  images = np.concatenate([train['images'], test['images']])
  alphabets = np.concatenate([train['alphabets'], test['alphabets']])
  if split == 'maml_shuffled':
    order = np.random.default_rng(MAML_SHUFFLE_SEED).permutation(len(images))
    images, alphabets = images[order], alphabets[order]
  cut = MAML_TRAIN_CHARACTERS
  return (images[:cut], alphabets[:cut]), (images[cut:], alphabets[cut:])


def character_groups(alphabets: np.ndarray, ways: int) -> list[np.ndarray]:
  """Indices of `ways` characters per client, within alphabets first.

  Runs of consecutive characters with the same alphabet label ('' =
  unknown) are cut into groups of `ways`; their leftovers, in order, are
  grouped together and a final remainder smaller than `ways` is dropped.
  """
  groups, leftover = [], []
  starts = np.flatnonzero(np.r_[True, alphabets[1:] != alphabets[:-1]])
  for start, end in zip(starts, np.r_[starts[1:], len(alphabets)]):
    run = np.arange(start, end)
    full = len(run) // ways * ways
    groups += np.split(run[:full], full // ways) if full else []
    leftover += list(run[full:])
  full = len(leftover) // ways * ways
  groups += [np.asarray(leftover[i:i + ways]) for i in range(0, full, ways)]
  return groups


def _rotated(images: np.ndarray, rotations: bool) -> np.ndarray:
  """Images [c, 20, 28, 28] -> [r, c, 20, 28, 28] with r = 4 or 1."""
  turns = range(4) if rotations else range(1)
  return np.stack([np.rot90(images, k, axes=(-2, -1)) for k in turns])


def _as_x(ink: np.ndarray) -> np.ndarray:
  return (ink.astype(np.float32) / 255.0)[..., None]


def _character_clients(images, alphabets, ways, rotations):
  """Client ids and (x, y) pairs of N-way character groups."""
  ids, pairs = [], []
  rotated = _rotated(images, rotations)
  for turn, turned in enumerate(rotated):
    for group in character_groups(alphabets, ways):
      name = alphabets[group[0]] or 'characters'
      suffix = f'_rot{90 * turn}' if turn else ''
      ids.append(f'{name}_{group[0]:04d}{suffix}')
      x = turned[group].reshape((-1, IMAGE_SIZE, IMAGE_SIZE))
      pairs.append((_as_x(x), np.repeat(np.arange(ways, dtype=np.int32),
                                        DRAWERS)))
  if not ids:
    raise task_lib.DataError(
        f'ways: {ways} is more than the split has characters')
  return ids, pairs


def _drawer_clients(images, rotations, drawers):
  rotated = _rotated(images, rotations)
  classes = rotated.reshape((-1,) + images.shape[1:])  # [r * c, 20, ...]
  labels = np.arange(len(classes), dtype=np.int32)
  ids = [f'drawer_{d:02d}' for d in drawers]
  pairs = [(_as_x(classes[:, d]), labels) for d in drawers]
  return ids, pairs


def _model_options(norm: str, downsample: str | None) -> tuple[str, str]:
  """`norm` and `downsample` checked, downsample None as the norm's own."""
  if norm not in NORMS:
    raise task_lib.DataError(f'norm: must be one of {NORMS}, got {norm!r}')
  if downsample is None:
    downsample = 'stride' if norm == 'batch' else 'max_pool'
  if downsample not in DOWNSAMPLES:
    raise task_lib.DataError(
        f'downsample: must be one of {DOWNSAMPLES}, got {downsample!r}')
  return norm, downsample


def conv4_model_fn(num_classes: int | None, norm: str = 'group',
                   downsample: str | None = None):
  """MAML's 4-block conv net for Omniglot; with `num_classes` None, without
  the dense layer: the 64-dimensional embedding of Snell et al.'s
  Prototypical Networks (https://arxiv.org/abs/1703.05175; norm='group' is
  their network with GroupNorm for batch norm).

  norm='group': 4 x (3x3 conv, 64 filters; GroupNormalization(8); ReLU;
  2x2 max-pool), flatten, dense. TFF's functional models cannot hold running
  batch-norm statistics; GroupNormalization is TFF's documented replacement.

  norm='batch': MAML's Omniglot network exactly (Finn et al. 2017; its
  `forward_conv` without max-pooling): 4 x (3x3 conv with stride 2, 64
  filters; batch normalization with the batch's own statistics, offset only
  (`fedmeta.models.BatchStatistics`); ReLU), the mean over the remaining
  2x2 positions, dense.

  downsample: how each block halves the image. 'max_pool' (the default with
  norm='group'): a 2x2 max-pool after the ReLU, then flatten (28 -> 14 -> 7
  -> 3 -> 1 pixels); with norm='batch' that is Snell et al.'s network, with
  the batch's statistics for batch norm's running ones, with 3.7x the
  multiply-adds of 'stride' (9.8M against 2.7M an image). 'stride' (the
  default with norm='batch'): stride-2 convolutions, then the mean over the
  remaining 2x2 positions.
  """
  norm, downsample = _model_options(norm, downsample)
  strides = 2 if downsample == 'stride' else 1

  def keras_model():
    layers = [tf.keras.layers.Input([IMAGE_SIZE, IMAGE_SIZE, 1])]
    for _ in range(4):
      layers += [tf.keras.layers.Conv2D(64, 3, strides=strides,
                                        padding='same'),
                 models.BatchStatistics() if norm == 'batch'
                 else tf.keras.layers.GroupNormalization(groups=8),
                 tf.keras.layers.ReLU()]
      if downsample == 'max_pool':
        layers.append(tf.keras.layers.MaxPool2D(2))
    layers.append(tf.keras.layers.GlobalAveragePooling2D()
                  if downsample == 'stride' else tf.keras.layers.Flatten())
    if num_classes is not None:
      layers.append(tf.keras.layers.Dense(num_classes))
    return tf.keras.Sequential(layers)
  return task_lib.classifier(
      keras_model, tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32))


def _pool_clients(images, rotations, pools, prefix):
  """ClientData of character pools: a class per character and rotation
  (class id turn * characters + character), every drawing of each."""
  rotated = _rotated(images, rotations)  # [turns, characters, 20, 28, 28]
  turns, count = rotated.shape[:2]
  x = _as_x(rotated.reshape((-1, IMAGE_SIZE, IMAGE_SIZE)))
  labels = np.repeat(np.arange(turns * count, dtype=np.int32), DRAWERS)
  class_pools = [np.concatenate([pool + t * count for t in range(turns)])
                 for pool in pools]
  return episodes.pooled_client_data(x, labels, class_pools, prefix)


def load(data_dir: str | None = None, *, split: str = 'maml', ways: int = 5,
         clients_by: str = 'characters', rotations: bool = False,
         pool_size: int = 20, pool_by: str = 'random', norm: str = 'group',
         downsample: str | None = None, seed: int = 0,
         cache_dir: str | None = None) -> task_lib.Task:
  """Omniglot clients (see the module docstring).

  Args:
    data_dir: Folder with the Omniglot files (or its parent with
      `omniglot/`); default `fedmeta.data.files.default_data_dir`.
    split: 'maml', 'maml_shuffled', 'background' or 'background_small'.
    ways: Characters (classes) per client with `clients_by='characters'`;
      the model's outputs (an episode's N) with 'pools'.
    clients_by: 'characters' (meta-train / meta-test character groups),
      'pools' (for episodes, `fedmeta.data.episodes`: each training client
      a disjoint pool of `pool_size` meta-train characters assigned at
      random, one test client holding every meta-test character; labels
      are global class ids) or 'drawer' (meta-train characters; train
      drawers 0-15, test 16-19).
    rotations: Add the 90/180/270 degree rotations as new characters.
    pool_size: Characters per training client with 'pools'; with rotations
      a pool has 4 classes per character.
    pool_by: 'random' (pools of characters assigned at random) or
      'alphabet' (consecutive characters of one alphabet, as 'characters'
      groups them; needs a split in set order, not 'maml_shuffled').
    norm: The model's normalization; see `conv4_model_fn`.
    downsample: 'stride' or 'max_pool' (default: the norm's own); see
      `conv4_model_fn`.
    seed: Assigns characters to pools with pool_by='random'.
    cache_dir: Cache of decoded images; see `fedmeta.data.files.cached`.
  """
  if split not in SPLITS:
    raise task_lib.DataError(f'split: must be one of {SPLITS}, got {split!r}')
  if clients_by not in CLIENTS_BY:
    raise task_lib.DataError(
        f'clients_by: must be one of {CLIENTS_BY}, got {clients_by!r}')
  if ways < 2:
    raise task_lib.DataError(f'ways: must be >= 2, got {ways}')
  _model_options(norm, downsample)  # Before the files are read.
  if pool_size < 1:
    raise task_lib.DataError(f'pool_size: must be >= 1, got {pool_size}')
  if pool_by not in POOL_BY:
    raise task_lib.DataError(
        f'pool_by: must be one of {POOL_BY}, got {pool_by!r}')
  if pool_by == 'alphabet' and split == 'maml_shuffled':
    raise task_lib.DataError(
        "pool_by: 'alphabet' needs characters in set order; split "
        "'maml_shuffled' mixes alphabets (use 'maml')")
  folder = files.resolve(data_dir, 'omniglot')
  (train_images, train_alphabets), (test_images, test_alphabets) = (
      read_characters(folder, split, cache_dir))
  if clients_by == 'pools':
    if pool_by == 'alphabet':
      pools = character_groups(train_alphabets, pool_size)
      if not pools:
        raise task_lib.DataError(f'pool_size: {pool_size} is more than the '
                                 f'{len(train_images)} characters')
    else:
      pools = episodes.class_pools(np.arange(len(train_images)), pool_size,
                                   seed)
    return task_lib.Task(
        name='omniglot',
        train=_pool_clients(train_images, rotations, pools, 'pool'),
        test=_pool_clients(test_images, rotations,
                           [np.arange(len(test_images))], 'heldout'),
        model_fn=lambda: conv4_model_fn(ways, norm, downsample),
        examples_per_class=DRAWERS, episodic=True,
        embedding_fn=lambda: conv4_model_fn(None, norm, downsample))
  if clients_by == 'drawer':
    train = _drawer_clients(train_images, rotations, range(TRAIN_DRAWERS))
    test = _drawer_clients(train_images, rotations,
                           range(TRAIN_DRAWERS, DRAWERS))
    num_classes = len(train[1][0][1])
    examples_per_class = 1
  else:
    train = _character_clients(train_images, train_alphabets, ways, rotations)
    test = _character_clients(test_images, test_alphabets, ways, rotations)
    num_classes = ways
    examples_per_class = DRAWERS
  return task_lib.Task(
      name='omniglot',
      train=task_lib.client_data_from_pairs(train[1], ids=train[0]),
      test=task_lib.client_data_from_pairs(test[1], ids=test[0]),
      model_fn=lambda: conv4_model_fn(num_classes, norm, downsample),
      examples_per_class=examples_per_class,
      embedding_fn=lambda: conv4_model_fn(None, norm, downsample))


def _run_images(archive, names, image_size):
  ink = np.stack([to_ink(_decode_png(archive.read(n)), image_size)
                  for n in names])
  return ink > 127 if image_size is None else _as_x(ink)


class OneShotRun(NamedTuple):
  """One official 20-way one-shot run: 20 support images (one per class,
  label = class index) and 20 query images with their true class."""
  support_x: np.ndarray
  support_y: np.ndarray
  query_x: np.ndarray
  query_y: np.ndarray


def load_one_shot_runs(data_dir: str | None = None, *,
                       image_size: int | None = IMAGE_SIZE) -> list[OneShotRun]:
  """The 20 runs of `all_runs.zip` (Lake et al. 2015's benchmark).

  Args:
    data_dir: Folder with `all_runs.zip` (or its parent with `omniglot/`).
    image_size: 28 (float32 [20, 28, 28, 1] like `load`'s elements, ink = 1)
      or None for the original 105x105 ink masks (bool [20, 105, 105]).
  """
  path = f'{files.resolve(data_dir, "omniglot")}/all_runs.zip'
  runs = []
  with files.open_zip(path) as archive:
    names = set(archive.namelist())
    run_dirs = sorted({n.split('/')[0] for n in names if '/' in n})
    if not run_dirs:
      raise task_lib.DataError(f'{path}: no runNN/ folders')
    for run in run_dirs:
      labels_file = f'{run}/class_labels.txt'
      if labels_file not in names:
        raise task_lib.DataError(f'{path}: {labels_file} missing')
      pairs = [line.split() for line in
               archive.read(labels_file).decode().splitlines() if line.strip()]
      train = sorted({p[1] for p in pairs})
      if any(len(p) != 2 or not set(p) <= names for p in pairs):
        raise task_lib.DataError(
            f'{path}: {labels_file} names files the archive lacks')
      support = _run_images(archive, train, image_size)
      query = _run_images(archive, [p[0] for p in pairs], image_size)
      runs.append(OneShotRun(
          support, np.arange(len(train), dtype=np.int32), query,
          np.asarray([train.index(p[1]) for p in pairs], np.int32)))
  return runs


def one_shot_error(runs: list[OneShotRun],
                   predict: Callable[[np.ndarray, np.ndarray, np.ndarray],
                                     np.ndarray]) -> tuple[float, list[float]]:
  """Mean error rate over runs, and each run's, of
  `predict(support_x, support_y, query_x) -> query labels`."""
  errors = [float(np.mean(predict(r.support_x, r.support_y, r.query_x)
                          != r.query_y)) for r in runs]
  return float(np.mean(errors)), errors


def modified_hausdorff_predict(support_x: np.ndarray, support_y: np.ndarray,
                               query_x: np.ndarray) -> np.ndarray:
  """The official runs' baseline classifier (Lake et al.'s demo): nearest
  support image by modified Hausdorff distance (Dubuisson & Jain 1994)
  between centered ink-pixel sets. Takes 105x105 ink masks
  (`load_one_shot_runs(image_size=None)`); the demo reports 38.8% error."""
  # pylint: disable-next=g-import-not-at-top
  from scipy import spatial

  def trees(masks):
    points = [np.argwhere(m).astype(float) for m in masks]
    points = [p - p.mean(axis=0) for p in points]
    return points, [spatial.cKDTree(p) for p in points]

  support_points, support_trees = trees(support_x)
  query_points, query_trees = trees(query_x)
  cost = np.asarray([[max(s_tree.query(q)[0].mean(), q_tree.query(s)[0].mean())
                      for s, s_tree in zip(support_points, support_trees)]
                     for q, q_tree in zip(query_points, query_trees)])
  return np.asarray(support_y)[np.argmin(cost, axis=1)]
