"""Shakespeare's plays as (play, role) -> speech, from Project Gutenberg texts.

The parse behind LEAF's Shakespeare clients (Caldas et al. 2018, "LEAF: A
Benchmark for Federated Settings", https://arxiv.org/abs/1812.01097; after
the Shakespeare task of McMahan et al. 2017, "Communication-Efficient
Learning of Deep Networks from Decentralized Data",
https://arxiv.org/abs/1602.05629), for Project Gutenberg's 1998 etexts of
one work per file (`*_gut.txt`: title, "by William Shakespeare", dramatis
personae, the play). LEAF parses Gutenberg's one-file complete works
instead, whose speeches start on their speaker's line (`  HAMLET. To
be...`); here a speaker line is the role's name alone (`Ham.`, `THESEUS`).
Rules, per file:

- Title: the last non-blank line before the first "by William Shakespeare"
  line (LEAF's rule too); a Gutenberg header above it is passed over.
- The play starts at its first `ACT I` (`ACT 1`, `ACT FIRST`), `PROLOGUE`
  or `INDUCTION` heading; the lines between the byline and it are the
  dramatis personae. A file without such a heading (the sonnets, the poems)
  has no play, unless it has a personae heading (`DRAMATIS PERSONAE`,
  `PERSONS REPRESENTED`): then it is malformed.
- Stage directions are cut: `[...]` within a line or over lines, nested
  (`[Enter [Alice,] a Gentlewoman.]`), `{` and `}` read as the misprinted
  brackets they are, a `]` with none open dropped, and a direction missing
  its `]` ended with its paragraph. A speech goes on after a direction.
- Headings end the current speech and are skipped: `ACT n` and `SCENE n`
  with the rest of their paragraph (a wrapped place), a one-line paragraph
  right after any heading (the place: `Westminster Abbey.`), `THE END`,
  `DUMB SHOW`, and `PROLOGUE`, `EPILOGUE` or `INDUCTION` followed by a blank
  line (followed by a speech, they are its speaker). Song labels (`SONG`),
  stanza numerals (`II.`) and lines with no letter or digit (`@@@`) are
  dropped, within a speech or not.
- A speaker line, at the start of a paragraph (after a blank line, a
  direction or a heading), is a name of at most four words, each
  capitalized (or `and`, `of`, `&`), ending in a period or all capitals:
  `Ber.`, `1 Clown.`, `Ros. and Guil.`, `FIRST LORD.`, `THESEUS`. In the
  middle of a paragraph, an all-capitals name that starts a paragraph
  elsewhere in the play is one too (a missing blank line: `CITIZENS.`). A
  paragraph whose first line is a speaker's all-capitals name, a period
  and text neither starting lower case nor all capitals (`ALL. Amen.`) is
  that speaker's speech from that text on. Text before any speaker (a
  prologue whose speaker line is missing) is dropped, as LEAF drops it.
- A role's name is its speaker line upper-cased (LEAF upper-cases too:
  `SIR Toby` / `SIR TOBY`), periods as spaces, whitespace single
  (`Ros. and Guil.` -> `ROS AND GUIL`).
- Abbreviations merge within a play. A one-word name that is no personae
  name word (a personae line's words before its first `,`, `;`, `:`, `}`,
  ` - ` or double space; a possessive `'S` cut) becomes the longest
  personae name word or one-word speaker name that it is a strict prefix
  of, if all the others it is a prefix of are prefixes of that one (`HAM`
  -> `HAMLET`, `HOR` -> `HORATIO`; `COR` stays: it begins `CORDELIA` and
  `CORNWALL`); a plural (`PRINCES` of `PRINCE`) is a group, no expansion.
  A name of more words becomes the one other speaker name of as many words
  that its words are prefixes of, in order (`I PLAY` -> `I PLAYER`).
- Speech lines are stripped (split verse lines are indented).

Of the 42 files of `shakespeare/plays/`, the 37 plays give 1,366 roles
with 4,261,419 characters of speech (lines joined by newlines). With LEAF's
minimum (3 lines and an 81-character window), 1,140 roles and 4,160,461
windows, where LEAF reports 1,129 users and 4,226,158 samples of its
edition.
"""

import collections
import re
from typing import NamedTuple

from fedmeta.data import task as task_lib

GLOB = '*_gut.txt'
_BYLINE = re.compile(r'by william shakespeare', re.I)
_PERSONAE = re.compile(r'(dramatis personae|persons represented)\b', re.I)
_START = re.compile(r'(act +(i|1|first)|(the )?prologue|induction)\b\.?$',
                    re.I)
_ACT_OR_SCENE = re.compile(
    r'(act|scene) +([ivxl]+|\d+|first|second|third|fourth|fifth)\b', re.I)
_FRAME = re.compile(r'(the )?(prologue|epilogue|induction)\.?', re.I)
_HEADING = re.compile(r'(the end|dumb show)\.?', re.I)
_LABEL = re.compile(r'(?i:(the )?song\.?)|[IVX]+\.?|[^A-Za-z0-9]*')
_NAME = re.compile(r"[A-Z0-9][A-Za-z0-9'&. -]*?")
_NAME_WORD = re.compile(r"[A-Z0-9]|and$|of$|&$")
_INLINE = re.compile(r"([A-Z][A-Z0-9'&. -]*?)\. +(\S.*)")
_BRACKET = re.compile(r'[][{}]')
_PERSONAE_NAME_END = re.compile(r",|}|;|:| - |  ")
_NOT_A_NAME = frozenset(['A', 'AN', 'AND', 'OF', 'THE', 'TO', '&'])
_MAX_NAME_WORDS = 4


class Play(NamedTuple):
  """One play's title and its roles' speech lines, in order."""
  title: str
  roles: dict[str, list[str]]


def read(path: str) -> str:
  """A file's text; bytes that are not UTF-8 raise `DataError` naming the
  file and the line."""
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    return raw.decode('utf-8')
  except UnicodeDecodeError as e:
    line = raw.count(b'\n', 0, e.start) + 1
    raise task_lib.DataError(
        f'{path}: line {line}: not UTF-8 text ({e.reason})') from e


def _role_name(speaker: str) -> str:
  return ' '.join(speaker.rstrip('-').upper().replace('.', ' ').split())


def _is_name(text: str) -> bool:
  name = text.rstrip('-')
  words = name.split()
  return (bool(_NAME.fullmatch(name)) and len(words) <= _MAX_NAME_WORDS
          and all(_NAME_WORD.match(w) for w in words)
          and (name.endswith('.') or name.isupper()))


def _cut_directions(line: str, depth: int) -> tuple[str, int]:
  """`line` stripped, without the stage directions in it, and the depth of
  directions open at its end (`{` and `}` are misprints of brackets)."""
  if depth == 0 and not _BRACKET.search(line):
    return line.strip(), 0
  kept = []
  for char in line:
    if char in '[{':
      depth += 1
    elif char in ']}':
      depth = max(depth - 1, 0)
    elif not depth:
      kept.append(char)
  return ''.join(kept).strip(), depth


class _Line(NamedTuple):
  text: str  # Stripped, directions cut.
  paragraph_start: bool  # After a blank line, a direction or a heading.


def _play_lines(lines: list[str]):
  """Yields the play's `_Line`s, and None for each heading."""
  depth = 0  # Of stage direction brackets.
  in_heading = False  # In the paragraph of an ACT or SCENE heading.
  after_heading = False  # No text or direction since a heading.
  paragraph_start = True
  for i, raw in enumerate(lines):
    if not raw.strip():
      depth = 0  # A direction missing its "]" ends with its paragraph.
    text, depth = _cut_directions(raw, depth)
    if not text:
      after_heading &= not raw.strip()
      in_heading = False
      paragraph_start = True
      continue
    next_blank = i + 1 == len(lines) or not lines[i + 1].strip()
    if in_heading:
      continue
    if (_ACT_OR_SCENE.match(text) or _HEADING.fullmatch(text)
        or (_FRAME.fullmatch(text) and next_blank)):
      in_heading = bool(_ACT_OR_SCENE.match(text))
      after_heading = paragraph_start = True
      yield None
      continue
    if after_heading:
      after_heading = False
      if next_blank:  # A one-line paragraph after a heading: the place.
        continue
    if _LABEL.fullmatch(text):
      continue
    yield _Line(text, paragraph_start)
    paragraph_start = False


def _personae_words(lines: list[str]) -> set[str]:
  """The personae name words, as the module docstring defines them."""
  words = set()
  for line in lines:
    name = _PERSONAE_NAME_END.split(line.strip(), maxsplit=1)[0]
    words.update(w.removesuffix("'S") for w in _role_name(name).split()
                 if w not in _NOT_A_NAME)
  return words


def _longest(prefix: str, names) -> str | None:
  """The longest of `names` that `prefix` is a strict prefix of, if the
  others are its prefixes; else None."""
  longer = sorted((n for n in names if n.startswith(prefix) and n != prefix
                   and n not in (prefix + 'S', prefix + 'ES')), key=len)
  if longer and all(longer[-1].startswith(n) for n in longer):
    return longer[-1]
  return None


def _expansions(speakers: set[str], personae: set[str]) -> dict[str, str]:
  """Speaker name -> its role, as the module docstring's rules merge."""
  single = personae | {s for s in speakers if ' ' not in s}
  roles = {}
  for speaker in speakers:
    words = speaker.split()
    if len(words) == 1:
      role = None if speaker in personae else _longest(speaker, single)
    else:
      matches = [s for s in speakers if s != speaker and len(s.split()) ==
                 len(words) and all(b.startswith(a) for a, b in
                                    zip(words, s.split()))]
      role = matches[0] if len(matches) == 1 else None
    roles[speaker] = role or speaker
  return roles


def parse(text: str, path: str) -> Play | None:
  """One file's play, or None if it has no play (a poem).

  Raises:
    DataError: A personae heading without a play after it, or a play
      without a title and "by William Shakespeare" line before it.
  """
  lines = text.splitlines()
  byline = next((i for i, l in enumerate(lines)
                 if _BYLINE.fullmatch(l.strip())), -1)
  start = next((i for i in range(byline + 1, len(lines))
                if _START.match(lines[i].strip())), None)
  if start is None:
    personae = next((i for i, l in enumerate(lines)
                     if _PERSONAE.match(l.strip())), None)
    if personae is None:
      return None
    raise task_lib.DataError(
        f'{path}: line {personae + 1}: dramatis personae but no ACT I, '
        'PROLOGUE or INDUCTION heading after it')
  title = next((l.strip() for l in reversed(lines[:max(byline, 0)])
                if l.strip()), None)
  if title is None:
    raise task_lib.DataError(
        f'{path}: line {start + 1}: a play without a title and "by William '
        'Shakespeare" line before it')
  items = list(_play_lines(lines[start:]))
  speakers = {_role_name(l.text) for l in items
              if l and l.paragraph_start and _is_name(l.text)}
  roles = _expansions(speakers, _personae_words(lines[byline + 1:start]))
  speeches = collections.defaultdict(list)
  speaker = None
  for line in items:
    if line is None:
      speaker = None
      continue
    inline = _INLINE.fullmatch(line.text) if line.paragraph_start else None
    if inline and _role_name(inline.group(1)) in speakers and not (
        inline.group(2)[0].islower() or inline.group(2).isupper()):
      speaker, text = roles[_role_name(inline.group(1))], inline.group(2)
    elif _is_name(line.text) and (line.paragraph_start or (
        line.text.isupper() and _role_name(line.text) in speakers)):
      speaker = roles[_role_name(line.text)]
      continue
    else:
      text = line.text
    if speaker is not None:
      speeches[speaker].append(text)
  return Play(title.upper(), dict(speeches))
