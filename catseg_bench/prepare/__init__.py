"""`bench prepare`: download, unpack and convert the MESS datasets into the layout their specs describe.

- :mod:`.download` fetches (HTTP with resume, sha256, Google Drive, mirrors);
- :mod:`.extract` unpacks zip / tar / encrypted zip / rar without letting members escape;
- :mod:`.convert` holds MESS's pixel conversions (tiling, colour maps, band composites, ...);
- :mod:`.recipes` has one recipe per dataset, :mod:`.pipeline` runs one safely and verifies it.
"""

from catseg_bench.prepare.pipeline import Outcome, Reporter, prepare_dataset
from catseg_bench.prepare.recipes import RECIPES, get_recipe

__all__ = ["Outcome", "RECIPES", "Reporter", "get_recipe", "prepare_dataset"]
