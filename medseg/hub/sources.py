"""Where pulled models come from and where they land.

* TotalSegmentator releases: ``<base>/<tag>/<folder>.zip`` with the base
  ``https://github.com/wasserth/TotalSegmentator/releases/download`` (as TotalSegmentator's
  own download does), or ``$MEDSEG_TOTALSEG_URL`` when set (a mirror, an air-gapped site's
  server, a test server). They land in TotalSegmentator's weights folder
  (:func:`medseg.models.totalseg.tasks.weights_dir`), laid out as its own download leaves
  them, so TotalSegmentator can use them too.
* MONAI model-zoo bundles: fetched by ``monai.bundle.download`` from its default source, or
  from ``$MEDSEG_MONAI_ZOO_URL/<name>.zip`` when that is set. They land in the first folder
  of ``$MEDSEG_MODELS_DIR``, else ``~/.medseg/models``: a model folder named after the bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

from medseg.models.catalog import MODELS_DIR_ENV, USER_MODELS_DIR

TOTALSEG_URL_ENV = "MEDSEG_TOTALSEG_URL"
TOTALSEG_RELEASES = "https://github.com/wasserth/TotalSegmentator/releases/download"
MONAI_ZOO_URL_ENV = "MEDSEG_MONAI_ZOO_URL"
TOTALSEG_PREFIX = "totalseg:"
MONAI_PREFIX = "monai:"
#: MONAI model-zoo bundles offered in listings (any zoo name can be pulled)
MONAI_OFFERED = ("spleen_ct_segmentation", "wholeBody_ct_segmentation")


def _base(env: str, default: str | None) -> str | None:
    value = os.environ.get(env, "").strip()
    return value.rstrip("/") if value else default


def totalseg_release_url(tag: str, folder: str) -> str:
    return f"{_base(TOTALSEG_URL_ENV, TOTALSEG_RELEASES)}/{tag}/{folder}.zip"


def monai_bundle_url(name: str) -> str | None:
    """The zip URL for bundle ``name`` when ``$MEDSEG_MONAI_ZOO_URL`` is set; else None (MONAI
    picks its own source)."""
    base = _base(MONAI_ZOO_URL_ENV, None)
    return f"{base}/{name}.zip" if base else None


def pull_models_dir() -> Path:
    """Where pulled MONAI bundles go: the first ``$MEDSEG_MODELS_DIR`` folder, else
    ``~/.medseg/models`` (never the bundled sample models)."""
    env = os.environ.get(MODELS_DIR_ENV, "")
    first = next((p for p in env.split(os.pathsep) if p.strip()), None)
    return Path(first).expanduser() if first else USER_MODELS_DIR.expanduser()
