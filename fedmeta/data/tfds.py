"""Federated tasks from TensorFlow Datasets (TFDS,
https://www.tensorflow.org/datasets): image classification, text
classification and next-character prediction.

Preparation: `data_dir` is TFDS's (where prepared datasets live; default
TFDS's own, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`). A prepared dataset
is read as it is; its TFRecords are the decoded cache, so nothing else is
cached. With `download=False` (the default) nothing touches the network:
TFDS's GCS look-ups are disabled, and an unprepared dataset is built only
from `manual_dir`, which must hold every file in the builder's registered
checksums under its registered name (TFDS's `DownloadManager` then reads it
instead of downloading; builders with no registered files read `manual_dir`
themselves). `download=True` runs TFDS's ordinary `download_and_prepare`.

Features, from the builder's info: `supervised_keys` (input, label) if
present; else an `image` feature with a `label` ClassLabel; else the single
Text feature (other than client features), labelled by `label` if that is a
ClassLabel. By the input:
- Image (static shape [h, w, c], integer pixels): `x` float32 [h, w, c] in
  [0, 1] (pixels over the dtype's maximum), `y` int32; model: 3x3 conv 32,
  2x2 max-pool, 3x3 conv 64, 2x2 max-pool, dense 128, logits over the
  ClassLabel's classes. Each conv is pooled (unlike Keras' MNIST example's
  single pool) so the dense layer stays small on large images (Omniglot's
  105x105: 4.7M weights instead of 21M).
- Text with a ClassLabel: characters encoded with LEAF's vocabulary
  (`fedmeta.data.shakespeare.encode`), truncated or padded to
  `sequence_length` with an extra padding index; `x` int32
  [sequence_length], `y` int32; model: 16-dim embedding, width-5 conv of 64
  ReLU units, mean over positions, logits. (Not an LSTM: TFF 0.87 cannot
  differentiate the Keras LSTM wrapper; see `fedmeta.data.shakespeare`.)
- Text without a label (e.g. tiny_shakespeare): next-character prediction as
  in `fedmeta.data.shakespeare`: a split's texts are joined with newlines
  and encoded, examples are every 80-character window (stride 1) with the
  next character as `y`; model `shakespeare.model_fn()`, so
  `sequence_length` must be 80.

Clients (`partition`): 'natural' groups examples by `client_feature`, or by
the first of `NATURAL_FEATURES` the dataset has (ClassLabel names, texts or
numbers as client ids), train and test alike, so test clients are the test
split's values of the feature (for Omniglot's `alphabet`, other alphabets);
next-character texts are joined per client. The partitioners of
`fedmeta.data.partition`, 'iid', 'dirichlet' (`alpha`) and 'shards'
(`shards_per_client`), split the training labels over `num_clients`
clients; the test split is dealt to the same `num_clients` client ids IID,
so each test client sees the test distribution. For next-character text,
'chunks' cuts each split's character stream into `num_clients` contiguous,
equal chunks (tiny_shakespeare's natural choice: consecutive passages), and
'iid' deals each split's windows IID; label skew does not apply to it.
`max_examples` keeps a split's first examples in TFDS's order; for
next-character text, its first windows (of clients in id order, for
'natural').
"""

import contextlib
import difflib
import functools

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from fedmeta.data import partition as partition_lib
from fedmeta.data import shakespeare
from fedmeta.data import task as task_lib

NATURAL_FEATURES = ('client_id', 'user_id', 'speaker_id', 'writer_id',
                    'author')
PARTITIONERS = ('iid', 'dirichlet', 'shards')
PARTITIONS = ('natural',) + PARTITIONERS + ('chunks',)
PAD = shakespeare.VOCABULARY_SIZE
EMBEDDING = 16
WINDOW = shakespeare.SEQUENCE_LENGTH + 1
_BATCH = 1024


def image_model_fn(shape: tuple[int, int, int], num_classes: int):
  """The small CNN on images of `shape` (float32 in [0, 1])."""
  def build():
    return tf.keras.Sequential([
        tf.keras.layers.Input(shape),
        tf.keras.layers.Conv2D(32, 3, activation='relu'),
        tf.keras.layers.MaxPool2D(2),
        tf.keras.layers.Conv2D(64, 3, activation='relu'),
        tf.keras.layers.MaxPool2D(2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation='relu'),
        tf.keras.layers.Dense(num_classes),
    ])
  return task_lib.classifier(build, tf.TensorSpec([None, *shape], tf.float32))


def text_model_fn(sequence_length: int, num_classes: int):
  """Embedding, conv and mean-pooling over encoded characters."""
  def build():
    return tf.keras.Sequential([
        tf.keras.layers.Input([sequence_length], dtype=tf.int32),
        tf.keras.layers.Embedding(PAD + 1, EMBEDDING),
        tf.keras.layers.Conv1D(64, 5, padding='same', activation='relu'),
        tf.keras.layers.GlobalAveragePooling1D(),
        tf.keras.layers.Dense(num_classes),
    ])
  return task_lib.classifier(
      build, tf.TensorSpec([None, sequence_length], tf.int32))


def encode_texts(texts: list[str], sequence_length: int) -> np.ndarray:
  """LEAF vocabulary indices, truncated or padded with `PAD`: int32 [n, L]."""
  codes = np.full((len(texts), sequence_length), PAD, np.int32)
  for row, text in zip(codes, texts):
    encoded = shakespeare.encode(text)[:sequence_length]
    row[:len(encoded)] = encoded
  return codes


@contextlib.contextmanager
def _offline(offline: bool):
  """Disables TFDS's GCS look-ups (dataset info, prepared copies)."""
  # TFDS 4.9.3 has no public switch for them, only this module flag.
  # pylint: disable=protected-access
  before = gcs_utils._is_gcs_disabled
  gcs_utils._is_gcs_disabled = before or offline
  try:
    yield
  finally:
    gcs_utils._is_gcs_disabled = before


def _builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as e:
    close = difflib.get_close_matches(
        name, sorted(set(tfds.list_builders(with_community_datasets=False))),
        n=5)
    hint = f'; close names: {", ".join(close)}' if close else ''
    raise task_lib.DataError(
        f'name: no TFDS dataset {name!r}{hint}') from e
  except (ValueError, AssertionError) as e:  # A bad config or version.
    raise task_lib.DataError(
        f'name: {name!r}: {str(e).splitlines()[0]}') from e


def _prepare(builder: tfds.core.DatasetBuilder, name: str, download: bool,
             manual_dir: str) -> None:
  """Builds the dataset in its data dir unless it is there already."""
  if builder.is_prepared():
    return
  if not download:
    if not manual_dir:
      raise task_lib.DataError(
          f'tfds:{name}: not prepared in {builder.data_dir_root}; pass '
          'manual_dir (a folder with its source files) or download=True')
    if not tf.io.gfile.isdir(manual_dir):
      raise task_lib.DataError(f'manual_dir: {manual_dir} does not exist')
    missing = sorted(
        info.filename for info in (builder.url_infos or {}).values()
        if info.filename
        and not tf.io.gfile.exists(f'{manual_dir}/{info.filename}'))
    if missing:
      raise task_lib.DataError(
          f'manual_dir: {manual_dir} lacks {", ".join(missing)} (the files '
          f'TFDS fetches for tfds:{name}); add them or pass download=True')
  config = tfds.download.DownloadConfig(
      manual_dir=manual_dir or None, try_download_gcs=download)
  try:
    builder.download_and_prepare(download_config=config)
  except Exception as e:  # pylint: disable=broad-except
    # Builders raise many unrelated types; the cause stays chained.
    raise task_lib.DataError(
        f'tfds:{name}: preparing it failed: {str(e).splitlines()[0]}') from e


def _find_features(info, name: str, client_feature: str):
  """(kind, input key, label key or None), kind 'image', 'text' or 'chars'."""
  features = dict(info.features.items())
  if info.supervised_keys:
    keys = info.supervised_keys
    if len(keys) != 2 or not all(isinstance(k, str) for k in keys):
      raise task_lib.DataError(
          f'tfds:{name}: supervised_keys {keys} are not (input, label)')
    x_key, y_key = keys
  elif ('image' in features and
        isinstance(features.get('label'), tfds.features.ClassLabel)):
    x_key, y_key = 'image', 'label'
  else:
    texts = [k for k, f in features.items()
             if isinstance(f, tfds.features.Text)
             and k not in NATURAL_FEATURES and k != client_feature]
    if len(texts) != 1:
      raise task_lib.DataError(
          f'tfds:{name}: no supervised_keys, image with label, or single '
          f'text feature; features: {", ".join(features)}')
    x_key = texts[0]
    label = features.get('label')
    y_key = 'label' if isinstance(label, tfds.features.ClassLabel) else None
  if y_key is not None and not isinstance(features[y_key],
                                          tfds.features.ClassLabel):
    raise task_lib.DataError(
        f'tfds:{name}: label {y_key!r} is not a ClassLabel (regression is '
        'not supported)')
  x_feature = features[x_key]
  if isinstance(x_feature, tfds.features.Image):
    if y_key is None:
      raise task_lib.DataError(f'tfds:{name}: images without a label')
    if None in x_feature.shape:
      raise task_lib.DataError(
          f'tfds:{name}: image {x_key!r} has shape {x_feature.shape}; a '
          'static shape is needed')
    if not np.issubdtype(x_feature.np_dtype, np.integer):
      raise task_lib.DataError(
          f'tfds:{name}: image {x_key!r} has {x_feature.np_dtype} pixels; '
          'integer pixels are needed')
    return 'image', x_key, y_key
  if isinstance(x_feature, tfds.features.Text):
    return ('chars' if y_key is None else 'text'), x_key, y_key
  raise task_lib.DataError(
      f'tfds:{name}: input {x_key!r} is a {type(x_feature).__name__}; only '
      'Image and Text inputs are supported')


def _natural_key(features, name: str, client_feature: str,
                 partitioners: tuple[str, ...]) -> str:
  if client_feature:
    if client_feature not in features:
      raise task_lib.DataError(
          f'client_feature: tfds:{name} has no feature {client_feature!r}; '
          f'features: {", ".join(features)}')
    return client_feature
  for key in NATURAL_FEATURES:
    if key in features:
      return key
  raise task_lib.DataError(
      f'partition: tfds:{name} has no natural client feature (none of '
      f'{", ".join(NATURAL_FEATURES)}); pass client_feature or a partition '
      f'of {", ".join(partitioners)} with num_clients')


def _read(builder, name: str, split: str, option: str, keys: list[str],
          limit: int) -> dict[str, np.ndarray]:
  """Features `keys` of the split's first `limit` examples (0: all)."""
  try:
    dataset = builder.as_dataset(
        split=split, shuffle_files=False,
        decoders=tfds.decode.PartialDecoding(keys))
  except (ValueError, KeyError, TypeError) as e:
    raise task_lib.DataError(
        f'{option}: tfds:{name} has no split {split!r}; splits: '
        f'{", ".join(builder.info.splits)}') from e
  if limit:
    dataset = dataset.take(limit)
  batches = list(tfds.as_numpy(dataset.batch(_BATCH)))
  if not batches:
    raise task_lib.DataError(f'{option}: split {split!r} of tfds:{name} is '
                             'empty')
  return {k: np.concatenate([b[k] for b in batches]) for k in keys}


def _client_names(feature, values: np.ndarray) -> np.ndarray:
  """Client ids (str) for the client feature's values."""
  if isinstance(feature, tfds.features.ClassLabel):
    return np.asarray(feature.names)[values]
  if values.dtype == object:
    return np.asarray([v.decode('utf-8', 'replace') for v in values])
  return values.astype(str)


def _group(names: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
  """Sorted distinct names, and the (increasing) indices of each."""
  ids, inverse, counts = np.unique(names, return_inverse=True,
                                   return_counts=True)
  order = np.argsort(inverse, kind='stable')
  return [str(i) for i in ids], np.split(order, np.cumsum(counts)[:-1])


def _partition(labels: np.ndarray, num_clients: int, seed: int,
               partition: str = 'iid', alpha: float = 0.0,
               shards_per_client: int = 0) -> list[np.ndarray]:
  try:
    if partition == 'dirichlet':
      return partition_lib.dirichlet(labels, num_clients, alpha, seed)
    if partition == 'shards':
      return partition_lib.shards(labels, num_clients, shards_per_client, seed)
    return partition_lib.iid(labels, num_clients, seed)
  except partition_lib.PartitionError as e:
    raise task_lib.DataError(str(e)) from e


def _starts(codes: np.ndarray) -> np.ndarray:
  return np.arange(max(len(codes) - WINDOW + 1, 0), dtype=np.int64)


def _first_windows(streams: dict[str, np.ndarray],
                   limit: int) -> dict[str, np.ndarray]:
  """The streams cut to their first `limit` windows, clients in order."""
  kept = {}
  for client_id, codes in streams.items():
    if limit <= 0:
      break
    kept[client_id] = codes[:limit + WINDOW - 1]
    limit -= len(_starts(kept[client_id]))
  return kept


def _window_client_data(streams: dict[str, tuple[np.ndarray, np.ndarray]]):
  """Clients' (codes, window starts) as `{'x': [80] int32, 'y': int32}`."""
  def dataset_fn(client_id):
    codes, starts = streams[client_id]
    codes = tf.constant(codes, tf.int32)

    def window(start):
      frame = tf.slice(codes, [start], [WINDOW])
      return {'x': frame[:-1], 'y': frame[-1]}

    return tf.data.Dataset.from_tensor_slices(starts).map(window)

  return task_lib.LazyClientData(list(streams), dataset_fn)


def _char_streams(texts: np.ndarray, names: np.ndarray | None,
                  partition: str, num_clients: int, limit: int, seed: int,
                  option: str,
                  where: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Client id -> (codes, window starts) of next-character text."""
  ids, parts = (_group(names) if names is not None
                else ([''], [np.arange(len(texts))]))
  streams = {i: shakespeare.encode('\n'.join(
      t.decode('utf-8', 'replace') for t in texts[p]))
             for i, p in zip(ids, parts)}
  if limit:
    streams = _first_windows(streams, limit)
  if partition == 'natural':
    result = {i: (c, _starts(c)) for i, c in streams.items()
              if len(c) >= WINDOW}
    if not result:
      raise task_lib.DataError(
          f'{option}: no client of {where} has {WINDOW} characters')
    return result
  (codes,) = streams.values()
  ids = [f'client_{i:04d}' for i in range(num_clients)]
  if partition == 'chunks':
    chunks = np.array_split(codes, num_clients)
    if len(chunks[-1]) < WINDOW:
      raise task_lib.DataError(
          f'num_clients: {num_clients} chunks of the {len(codes)} characters '
          f'of {where} are shorter than {WINDOW}')
    return {i: (c, _starts(c)) for i, c in zip(ids, chunks)}
  parts = _partition(_starts(codes), num_clients, seed)
  return {i: (codes, p) for i, p in zip(ids, parts)}


def _check_options(partition: str, num_clients: int, client_feature: str,
                   max_examples: int, sequence_length: int) -> None:
  if partition not in PARTITIONS:
    raise task_lib.DataError(
        f'partition: must be one of {", ".join(PARTITIONS)}, got '
        f'{partition!r}')
  if partition == 'natural' and num_clients:
    raise task_lib.DataError(
        f'num_clients: {num_clients} is for a partitioner; '
        "partition='natural' takes the clients of a feature")
  if partition != 'natural' and num_clients < 1:
    raise task_lib.DataError(
        f'num_clients: partition={partition!r} needs num_clients > 0, got '
        f'{num_clients}')
  if partition != 'natural' and client_feature:
    raise task_lib.DataError(
        f"client_feature: only for partition='natural', got "
        f'partition={partition!r}')
  if max_examples < 0:
    raise task_lib.DataError(
        f'max_examples: must be >= 0 (0: all), got {max_examples}')
  if sequence_length < 1:
    raise task_lib.DataError(
        f'sequence_length: must be >= 1, got {sequence_length}')


def _check_kind(kind: str, name: str, partition: str,
                sequence_length: int) -> None:
  """Options that the dataset's kind rules out."""
  if kind != 'chars':
    if partition == 'chunks':
      raise task_lib.DataError(
          f'partition: chunks is for next-character text; tfds:{name} has '
          f'labels: use natural or {", ".join(PARTITIONERS)}')
    return
  if sequence_length != shakespeare.SEQUENCE_LENGTH:
    raise task_lib.DataError(
        f"sequence_length: next-character tfds:{name} uses LEAF's model, "
        f'which takes {shakespeare.SEQUENCE_LENGTH}, got {sequence_length}')
  if partition in ('dirichlet', 'shards'):
    raise task_lib.DataError(
        f'partition: {partition} needs class labels; tfds:{name} is '
        'next-character text: use chunks, iid or natural')


def from_tfds(name: str, *, data_dir: str | None = None,
              download: bool = False, manual_dir: str = '',
              split_train: str = 'train', split_test: str = 'test',
              partition: str = 'natural', num_clients: int = 0,
              alpha: float = 0.5, shards_per_client: int = 2,
              client_feature: str = '', max_examples: int = 0,
              sequence_length: int = shakespeare.SEQUENCE_LENGTH,
              seed: int = 0) -> task_lib.Task:
  """A TFDS dataset as a federated task named `tfds:<name>`.

  Args:
    name: TFDS name, e.g. 'mnist', 'omniglot' or 'imdb_reviews/plain_text'.
    data_dir: TFDS's data dir; default TFDS's own.
    download: Whether TFDS may download (and use GCS) to prepare it.
    manual_dir: Folder of the source files to prepare it from offline.
    split_train: TFDS split (or slice, 'train[:80%]') of training clients.
    split_test: TFDS split of test clients.
    partition: 'natural' (by a client feature), 'iid', 'dirichlet',
      'shards', or for next-character text 'chunks'.
    num_clients: Clients of a partitioner (> 0; 0 for 'natural').
    alpha: Dirichlet concentration of 'dirichlet'.
    shards_per_client: Label-sorted shards per client of 'shards'.
    client_feature: The feature of 'natural' clients; default the first of
      `NATURAL_FEATURES` present.
    max_examples: Examples kept per split, its first in TFDS's order (0:
      all); for next-character text, windows from the start of the text
      (of clients in id order, for 'natural').
    sequence_length: Characters per text example (80 for next-character).
    seed: Seed of the partitioners.
  """
  _check_options(partition, num_clients, client_feature, max_examples,
                 sequence_length)
  with _offline(not download):
    builder = _builder(name, data_dir)
    _prepare(builder, name, download, manual_dir)
    features = dict(builder.info.features.items())
    kind, x_key, y_key = _find_features(builder.info, name, client_feature)
    _check_kind(kind, name, partition, sequence_length)
    client_key = None
    if partition == 'natural':
      client_key = _natural_key(
          features, name, client_feature,
          ('chunks', 'iid') if kind == 'chars' else PARTITIONERS)
    keys = [k for k in (x_key, y_key, client_key) if k]
    splits = [(option, split, _read(builder, name, split, option, keys,
                                    0 if kind == 'chars' else max_examples))
              for option, split in (('split_train', split_train),
                                    ('split_test', split_test))]

  client_data = []
  for option, split, arrays in splits:
    names = (_client_names(features[client_key], arrays[client_key])
             if client_key else None)
    if kind == 'chars':
      client_data.append(_window_client_data(_char_streams(
          arrays[x_key], names, partition, num_clients, max_examples, seed,
          option, f'split {split!r} of tfds:{name}')))
      continue
    y = arrays[y_key].astype(np.int32)
    x = arrays[x_key] if kind == 'image' else encode_texts(
        [t.decode('utf-8', 'replace') for t in arrays[x_key]],
        sequence_length)
    if names is not None:
      ids, parts = _group(names)
    elif option == 'split_train':
      ids, parts = None, _partition(y, num_clients, seed, partition, alpha,
                                    shards_per_client)
    else:
      ids, parts = None, _partition(y, num_clients, seed)
    client_data.append(task_lib.client_data_from_arrays(x, y, parts, ids=ids))
  train, test = client_data

  if kind == 'chars':
    model_fn = shakespeare.model_fn
  elif kind == 'text':
    model_fn = functools.partial(text_model_fn, sequence_length,
                                 features[y_key].num_classes)
  else:
    scale = float(np.iinfo(features[x_key].np_dtype).max)

    def to_unit(dataset):
      return dataset.map(lambda e: {'x': tf.cast(e['x'], tf.float32) / scale,
                                    'y': e['y']})

    train, test = train.preprocess(to_unit), test.preprocess(to_unit)
    model_fn = functools.partial(image_model_fn, tuple(features[x_key].shape),
                                 features[y_key].num_classes)
  return task_lib.Task(name=f'tfds:{name}', train=train, test=test,
                       model_fn=model_fn)


load = from_tfds
