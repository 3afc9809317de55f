"""curves.png: loss and accuracy against round, train and evaluation."""

import csv
import os
from typing import Iterable, Mapping

# A Figure with no pyplot: draws to files without a display and leaves the
# process's backend (a notebook's inline one, say) alone.
from matplotlib import figure
from matplotlib import ticker

# A panel per quantity, in this order; a column belongs to the first panel
# whose word it contains. Meta-learning evaluation columns end in '/mean'.
_PANELS = ('loss', 'accuracy', 'auc')


def _panel_of(column: str):
  if not column.startswith(('train/', 'eval/')):
    return None
  if column.endswith(('/p10', '/p50', '/p90')):
    return None
  leaf = column.removesuffix('/mean').rsplit('/', 1)[-1]
  return next((p for p in _PANELS if p in leaf), None)


def read_rows(path: str) -> list[dict[str, str]]:
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def plot(rows: Iterable[Mapping[str, str]], path: str,
         round_key: str = 'round') -> list[str]:
  """Draws every train/eval loss, accuracy and AUC column against round.

  Args:
    rows: metrics.csv rows (column -> text; empty where not measured).
    path: The PNG to write; replaced atomically.
    round_key: The round column.

  Returns:
    The columns drawn.
  """
  rows = list(rows)
  columns = sorted({c for r in rows for c in r if _panel_of(c)},
                   key=lambda c: (_PANELS.index(_panel_of(c)), c))
  panels = [p for p in _PANELS if any(_panel_of(c) == p for c in columns)]
  fig = figure.Figure(figsize=(5 * max(len(panels), 1), 3.6))
  axes = fig.subplots(1, max(len(panels), 1), squeeze=False)
  for ax, panel in zip(axes[0], panels):
    for column in columns:
      if _panel_of(column) != panel:
        continue
      points = [(int(r[round_key]), float(r[column])) for r in rows
                if r.get(column) not in (None, '')]
      if points:
        x, y = zip(*points)
        ax.plot(x, y, marker='.' if len(points) < 30 else None,
                linestyle='--' if column.startswith('eval/') else '-',
                label=column)
    ax.set_xlabel('round')
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_ylabel(panel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
  fig.tight_layout()
  tmp = path + '.tmp.png'
  fig.savefig(tmp, dpi=100)
  os.replace(tmp, path)
  return columns
