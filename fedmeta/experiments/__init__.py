"""fedmeta's experiment runner (`run`), its training loop, the demo, the
speed benchmarks and the reproduction studies. `python -m experiments.<name>`
from the checkout runs the same modules (`experiments/`)."""

import os

# The checkout, whose experiments/configs/ the demo, benchmarks and studies
# read their flag files from (relative paths, so commands run in it).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
