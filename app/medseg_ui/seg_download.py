"""The DICOM SEG download offered for a DICOM input (Segment and PACS pages).

The SEG is written as the CLI's ``--dicom-seg`` writes it (:func:`write_dicom_seg`:
de-identified by PS3.15's Basic Profile with Retain UIDs, the model's segment codes), once per
segmentation, into the session folder; the page offers its bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from medseg.io.dicom import sniff_dicom
from medseg.io.dicom_seg import write_dicom_seg
from medseg_ui import engine
from medseg_ui.session import error_message
from medseg_ui.text import plain


def dicom_folder(path: Path | None) -> Path | None:
    """``path`` when it is a folder holding DICOM files (a bundled series, an extracted zip),
    else None: only such an input has a series for a SEG to reference."""
    if path is None or not Path(path).is_dir():
        return None
    return Path(path) if sniff_dicom(Path(path)) else None


def write_seg(seg: Any, source: Path, target: Path, *, model: str, trust: bool = False) -> Path:
    """The SEG of ``seg`` (on the grid of the DICOM series in ``source``) at ``target``."""
    codes = getattr(engine.segmenter(model, trust=trust), "segment_codes", None)
    return write_dicom_seg(seg, source, target, segment_codes=codes)


def offer(state: Any, *, key: str, seg: Any, source: Path | None, target: Path, model: str,
          trust: bool, file_name: str, hide: dict[str, str]) -> Path | None:
    """A "Download DICOM SEG" button for a DICOM input (a caption saying why not for other
    inputs); the SEG is written once per segmentation (``state['seg_serial']``) and its path
    returned."""
    if source is None:
        st.caption("DICOM SEG: offered for DICOM inputs only (a SEG references its source "
                   "series).")
        return None
    stamp = (state.get("seg_serial", 0), str(source), model)
    cached = state.get(key)
    if cached is None or cached[0] != stamp:
        try:
            path = write_seg(seg, source, target, model=model, trust=trust)
        except Exception as exc:
            cached = (stamp, None, error_message(exc, hide))
        else:
            cached = (stamp, path, None)
        state[key] = cached
    _stamp, path, problem = cached
    if problem is not None:
        st.error(plain(f"DICOM SEG: {problem}"))
        return None
    st.download_button("Download DICOM SEG", Path(path).read_bytes(), file_name,
                       mime="application/dicom", key=f"{key}_button")
    return Path(path)
