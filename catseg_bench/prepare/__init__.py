"""`bench prepare`: download, unpack and convert the MESS datasets into the layout their specs describe.

- :mod:`.download` fetches (HTTP with resume, sha256, Google Drive, mirrors);
- :mod:`.extract` unpacks zip / tar / encrypted zip / rar without letting members escape;
- :mod:`.convert` holds MESS's pixel conversions (tiling, colour maps, band composites, ...);
- :mod:`.recipes` has one recipe per dataset, :mod:`.pipeline` runs one safely and verifies it.


The names below load on first use (PEP 562): `bench --help` reads `.download`'s constants without
loading the pipeline (and torch through the data readers).
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "Outcome": "catseg_bench.prepare.pipeline",
    "RECIPES": "catseg_bench.prepare.recipes",
    "Reporter": "catseg_bench.prepare.pipeline",
    "get_recipe": "catseg_bench.prepare.recipes",
    "prepare_dataset": "catseg_bench.prepare.pipeline",
}

__all__ = sorted(_EXPORTS)

INSTALL_EXTRA = 'pip install libarchive-c tifffile scipy pycocotools (the "prepare" extra; from a clone: pip install -e ".[prepare]")'
"""The install line for the packages only some preparations need (no package index serves
catseg-bench yet, so not ``pip install "catseg-bench[prepare]"``)."""


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
