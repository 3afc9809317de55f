"""Shakespeare's plays by (play, role): the parser and the `plays` source."""

import inspect
import os
import re
import tempfile
from unittest import mock

from absl.testing import absltest
import numpy as np

from fedmeta.data import DataError
from fedmeta.data import files
from fedmeta.data import shakespeare
from fedmeta.data import shakespeare_plays
from tests import testing

DATA = files.default_data_dir() or ''
PLAYS = os.path.join(DATA, 'shakespeare', 'plays')
needs_plays = absltest.skipUnless(os.path.isdir(PLAYS),
                                  'needs ../shared/data/shakespeare/plays')

# Title-case speakers with abbreviations, as the etext of Hamlet has them.
HAMLET = """The Project Gutenberg Etext of Hamlet, by William Shakespeare
*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*



HAMLET, PRINCE OF DENMARK

by William Shakespeare



PERSONS REPRESENTED.

Hamlet, Son to the former King.
Horatio, Friend to Hamlet.
Cordelia, a Lady.
Cornwall, a Duke.
Ghost of Hamlet's Father.

SCENE. Elsinore.



ACT I.

Scene I. Elsinore. A platform before
the Castle.

[Enter Hamlet and Horatio,
meeting.]

Ham.
Who's there?

Hor.
Friends to this ground.
[Aside.] And liegemen to the Dane.

Hamlet.
   Give you good night.

[Exit Horatio.]

Stay, illusion!

Cor.
Cordelia or Cornwall? [Laughs.]

I Play.
What speech, my lord?

I Player.
Anon he finds him.

Scene II. A room.

Elsinore.

These words have
no speaker.

[Enter Hamlet.]

Ham.
O, that this too too solid flesh would melt,
Thaw, and resolve itself into a dew!
"""
HAMLET_ROLES = {
    'HAMLET': ["Who's there?", 'Give you good night.', 'Stay, illusion!',
               'O, that this too too solid flesh would melt,',
               'Thaw, and resolve itself into a dew!'],
    'HORATIO': ['Friends to this ground.', 'And liegemen to the Dane.'],
    'COR': ['Cordelia or Cornwall?'],  # A prefix of two names: kept.
    'I PLAYER': ['What speech, my lord?', 'Anon he finds him.'],
}

# Capitals, names without periods, as in A Midsummer Night's Dream.
DREAM = """A MIDSUMMER NIGHT'S DREAM

by William Shakespeare

Persons Represented.

THESEUS, Duke of Athens.
QUINCE, a Carpenter.

INDUCTION

[Enter QUINCE.]

QUINCE
If we offend, it is with our good will.

ACT 1

SCENE 1

[Enter THESEUS [and HIPPOLYTA,] with others.]

THESEUS
Now, fair Hippolyta,
      SONG.
        I.
our nuptial hour draws on apace.
@@@

ALL.
Ay, ay.

ALL. Amen.

QUINCE. {Aside.]
Is all our company here?
THESEUS.
You were best to call them. [Exeunt

PROLOGUE
Gentles, perchance you wonder at this show.

EPILOGUE

This epilogue has
no speaker.

THE END
"""
DREAM_ROLES = {
    'QUINCE': ['If we offend, it is with our good will.',
               'Is all our company here?'],
    'THESEUS': ['Now, fair Hippolyta,', 'our nuptial hour draws on apace.',
                'You were best to call them.'],
    'ALL': ['Ay, ay.', 'Amen.'],
    'PROLOGUE': ['Gentles, perchance you wonder at this show.'],
}

SONNETS = """THE SONNETS
by William Shakespeare

I

From fairest creatures we desire increase,
That thereby beauty's rose might never die,
"""

# Two roles of 20 lines of 39 characters: 799 characters each.
LONG = ('THE LONG PLAY\n\nby William Shakespeare\n\nACT I.\n\n'
        + ''.join(f'{name}.\n' + ('a' * 39 + '\n') * 20 + '\n'
                  for name in ('ROMEO', 'JULIET')))


def write(folder: str, name: str, text: str, newline: str = '\n') -> str:
  path = os.path.join(folder, name)
  with open(path, 'wb') as f:
    f.write(text.replace('\n', newline).encode('utf-8'))
  return path


class ParserTest(absltest.TestCase):

  def test_title_case_play_with_abbreviations_and_crlf(self):
    path = write(tempfile.mkdtemp(), 'hamlet_gut.txt', HAMLET,
                 newline='\r\n')
    play = shakespeare_plays.parse(shakespeare_plays.read(path), path)
    self.assertEqual(play.title, 'HAMLET, PRINCE OF DENMARK')
    self.assertEqual(play.roles, HAMLET_ROLES)

  def test_capitals_songs_inline_speakers_and_frames(self):
    play = shakespeare_plays.parse(DREAM, 'dream_gut.txt')
    self.assertEqual(play.title, "A MIDSUMMER NIGHT'S DREAM")
    self.assertEqual(play.roles, DREAM_ROLES)

  def test_text_without_a_play_has_no_roles(self):
    self.assertIsNone(shakespeare_plays.parse(SONNETS, 'sonnets_gut.txt'))

  def test_malformed_files_name_the_file_and_line(self):
    folder = tempfile.mkdtemp()
    bad = os.path.join(folder, 'bad_gut.txt')
    with open(bad, 'wb') as f:
      f.write(b'A PLAY\n\nby William Shakespeare \xff\n')
    cases = [
        (lambda: shakespeare_plays.read(bad),
         f'{re.escape(bad)}: line 3: not UTF-8 text'),
        (lambda: shakespeare_plays.parse(
            'A PLAY\n\nby William Shakespeare\n\nDramatis Personae\n\n'
            'KING, a king.\n', 'a_gut.txt'),
         'a_gut.txt: line 5: dramatis personae but no ACT I'),
        (lambda: shakespeare_plays.parse('ACT I.\n\nKING.\nHo!\n',
                                         'b_gut.txt'),
         'b_gut.txt: line 1: a play without a title'),
    ]
    for call, message in cases:
      with self.assertRaisesRegex(DataError, message) as caught:
        call()
      self.assertNotIn('\n', str(caught.exception))


class LoadTest(absltest.TestCase):

  def folder(self, *texts: tuple[str, str]) -> str:
    root = tempfile.mkdtemp()
    plays = os.path.join(root, 'shakespeare', 'plays')
    os.makedirs(plays)
    for name, text in texts:
      write(plays, name, text)
    return root

  def test_clients_are_play_roles_with_leaf_ids(self):
    root = self.folder(('long_gut.txt', LONG), ('hamlet_gut.txt', HAMLET),
                       ('sonnets_gut.txt', SONNETS))
    cache = tempfile.mkdtemp()
    for data_dir in (root, f'{root}/shakespeare',
                     f'{root}/shakespeare/plays'):
      task = shakespeare.load(data_dir, cache_dir=cache)
      # Hamlet's roles have fewer than 10 lines; the long play's are cut
      # at round(0.8 * 799) = 639 of their 799 characters.
      self.assertEqual(list(task.train.client_ids),
                       ['THE_LONG_PLAY_JULIET', 'THE_LONG_PLAY_ROMEO'])
      self.assertEqual(testing.client_sizes(task.train), [639 - 80] * 2)
      self.assertEqual(testing.client_sizes(task.test), [160 - 80] * 2)
    self.assertEqual(
        shakespeare.client_id('HAMLET, PRINCE OF DENMARK', 'I PLAYER'),
        'HAMLET__PRINCE_OF_DENMARK_I_PLAYER')

  def test_min_lines(self):
    root = self.folder(('hamlet_gut.txt', HAMLET), ('long_gut.txt', LONG))
    long_roles = ['THE_LONG_PLAY_JULIET', 'THE_LONG_PLAY_ROMEO']
    # Held-out roles keep roles of one window: Hamlet's 5 lines make one.
    for min_lines, ids in [
        (5, long_roles + ['HAMLET__PRINCE_OF_DENMARK_HAMLET']),
        (6, long_roles)]:
      task = shakespeare.load(root, min_lines=min_lines, heldout_roles=0.5,
                              cache_dir=tempfile.mkdtemp())
      self.assertCountEqual(
          list(task.train.client_ids) + list(task.test.client_ids), ids)
    with self.assertRaisesRegex(DataError,
                                'plays: no role of a play has 21 lines'):
      shakespeare.load(root, min_lines=21, cache_dir=tempfile.mkdtemp())

  def test_cache_is_used_and_a_changed_file_is_read_again(self):
    root = self.folder(('long_gut.txt', LONG))
    cache = tempfile.mkdtemp()
    first = shakespeare.load(root, cache_dir=cache)
    with mock.patch.object(shakespeare_plays, 'parse',
                           side_effect=AssertionError('parsed again')):
      again = shakespeare.load(root, cache_dir=cache)
    self.assertEqual(list(again.train.client_ids),
                     list(first.train.client_ids))
    write(f'{root}/shakespeare/plays', 'long_gut.txt',
          LONG.replace('ROMEO', 'PARIS'))
    changed = shakespeare.load(root, cache_dir=cache)
    self.assertEqual(list(changed.train.client_ids),
                     ['THE_LONG_PLAY_JULIET', 'THE_LONG_PLAY_PARIS'])

  def test_errors(self):
    empty = tempfile.mkdtemp()
    with self.assertRaisesRegex(DataError,
                                f'{re.escape(empty)}: no Shakespeare plays'):
      shakespeare.load(empty)
    with self.assertRaisesRegex(DataError, "source: must be one of plays, "
                                "tiny, got 'folio'"):
      shakespeare.load(empty, source='folio')
    root = self.folder(('hamlet_gut.txt', HAMLET))
    with self.assertRaisesRegex(DataError, 'plays: no role long enough'):
      shakespeare.load(root, min_lines=1,
                       cache_dir=tempfile.mkdtemp())


@needs_plays
class RealPlaysTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.cache = tempfile.mkdtemp()
    cls.plays = {}
    for name in sorted(os.listdir(PLAYS)):
      if name.endswith('_gut.txt'):
        path = os.path.join(PLAYS, name)
        cls.plays[name] = shakespeare_plays.parse(
            shakespeare_plays.read(path), path)
    cls.task = shakespeare.load(DATA, cache_dir=cls.cache)

  def test_plays_roles_and_characters_against_leaf(self):
    plays = {n: p for n, p in self.plays.items() if p is not None}
    # 42 files: 37 plays (the data README says 36), the sonnets, 4 poems.
    self.assertLen(self.plays, 42)
    self.assertLen(plays, 37)
    self.assertCountEqual(
        set(self.plays) - set(plays),
        ['sonnets_gut.txt', 'lovers_complaint_gut.txt',
         'passionate_pilgrim_gut.txt', 'phoenix_and_the_turtle_gut.txt',
         'rape_of_lucrece_gut.txt'])
    texts = ['\n'.join(lines) for p in plays.values()
             for lines in p.roles.values()]
    self.assertLen(texts, 1366)
    self.assertEqual(sum(map(len, texts)), 4_261_419)
    # LEAF keeps roles of 3 lines or more with an 80-character window:
    # 1,129 users and 4,226,158 windows (samples) of its edition.
    leaf = [len(t) for p in plays.values() for lines in p.roles.values()
            if len(lines) >= 3 and len(t := '\n'.join(lines)) > 80]
    self.assertLen(leaf, 1140)
    self.assertEqual(sum(n - 80 for n in leaf), 4_160_461)
    self.assertLess(abs(len(leaf) / 1129 - 1), 0.25)
    self.assertLess(abs(sum(n - 80 for n in leaf) / 4_226_158 - 1), 0.25)

  def test_hamlet_roles(self):
    roles = self.plays['hamlet_gut.txt'].roles
    # The etext abbreviates Hamlet only as 'Ham.'; the personae expand it.
    self.assertNotIn('HAM', roles)
    self.assertLen(roles['HAMLET'], 1420)
    self.assertEqual(roles['HAMLET'][0],
                     'A little more than kin, and less than kind!')
    for abbreviation, role in [('HOR', 'HORATIO'), ('POL', 'POLONIUS'),
                               ('ROS', 'ROSENCRANTZ')]:
      self.assertNotIn(abbreviation, roles)
      self.assertIn(role, roles)
    lear = self.plays['lear_gut.txt'].roles
    self.assertIn('COR', lear)  # Cordelia or Cornwall: not expanded.
    self.assertIn('CORNWALL', lear)  # From 'Corn.'.

  def test_default_source_is_plays(self):
    self.assertEqual(
        inspect.signature(shakespeare.load).parameters['source'].default,
        'plays')
    ids = list(self.task.train.client_ids)
    self.assertEqual(list(self.task.test.client_ids), ids)
    self.assertLen(ids, 848)
    self.assertIn('HAMLET__PRINCE_OF_DENMARK_HAMLET', ids)
    sizes = np.array([int(self.task.train.create_tf_dataset_for_client(c)
                          .cardinality()) for c in ids])
    self.assertEqual((sizes.sum(), sizes.min(), int(np.median(sizes)),
                      sizes.max()), (3_279_683, 244, 1688, 49_105))
    first = next(iter(self.task.train.create_tf_dataset_for_client(
        'HAMLET__PRINCE_OF_DENMARK_HAMLET')))
    text = ''.join(shakespeare.VOCABULARY[i] for i in first['x'].numpy())
    self.assertEqual(text[:44], 'A little more than kin, and less than kind!\n')

  def test_heldout_roles_are_seeded(self):
    draws = [set(shakespeare.load(DATA, heldout_roles=0.1, seed=seed,
                                  cache_dir=self.cache).test.client_ids)
             for seed in (0, 0, 1)]
    self.assertEqual(draws[0], draws[1])
    self.assertNotEqual(draws[0], draws[2])
    self.assertLen(draws[0], 88)

  def test_tiny_source_keeps_its_192_speakers(self):
    task = shakespeare.load(DATA, source='tiny', cache_dir=self.cache)
    self.assertLen(task.train.client_ids, 192)
    self.assertIn('MENENIUS', task.train.client_ids)

  def test_model_runs_on_a_batch(self):
    batch = next(iter(self.task.train.create_tf_dataset_for_client(
        'HAMLET__PRINCE_OF_DENMARK_HAMLET').batch(4)))
    model = shakespeare.model_fn()
    logits = model.predict_on_batch(model.initial_weights, batch['x'])
    self.assertEqual(logits.shape, (4, shakespeare.VOCABULARY_SIZE))
    self.assertTrue(np.isfinite(float(model.loss(logits, batch['y']))))


if __name__ == '__main__':
  absltest.main()
