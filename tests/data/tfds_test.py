"""TFDS datasets as federated tasks, prepared offline from local files."""

import io
import os
import shutil
import tempfile
from unittest import mock
import zipfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from fedmeta.data import DataError
from fedmeta.data import shakespeare
from fedmeta.data import tfds as tfds_task
from tests import testing

SHAKESPEARE = os.path.join(testing.data_dir(), 'shakespeare',
                           shakespeare.FILE)
OMNIGLOT_SIZE = 105
# Omniglot's ClassLabels fix 50 alphabets and 1,623 characters; the fake
# sets have as many, with the real background / evaluation split.
BACKGROUND = [(f'Alpha{i:02d}', part) for i, part in
              enumerate(np.array_split(np.arange(964), 30))]
EVALUATION = [(f'Beta{i:02d}', part) for i, part in
              enumerate(np.array_split(np.arange(964, 1623), 20))]

tfds.disable_progress_bar()


def temp_dir(test_case) -> str:
  # Not `create_tempdir`: under pytest, absl's flags are never parsed; and
  # class fixtures need one too.
  folder = tempfile.mkdtemp()
  test_case.addClassCleanup(shutil.rmtree, folder)
  return folder


def encoded(text: str) -> np.ndarray:
  return shakespeare.encode(text).astype(np.int32)


def omniglot_png(label: int) -> bytes:
  """White, a black square, and row 0 = `label % 251` (to check labels)."""
  image = np.full((OMNIGLOT_SIZE, OMNIGLOT_SIZE), 255, np.uint8)
  image[40:60, 40:60] = 0
  image[0] = label % 251
  data = io.BytesIO()
  Image.fromarray(image).save(data, format='PNG')
  return data.getvalue()


def write_omniglot_zip(path: str, alphabets, drawers: int) -> None:
  """Omniglot's layout: <set>/<Alphabet>/characterNN/<id>_<drawer>.png."""
  folder = os.path.basename(path)[:-len('.zip')]
  with zipfile.ZipFile(path, 'w') as archive:
    for alphabet, labels in alphabets:
      for number, label in enumerate(labels, 1):
        for drawer in range(1, drawers + 1):
          archive.writestr(
              f'{folder}/{alphabet}/character{number:02d}/'
              f'{label + 1:04d}_{drawer:02d}.png', omniglot_png(label))


def model_step(model, batch, learning_rate=0.01):
  """(loss, loss after one SGD step on it) of `model` on `batch`."""
  # Keras-backed functional models run only in graphs.
  with tf.Graph().as_default() as graph:
    trainable, frozen = model.initial_weights
    trainable = [tf.constant(w) for w in trainable]

    def loss(weights):
      output = model.predict_on_batch((tuple(weights), frozen), batch['x'],
                                      training=True)
      return model.loss(output, batch['y'])

    with tf.GradientTape() as tape:
      tape.watch(trainable)
      before = loss(trainable)
    gradients = tape.gradient(before, trainable)
    after = loss([w - learning_rate * tf.convert_to_tensor(g)
                  for w, g in zip(trainable, gradients)])
    with tf.compat.v1.Session(graph=graph) as session:
      return session.run([before, after])


def first_batch(client_data, client_id, size=8):
  return next(client_data.create_tf_dataset_for_client(client_id)
              .batch(size).as_numpy_iterator())


class FedmetaTestReviews(tfds.core.GeneratorBasedBuilder):
  """Labelled texts with a `user_id`, read from `manual_dir/reviews.tsv`."""

  VERSION = tfds.core.Version('1.0.0')
  MANUAL_DOWNLOAD_INSTRUCTIONS = 'reviews.tsv: split, user, label, text.'

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, features=tfds.features.FeaturesDict({
            'user_id': tfds.features.Text(),
            'text': tfds.features.Text(),
            'label': tfds.features.ClassLabel(names=['neg', 'pos']),
        }))

  def _split_generators(self, dl_manager):
    rows = [line.split('\t') for line in (
        dl_manager.manual_dir / 'reviews.tsv').read_text().splitlines()]
    return {split: self._generate_examples([r for r in rows if r[0] == split])
            for split in ('train', 'test')}

  def _generate_examples(self, rows):
    for i, (_, user, label, text) in enumerate(rows):
      yield i, {'user_id': user, 'label': label, 'text': text}


class FedmetaTestSpeeches(tfds.core.GeneratorBasedBuilder):
  """Unlabelled texts with a `speaker_id`, from `manual_dir/speeches.tsv`."""

  VERSION = tfds.core.Version('1.0.0')
  MANUAL_DOWNLOAD_INSTRUCTIONS = 'speeches.tsv: split, speaker, text.'

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, features=tfds.features.FeaturesDict({
            'speaker_id': tfds.features.Text(),
            'text': tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    rows = [line.split('\t') for line in (
        dl_manager.manual_dir / 'speeches.tsv').read_text().splitlines()]
    return {split: self._generate_examples([r for r in rows if r[0] == split])
            for split in ('train', 'test')}

  def _generate_examples(self, rows):
    for i, (_, speaker, text) in enumerate(rows):
      yield i, {'speaker_id': speaker, 'text': text}


@absltest.skipUnless(os.path.isfile(SHAKESPEARE),
                     'needs ../shared/data/shakespeare/tinyshakespeare.txt')
class TinyShakespeareTest(parameterized.TestCase):
  """TFDS's tiny_shakespeare, prepared from the real file via manual_dir."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data_dir = temp_dir(cls)
    manual = temp_dir(cls)
    # The file name TFDS's registered checksums give the download.
    (info,) = tfds.builder_cls('tiny_shakespeare').url_infos.values()
    shutil.copy(SHAKESPEARE, os.path.join(manual, info.filename))
    cls.task = tfds_task.load('tiny_shakespeare', data_dir=cls.data_dir,
                              manual_dir=manual, partition='chunks',
                              num_clients=4)
    with open(SHAKESPEARE, encoding='utf-8') as f:
      cls.text = f.read()

  def load(self, **kwargs):
    return tfds_task.load('tiny_shakespeare', data_dir=self.data_dir,
                          **kwargs)

  def test_prepared_splits_are_90_5_5(self):
    builder = tfds.builder('tiny_shakespeare', data_dir=self.data_dir)
    self.assertTrue(builder.is_prepared())
    lengths = {split: len(next(iter(tfds.as_numpy(
        builder.as_dataset(split=split))))['text'])
               for split in ('train', 'validation', 'test')}
    self.assertEqual(lengths, {'train': 1_003_854, 'validation': 55_770,
                               'test': 55_770})
    self.assertEqual(sum(lengths.values()), len(self.text))

  def test_chunks_are_contiguous_equal_parts(self):
    self.assertEqual(self.task.name, 'tfds:tiny_shakespeare')
    ids = [f'client_{i:04d}' for i in range(4)]
    self.assertEqual(list(self.task.train.client_ids), ids)
    self.assertEqual(list(self.task.test.client_ids), ids)
    spec = self.task.train.element_type_structure
    self.assertEqual((spec['x'].shape, spec['x'].dtype, spec['y'].shape),
                     ((80,), tf.int32, ()))
    sizes = [int(self.task.train.create_tf_dataset_for_client(c)
                 .cardinality()) for c in ids]
    # 1,003,854 characters in chunks of 250,964 x 2 and 250,963 x 2.
    self.assertEqual(sizes, [250_884, 250_884, 250_883, 250_883])
    self.assertEqual(testing.client_sizes(self.task.test),
                     [13_863, 13_863, 13_862, 13_862])
    for client, start in (('client_0000', 0), ('client_0001', 250_964)):
      batch = first_batch(self.task.train, client, 3)
      for i in range(3):
        np.testing.assert_array_equal(
            batch['x'][i], encoded(self.text[start + i:start + i + 80]))
        self.assertEqual(batch['y'][i], encoded(self.text[start + i + 80]))
    test_start = 1_003_854 + 55_770
    batch = first_batch(self.task.test, 'client_0000', 1)
    np.testing.assert_array_equal(
        batch['x'][0], encoded(self.text[test_start:test_start + 80]))

  def test_iid_windows_capped_and_seeded(self):
    task = self.load(partition='iid', num_clients=3, max_examples=1000)
    self.assertEqual(testing.client_sizes(task.train), [334, 333, 333])
    self.assertEqual(testing.client_sizes(task.test), [334, 333, 333])
    pooled = np.concatenate([testing.client_arrays_of(task.train, c)['x']
                             for c in task.train.client_ids])
    # The first 1,000 windows of the training text, dealt out.
    starts = {self.text.index(''.join(shakespeare.VOCABULARY[i] for i in x))
              for x in pooled[:5]}
    self.assertLess(max(starts), 1000)

    def first_x(seed):
      return testing.client_arrays_of(
          self.load(partition='iid', num_clients=3, max_examples=1000,
                    seed=seed).train, 'client_0000')['x']

    np.testing.assert_array_equal(first_x(0), first_x(0))
    self.assertFalse(np.array_equal(first_x(0), first_x(1)))

  def test_model_step(self):
    before, after = model_step(self.task.model_fn(),
                               first_batch(self.task.train, 'client_0002'))
    self.assertTrue(np.isfinite(before))
    self.assertLess(after, before)

  @parameterized.parameters(
      ({}, r'partition: tfds:tiny_shakespeare has no natural client feature '
           r'\(none of client_id, .*\); pass client_feature or a partition '
           r'of chunks, iid with num_clients'),
      ({'partition': 'dirichlet', 'num_clients': 3},
       'partition: dirichlet needs class labels'),
      ({'partition': 'chunks', 'num_clients': 3, 'sequence_length': 40},
       "sequence_length: next-character .* LEAF's model, which takes 80"),
      ({'partition': 'chunks', 'num_clients': 13_000},
       'num_clients: 13000 chunks of the 1003854 characters of split '
       "'train' of tfds:tiny_shakespeare are shorter than 81"),
      ({'partition': 'chunks', 'num_clients': 2, 'split_test': 'valid'},
       "split_test: tfds:tiny_shakespeare has no split 'valid'; splits: "
       'train, validation, test'),
  )
  def test_bad_options(self, kwargs, message):
    with self.assertRaisesRegex(DataError, message) as raised:
      self.load(**kwargs)
    self.assertNotIn('\n', str(raised.exception))


class OmniglotTest(parameterized.TestCase):
  """TFDS's omniglot builder, prepared from small zips the test writes."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data_dir = temp_dir(cls)
    cls.manual = temp_dir(cls)
    for name, alphabets, drawers in (
        ('images_background', BACKGROUND, 2),
        ('images_evaluation', EVALUATION, 1),
        ('images_background_small1', BACKGROUND[:2], 1),
        ('images_background_small2', BACKGROUND[2:4], 1)):
      write_omniglot_zip(f'{cls.manual}/{name}.zip', alphabets, drawers)
    cls.task = tfds_task.load('omniglot', data_dir=cls.data_dir,
                              manual_dir=cls.manual, client_feature='alphabet')

  def load(self, **kwargs):
    return tfds_task.load('omniglot', data_dir=self.data_dir, **kwargs)

  def test_natural_clients_are_alphabets(self):
    self.assertEqual(self.task.name, 'tfds:omniglot')
    self.assertEqual(list(self.task.train.client_ids),
                     [a for a, _ in BACKGROUND])
    self.assertEqual(list(self.task.test.client_ids),
                     [a for a, _ in EVALUATION])
    self.assertEqual(testing.client_sizes(self.task.train),
                     [2 * len(labels) for _, labels in BACKGROUND])
    self.assertEqual(testing.client_sizes(self.task.test),
                     [len(labels) for _, labels in EVALUATION])
    self.assertEqual(testing.client_sizes(self.task.train)[:5],
                     [66, 66, 66, 66, 64])
    self.assertIsNone(self.task.examples_per_class)

  def test_images_and_labels(self):
    spec = self.task.train.element_type_structure
    self.assertEqual((spec['x'].shape, spec['x'].dtype, spec['y'].dtype),
                     ((105, 105, 3), tf.float32, tf.int32))
    alphabet, labels = BACKGROUND[7]
    arrays = testing.client_arrays_of(self.task.train, alphabet)
    np.testing.assert_array_equal(np.sort(arrays['y']),
                                  np.repeat(labels, 2))
    x = arrays['x']
    self.assertEqual((x.min(), x.max()), (0.0, 1.0))
    np.testing.assert_array_equal(x[:, 40:60, 40:60], 0.0)
    np.testing.assert_array_equal(x[:, 50, 10], 1.0)
    np.testing.assert_allclose(x[:, 0, 0, 0] * 255, arrays['y'] % 251,
                               atol=1e-3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # Gray as RGB.

  def test_dirichlet_partition_and_iid_test_clients(self):
    task = self.load(partition='dirichlet', num_clients=5, alpha=0.3)
    ids = [f'client_{i:04d}' for i in range(5)]
    self.assertEqual(list(task.train.client_ids), ids)
    self.assertEqual(list(task.test.client_ids), ids)
    sizes = testing.client_sizes(task.train)
    self.assertEqual(sum(sizes), 2 * 964)
    self.assertTrue(all(sizes))
    self.assertEqual(testing.client_sizes(task.test), [132, 132, 132, 132, 131])

    def labels(seed):
      return testing.client_arrays_of(
          self.load(partition='dirichlet', num_clients=5, alpha=0.3,
                    seed=seed).train, 'client_0000')['y']

    np.testing.assert_array_equal(labels(0), labels(0))
    self.assertFalse(np.array_equal(labels(0), labels(1)))

  def test_shards_and_max_examples(self):
    task = self.load(partition='shards', num_clients=4, shards_per_client=2,
                     max_examples=200)
    self.assertEqual(testing.client_sizes(task.train), [50, 50, 50, 50])
    self.assertEqual(testing.client_sizes(task.test), [50, 50, 50, 50])
    labels = [np.sort(testing.client_arrays_of(task.train, c)['y'])
              for c in task.train.client_ids]
    # Each client holds two of the 8 shards of the label-sorted examples.
    shards = np.array_split(np.sort(np.concatenate(labels)), 8)
    used = []
    for y in labels:
      pairs = [(i, j) for i in range(8) for j in range(i + 1, 8)
               if np.array_equal(y, np.sort(np.concatenate(
                   [shards[i], shards[j]])))]
      self.assertNotEmpty(pairs)
      used.extend(pairs[0])
    self.assertCountEqual(used, range(8))

  def test_model_step(self):
    model = self.task.model_fn()
    before, after = model_step(model, first_batch(self.task.train, 'Alpha03'))
    self.assertTrue(np.isfinite(before))
    self.assertLess(after, before)
    self.assertEqual(model.initial_weights[0][-1].shape, (1623,))

  def test_a_prepared_dataset_is_not_prepared_again(self):
    with mock.patch.object(tfds.core.DatasetBuilder, 'download_and_prepare',
                           side_effect=AssertionError('prepared again')):
      task = self.load(manual_dir=self.manual, client_feature='alphabet')
    self.assertEqual(testing.client_sizes(task.train),
                     testing.client_sizes(self.task.train))

  @parameterized.parameters(
      ({}, r'partition: tfds:omniglot has no natural client feature \(none '
           r'of client_id, user_id, speaker_id, writer_id, author\); pass '
           r'client_feature or a partition of iid, dirichlet, shards with '
           r'num_clients'),
      ({'partition': 'dirichlet'},
       r"num_clients: partition='dirichlet' needs num_clients > 0, got 0"),
      ({'partition': 'iid', 'num_clients': 0},
       r"num_clients: partition='iid' needs num_clients > 0"),
      ({'client_feature': 'alphabet', 'num_clients': 3},
       'num_clients: 3 is for a partitioner'),
      ({'partition': 'iid', 'num_clients': 3, 'client_feature': 'alphabet'},
       "client_feature: only for partition='natural'"),
      ({'client_feature': 'writer'},
       "client_feature: tfds:omniglot has no feature 'writer'; features: "
       'image, alphabet, alphabet_char_id, label'),
      ({'partition': 'chunks', 'num_clients': 3},
       'partition: chunks is for next-character text; tfds:omniglot has '
       'labels'),
      ({'partition': 'random', 'num_clients': 3},
       "partition: must be one of natural, iid, dirichlet, shards, chunks, "
       "got 'random'"),
      ({'partition': 'dirichlet', 'num_clients': 3, 'alpha': 0.0},
       'alpha: must be > 0, got 0.0'),
      ({'partition': 'iid', 'num_clients': 3, 'max_examples': -1},
       r'max_examples: must be >= 0 \(0: all\), got -1'),
      ({'partition': 'iid', 'num_clients': 3, 'split_train': 'small3'},
       "split_train: tfds:omniglot has no split 'small3'; splits: "),
  )
  def test_bad_options(self, kwargs, message):
    with self.assertRaisesRegex(DataError, message) as raised:
      self.load(**kwargs)
    self.assertNotIn('\n', str(raised.exception))

  def test_unknown_dataset(self):
    with self.assertRaisesRegex(
        DataError, r"name: no TFDS dataset 'omniglott'; close names: "
                   r'omniglot\b') as raised:
      tfds_task.load('omniglott', data_dir=self.data_dir)
    self.assertNotIn('\n', str(raised.exception))

  def test_bad_version(self):
    with self.assertRaisesRegex(
        DataError, "name: 'omniglot:9.9.9': .* cannot be loaded at version "
                   '9.9.9, only: 3.0.0'):
      tfds_task.load('omniglot:9.9.9', data_dir=self.data_dir)

  def test_unprepared_dataset_offline(self):
    data_dir = temp_dir(self)
    with mock.patch.object(gcs_utils, 'exists',
                           side_effect=AssertionError('GCS looked up')):
      with self.assertRaisesRegex(
          DataError, f'tfds:mnist: not prepared in {data_dir}; pass '
                     r'manual_dir \(a folder with its source files\) or '
                     'download=True'):
        tfds_task.load('mnist', data_dir=data_dir)
    # Restored after the load.
    self.assertFalse(gcs_utils._is_gcs_disabled)  # pylint: disable=W0212
    empty = temp_dir(self)
    with self.assertRaisesRegex(
        DataError, f'manual_dir: {empty} lacks t10k-images-idx3-ubyte.gz, '
                   r't10k-labels-idx1-ubyte.gz, .* \(the files TFDS fetches '
                   'for tfds:mnist\\); add them or pass download=True'):
      tfds_task.load('mnist', data_dir=data_dir, manual_dir=empty)
    with self.assertRaisesRegex(DataError,
                                f'manual_dir: {data_dir}/none does not exist'):
      tfds_task.load('mnist', data_dir=data_dir,
                     manual_dir=f'{data_dir}/none')
    self.assertFalse(os.path.exists(f'{data_dir}/mnist'))

  def test_download_is_passed_to_tfds(self):
    data_dir = temp_dir(self)
    # GCS stays off regardless: tests never reach the network.
    with (mock.patch.object(gcs_utils, '_is_gcs_disabled', True),
          mock.patch.object(tfds.core.DatasetBuilder, 'download_and_prepare',
                            side_effect=OSError('no network')) as prepare,
          self.assertRaisesRegex(
              DataError, 'tfds:mnist: preparing it failed: no network')):
      tfds_task.load('mnist', data_dir=data_dir, download=True)
    config = prepare.call_args.kwargs['download_config']
    self.assertTrue(config.try_download_gcs)
    self.assertIsNone(config.manual_dir)


class TextTest(absltest.TestCase):
  """Builders of labelled and unlabelled texts with client features."""

  REVIEWS = (('train', 'ann', 'pos', 'Good.'),
             ('train', 'ann', 'neg', 'Bad, really quite bad: zero stars.'),
             ('train', 'ann', 'pos', 'Fine'),
             ('train', 'bob', 'neg', 'No$'),
             ('train', 'bob', 'pos', 'Yes'),
             ('test', 'ann', 'neg', 'Meh.'),
             ('test', 'cy', 'pos', 'Nice one'))
  SPEECHES = (('train', 'A', 'a' * 60),
              ('train', 'A', 'b' * 50),
              ('train', 'B', 'c' * 85),
              ('train', 'C', 'too short'),
              ('test', 'A', 'd' * 81),
              ('test', 'B', 'e' * 90))

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data_dir = temp_dir(cls)
    cls.manual = temp_dir(cls)
    for name, rows in (('reviews', cls.REVIEWS),
                       ('speeches', cls.SPEECHES)):
      with open(f'{cls.manual}/{name}.tsv', 'w') as f:
        f.write('\n'.join('\t'.join(row) for row in rows))
    cls.reviews = tfds_task.load('fedmeta_test_reviews', data_dir=cls.data_dir,
                                 manual_dir=cls.manual, sequence_length=12)

  def test_reviews_by_user_with_padded_characters(self):
    task = self.reviews
    self.assertEqual(list(task.train.client_ids), ['ann', 'bob'])
    self.assertEqual(list(task.test.client_ids), ['ann', 'cy'])
    self.assertEqual(testing.client_sizes(task.train), [3, 2])
    bob = testing.client_arrays_of(task.train, 'bob')
    pad = [tfds_task.PAD] * 9
    # '$' is outside LEAF's vocabulary.
    expected = {(tuple(encoded('No')) + (shakespeare.OOV,) + tuple(pad), 0),
                (tuple(encoded('Yes')) + tuple(pad), 1)}
    self.assertEqual({(tuple(x), y) for x, y in zip(bob['x'], bob['y'])},
                     expected)
    ann = testing.client_arrays_of(task.train, 'ann')
    self.assertIn(tuple(encoded('Bad, really ')), {tuple(x) for x in ann['x']})
    self.assertEqual(sorted(ann['y']), [0, 1, 1])

  def test_reviews_model_step(self):
    model = self.reviews.model_fn()
    before, after = model_step(model, first_batch(self.reviews.train, 'ann'))
    self.assertTrue(np.isfinite(before))
    self.assertLess(after, before)
    self.assertEqual(model.initial_weights[0][0].shape,
                     (tfds_task.PAD + 1, tfds_task.EMBEDDING))

  def test_speeches_by_speaker(self):
    task = tfds_task.load('fedmeta_test_speeches', data_dir=self.data_dir,
                          manual_dir=self.manual)
    # C's 9 characters make no window; A's two speeches are joined.
    self.assertEqual(list(task.train.client_ids), ['A', 'B'])
    self.assertEqual(testing.client_sizes(task.train),
                     [60 + 1 + 50 - 80, 85 - 80])
    self.assertEqual(testing.client_sizes(task.test), [1, 10])
    a = testing.client_arrays_of(task.train, 'A')
    stream = ''.join(shakespeare.VOCABULARY[i] for i in a['x'][0]) + ''.join(
        shakespeare.VOCABULARY[i] for i in a['y'])
    # TFDS shuffles examples when it prepares them.
    self.assertIn(stream, ('a' * 60 + '\n' + 'b' * 50,
                           'b' * 50 + '\n' + 'a' * 60))
    capped = tfds_task.load('fedmeta_test_speeches', data_dir=self.data_dir,
                            max_examples=12)
    self.assertEqual(list(capped.train.client_ids), ['A'])
    self.assertEqual(testing.client_sizes(capped.train), [12])
    self.assertEqual(testing.client_sizes(capped.test), [1, 10])

  def test_labelled_text_takes_no_chunks(self):
    with self.assertRaisesRegex(DataError, 'partition: chunks is for '
                                'next-character text'):
      tfds_task.load('fedmeta_test_reviews', data_dir=self.data_dir,
                     partition='chunks', num_clients=2)


if __name__ == '__main__':
  absltest.main()
