"""The notebooks run top to bottom (small settings) and are stored clean."""

import os

from absl.testing import absltest
from absl.testing import parameterized
import pytest
import nbclient
import nbformat

from fedmeta.data import files

pytestmark = pytest.mark.slow  # Executes every notebook.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, 'notebooks')
CELL_TIMEOUT_S = 600
# Notebooks that read the real datasets.
NEEDS_DATA = ('few_shot_omniglot.ipynb',)


def _notebooks():
  return sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith('.ipynb'))


class NotebooksTest(parameterized.TestCase):

  def test_there_are_notebooks(self):
    self.assertContainsSubset(
        ['quickstart.ipynb', 'privacy_and_robustness.ipynb',
         'few_shot_omniglot.ipynb'], _notebooks())

  @parameterized.parameters(*_notebooks())
  def test_stored_without_outputs(self, name):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
      if cell.cell_type == 'code':
        self.assertEqual((cell.outputs, cell.execution_count), ([], None))

  @parameterized.parameters(*_notebooks())
  def test_runs_top_to_bottom(self, name):
    if name in NEEDS_DATA and not files.default_data_dir():
      self.skipTest(f'{name} reads ../shared/data (or $FEDMETA_DATA_DIR), '
                    'which this machine lacks')
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    os.environ['FEDMETA_NOTEBOOK_SMALL'] = '1'  # The kernel inherits it.
    # Raises CellExecutionError, with the cell and its traceback, on failure.
    nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name='python3',
        resources={'metadata': {'path': NOTEBOOKS}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == 'code'
               for o in c.outputs]
    self.assertFalse([o for o in outputs if o.output_type == 'error'])
    self.assertTrue([o for o in outputs if 'image/png' in o.get('data', {})])


if __name__ == '__main__':
  absltest.main()
