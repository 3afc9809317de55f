"""Shakespeare next-character prediction, one client per speaking role, as
LEAF builds it (Caldas et al. 2018, https://arxiv.org/abs/1812.01097; the
FedAvg paper's Shakespeare task, McMahan et al. 2017).

Two sources. `source='plays'` (the default), LEAF's clients: one per (play,
role) of the 37 plays in `shakespeare/plays/*_gut.txt` (Project Gutenberg's
1998 etexts; the sonnets and poems have no speakers), parsed by
`fedmeta.data.shakespeare_plays` (speaker lines, abbreviations merged,
stage directions and headings cut). Client ids are LEAF's
`play_and_character`: `f'{TITLE}_{ROLE}'`, spaces and then every run of
other non-word characters as `_` (`HAMLET__PRINCE_OF_DENMARK_HAMLET`).
`source='tiny'`: `tinyshakespeare.txt` (`SPEAKER:` lines, each after a
blank line, then the speech), where a role is a speaker name (the file does
not mark plays).

A role's text is its speech lines (stripped, for the plays) joined with
newlines. Examples are every window of 80 characters with the next
character as target (LEAF's stride 1; `stride` 81 gives non-overlapping
windows, as TFF's Shakespeare tutorial makes). By default each role's text
is cut at 80%: windows of the first part train, windows of the rest test,
so no character is in both (LEAF's split of a role's windows also puts the
test ones after the training ones). Roles with fewer than `min_lines` lines
or whose test part has no full window are dropped. LEAF keeps a role of 3
lines or more (`min_lines=3`) with a window, and its split drops the roles
whose last 20% holds no test window, as here; the default of 10 lines
changes little (848 roles of the plays, against 856 with 3). With
`heldout_roles`, a seeded fraction of roles instead forms the test clients
with all their text (FedMeta's held-out clients).

Vocabulary: LEAF's 80 characters `VOCABULARY` at indices 0..79, and 80 for
any other character (in tinyshakespeare, only `$`; in the plays, `/` and
`_`).
"""

import collections
import glob
import os
import re

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedmeta.data import files
from fedmeta.data import shakespeare_plays
from fedmeta.data import task as task_lib

FILE = 'tinyshakespeare.txt'
PLAYS = 'plays'
SOURCES = ('plays', 'tiny')
VOCABULARY = ('\n !"&\'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]'
              'abcdefghijklmnopqrstuvwxyz}')
OOV = len(VOCABULARY)
VOCABULARY_SIZE = OOV + 1
SEQUENCE_LENGTH = 80
_SPEAKER = re.compile(r"^([A-Za-z][A-Za-z' .,-]*):$")
_CODES = np.full(256, OOV, np.uint8)
_CODES[[ord(c) for c in VOCABULARY]] = np.arange(OOV)


def encode(text: str) -> np.ndarray:
  """Characters to vocabulary indices (uint8)."""
  raw = np.frombuffer(text.encode('latin-1', errors='replace'), np.uint8)
  return _CODES[raw]


def parse_roles(text: str, path: str) -> dict[str, tuple[str, int]]:
  """Role name -> (its speeches joined by newlines, its number of lines)."""
  roles: dict[str, list[str]] = {}
  speaker = None
  previous_blank = True
  for line in text.splitlines():
    match = _SPEAKER.match(line) if previous_blank else None
    if match:
      speaker = match.group(1)
      roles.setdefault(speaker, [])
    elif line.strip() and speaker is not None:
      roles[speaker].append(line)
    previous_blank = not line.strip()
  if not roles:
    raise task_lib.DataError(f'{path}: no speaker lines ("NAME:" after a '
                             'blank line)')
  return {name: ('\n'.join(lines), len(lines))
          for name, lines in roles.items()}


def client_id(title: str, role: str) -> str:
  """LEAF's client id of a play's role (its `play_and_character`)."""
  return re.sub(r'\W+', '_', f'{title}_{role}'.replace(' ', '_'))


def _arrays(texts: dict[str, str]) -> dict[str, np.ndarray]:
  codes = [encode(texts[name]) for name in sorted(texts)]
  return {'names': np.asarray(sorted(texts)),
          'ends': np.cumsum([len(c) for c in codes]),
          'codes': np.concatenate(codes)}


def _decode_tiny(path: str, min_lines: int) -> dict[str, np.ndarray]:
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise task_lib.DataError(f'{path}: not UTF-8 text ({e})') from e
  roles = {name: speech for name, (speech, lines)
           in parse_roles(text, path).items() if lines >= min_lines}
  if not roles:
    raise task_lib.DataError(f'{path}: no role has {min_lines} lines or more')
  return _arrays(roles)


def _decode_plays(folder: str, paths: list[str],
                  min_lines: int) -> dict[str, np.ndarray]:
  roles = collections.defaultdict(list)
  for path in paths:
    play = shakespeare_plays.parse(shakespeare_plays.read(path), path)
    if play is None:  # The sonnets and poems.
      continue
    for role, lines in play.roles.items():
      # Should the ids of two roles coincide, LEAF joins them too.
      roles[client_id(play.title, role)].extend(lines)
  kept = {name: '\n'.join(lines) for name, lines in roles.items()
          if len(lines) >= min_lines}
  if not kept:
    raise task_lib.DataError(
        f'{folder}: no role of a play has {min_lines} lines or more')
  return _arrays(kept)


EMBEDDING = 8
UNITS = 256


def keras_model() -> tf.keras.Model:
  """LEAF's model in Keras: 8-dim embedding, two 256-unit LSTMs, logits over
  the vocabulary. `model_fn`'s weights load into it with `set_weights`."""
  return tf.keras.Sequential([
      tf.keras.layers.Input([SEQUENCE_LENGTH], dtype=tf.int32),
      tf.keras.layers.Embedding(VOCABULARY_SIZE, EMBEDDING),
      tf.keras.layers.LSTM(UNITS, return_sequences=True),
      tf.keras.layers.LSTM(UNITS),
      tf.keras.layers.Dense(VOCABULARY_SIZE),
  ])


def _lstm(inputs, kernel, recurrent_kernel, bias):
  """Keras' LSTM (gates i, f, c, o) over time-major `inputs`; all states."""
  zeros = tf.zeros([tf.shape(inputs)[1], UNITS], inputs.dtype)

  def step(state, x):
    h, c = state
    z = tf.matmul(x, kernel) + tf.matmul(h, recurrent_kernel) + bias
    i, f, g, o = tf.split(z, 4, axis=1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c

  return tf.scan(step, inputs, initializer=(zeros, zeros))[0]


@tf.function
def _predict_on_batch(weights, x, training=True):
  del training  # No dropout.
  (embedding, k1, r1, b1, k2, r2, b2, dense_kernel, dense_bias), _ = weights
  inputs = tf.transpose(tf.gather(embedding, x), [1, 0, 2])
  last = _lstm(_lstm(inputs, k1, r1, b1), k2, r2, b2)[-1]
  return tf.matmul(last, dense_kernel) + dense_bias


def _initial_weights():
  """Drawn as Keras initializes `keras_model` (under the global seed)."""
  with tf.init_scope():  # Eager even when called while tracing.
    model = keras_model()
    return tuple(w.numpy() for w in model.trainable_weights), ()


def model_fn() -> tff.learning.models.FunctionalModel:
  """`keras_model` as a pure function of its weights.

  Written out rather than wrapped with `functional_model_from_keras`: TFF
  0.87 cannot differentiate that wrapper through the LSTM's while loop (its
  gradient captures the traced input placeholder: "You must feed a value
  for placeholder tensor"). Equal to the Keras model's output (tested).
  """
  loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def loss_fn(output, label, sample_weight=None):
    return loss(label, output, sample_weight)

  return tff.learning.models.FunctionalModel(
      initial_weights=_initial_weights(),
      predict_on_batch_fn=_predict_on_batch,
      loss_fn=loss_fn,
      metrics_fns=tff.learning.metrics.create_functional_metric_fns(
          collections.OrderedDict(
              sparse_categorical_accuracy=(
                  tf.keras.metrics.SparseCategoricalAccuracy))),
      input_spec={'x': tf.TensorSpec([None, SEQUENCE_LENGTH], tf.int32),
                  'y': tf.TensorSpec([None], tf.int32)})


def _windows(codes: np.ndarray, stride: int) -> tf.data.Dataset:
  frames = tf.signal.frame(tf.constant(codes, tf.int32), SEQUENCE_LENGTH + 1,
                           stride)
  return tf.data.Dataset.from_tensor_slices(
      {'x': frames[:, :SEQUENCE_LENGTH], 'y': frames[:, SEQUENCE_LENGTH]})


def _client_data(texts: dict[str, np.ndarray],
                 stride: int) -> task_lib.LazyClientData:
  return task_lib.LazyClientData(list(texts),
                                 lambda cid: _windows(texts[cid], stride))


def _roles(data_dir: str | None, source: str, min_lines: int,
           cache_dir: str | None) -> tuple[str, dict[str, np.ndarray]]:
  """(The file or folder read, role name -> its text's codes)."""
  root = files.resolve(data_dir, 'shakespeare')
  if source == 'tiny':
    where = files.require(os.path.join(root, FILE), 'Shakespeare text')
    arrays = files.cached('shakespeare', [where], {'min_lines': min_lines},
                          lambda: _decode_tiny(where, min_lines),
                          cache_dir=cache_dir)
  else:
    where = files.resolve(root, PLAYS)
    paths = sorted(glob.glob(os.path.join(where, shakespeare_plays.GLOB)))
    if not paths:
      raise task_lib.DataError(
          f'{where}: no Shakespeare plays ({shakespeare_plays.GLOB}) found')
    arrays = files.cached('shakespeare_plays', paths,
                          {'min_lines': min_lines},
                          lambda: _decode_plays(where, paths, min_lines),
                          cache_dir=cache_dir)
  names = [str(n) for n in arrays['names']]
  return where, dict(zip(names, np.split(arrays['codes'],
                                         arrays['ends'][:-1])))


def load(data_dir: str | None = None, *, source: str = 'plays',
         min_lines: int = 10, test_fraction: float = 0.2,
         heldout_roles: float = 0.0, stride: int = 1, seed: int = 0,
         cache_dir: str | None = None) -> task_lib.Task:
  """Roles as clients.

  Args:
    data_dir: The data root, its `shakespeare/` folder or, for the plays,
      `shakespeare/plays/`; default `fedmeta.data.files.default_data_dir`.
    source: 'plays': a client per (play, role) of `shakespeare/plays/`;
      'tiny': a client per speaker of `tinyshakespeare.txt`.
    min_lines: Roles with fewer lines are dropped.
    test_fraction: Share of each role's text (its end) for testing.
    heldout_roles: If > 0, this share of roles (seeded) are the test
      clients, with all their text, and `test_fraction` is unused.
    stride: Characters between the starts of consecutive windows.
    seed: Seed of the held-out role draw.
    cache_dir: Cache of the parsed roles; see `fedmeta.data.files.cached`.
  """
  if source not in SOURCES:
    raise task_lib.DataError(
        f'source: must be one of {", ".join(SOURCES)}, got {source!r}')
  if not 0 < test_fraction < 1 or not 0 <= heldout_roles < 1:
    raise task_lib.DataError(
        f'test_fraction, heldout_roles: must be in (0, 1) and [0, 1), got '
        f'{test_fraction}, {heldout_roles}')
  if stride < 1:
    raise task_lib.DataError(f'stride: must be >= 1, got {stride}')
  where, texts = _roles(data_dir, source, min_lines, cache_dir)
  names = list(texts)
  window = SEQUENCE_LENGTH + 1
  if heldout_roles:
    order = np.random.default_rng(seed).permutation(len(names))
    n_test = max(1, int(round(heldout_roles * len(names))))
    test_names = {names[i] for i in order[:n_test]}
    train = {n: t for n, t in texts.items()
             if n not in test_names and len(t) >= window}
    test = {n: t for n, t in texts.items()
            if n in test_names and len(t) >= window}
  else:
    cuts = {n: int(round(len(t) * (1 - test_fraction)))
            for n, t in texts.items()}
    kept = [n for n, t in texts.items()
            if cuts[n] >= window and len(t) - cuts[n] >= window]
    train = {n: texts[n][:cuts[n]] for n in kept}
    test = {n: texts[n][cuts[n]:] for n in kept}
  if not train or not test:
    raise task_lib.DataError(f'{where}: no role long enough for 81-character '
                             'windows on both sides of the split')
  return task_lib.Task(name='shakespeare', train=_client_data(train, stride),
                       test=_client_data(test, stride), model_fn=model_fn)
