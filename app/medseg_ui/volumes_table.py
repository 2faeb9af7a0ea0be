"""The volumes table of a segmentation on the Segment and PACS pages: one row per class with
its quality-check remark, then the total of all classes."""

from __future__ import annotations

from typing import Any

import pandas as pd

from medseg.io.display import ml_text
from medseg_ui.text import plain

TOTAL = "total (all classes)"


def frame(seg: Any) -> pd.DataFrame:
    """Rows for ``st.table`` (which renders markdown in cells: names are escaped)."""
    qc = getattr(seg, "qc", None)
    rows = []
    for r in seg.volumes():
        # this class's own findings; those about the whole image are in the banner
        remarks = [f.message for f in qc.findings if f.class_name == r["name"]] \
            if qc is not None else []
        rows.append({"class": plain(r["name"]), "label": str(r["label"]), "voxels": r["voxels"],
                     "volume (mL)": ml_text(r["volume_ml"]),
                     "qc": plain("; ".join(remarks)) if remarks else "ok"})
    volumes = seg.volumes()
    rows.append({"class": TOTAL, "label": "", "voxels": sum(r["voxels"] for r in volumes),
                 "volume (mL)": ml_text(sum(r["volume_ml"] for r in volumes)),
                 "qc": qc.status if qc is not None else ""})
    return pd.DataFrame(rows).set_index("class")
