"""The app's calls into the engine: cached registry and segmenters, samples, inputs, outputs.

Heavy objects are cached with ``st.cache_resource`` (shared by all sessions, read-only);
everything a user loads or produces is returned to the page, which keeps it in
``st.session_state``.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from medseg.bundle import CONFIG_NAME, Bundle, list_bundles, load_bundle, resolve_bundle_path
from medseg.errors import InputError
from medseg.inference import InferenceSettings, Segmentation, Segmenter
from medseg.io import read_image, read_label_map, write_image
from medseg.io.archive import safe_extract_zip
from medseg.registry import Registry, load_registry
from medseg.volume import LabelMap, Volume

SAMPLE_ROOT = Path(__file__).resolve().parents[2] / "sample_data"


@st.cache_resource(show_spinner=False)
def registry() -> Registry:
    return load_registry()


def models_dir() -> str:
    return os.environ.get("MEDSEG_MODELS_DIR", "")


def bundles() -> list[str]:
    return list_bundles()


def _version(name: str) -> str:
    """Cache key part that changes when a bundle is rewritten (retrained in place)."""
    try:
        config = resolve_bundle_path(name) / CONFIG_NAME
        return f"{models_dir()}|{config.stat().st_mtime_ns}"
    except (OSError, InputError):
        return models_dir()


@st.cache_resource(show_spinner=False, max_entries=8)
def _bundle(name: str, version: str) -> Bundle:
    # ``version`` is part of the cache key only (no leading underscore: Streamlit hashes it)
    return load_bundle(name, registry())


def bundle(name: str) -> Bundle:
    return _bundle(name, _version(name))


@st.cache_resource(show_spinner=False, max_entries=4)
def _segmenter(name: str, version: str, overlap: float, mirror: bool, fast: bool,
               postprocessors: tuple[str, ...]) -> Segmenter:
    settings = InferenceSettings(overlap=overlap, mirror=mirror, fast=fast,
                                 postprocessors=[(p, {}) for p in postprocessors])
    return Segmenter(_bundle(name, version), settings, registry())


def segmenter(name: str, *, overlap: float = 0.25, mirror: bool = False, fast: bool = False,
              postprocessors: tuple[str, ...] = ()) -> Segmenter:
    return _segmenter(name, _version(name), float(overlap), bool(mirror), bool(fast),
                      tuple(postprocessors))


# ---- samples --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """A bundled input: a test image (with its reference label when there is one) or DICOM."""

    title: str
    path: Path
    case: str
    reference: Path | None = None


def samples(root: Path = SAMPLE_ROOT) -> list[Sample]:
    out: list[Sample] = []
    for ds in sorted(root.glob("Dataset*")):
        for img in sorted((ds / "imagesTs").glob("*.nii.gz")):
            case = img.name[: -len(".nii.gz")]
            case = case[: -len("_0000")] if case.endswith("_0000") else case
            ref = ds / "labelsTs" / f"{case}.nii.gz"
            out.append(Sample(f"{ds.name.split('_', 1)[-1]} / {case}", img, case,
                              ref if ref.is_file() else None))
    for series in sorted((root / "dicom").glob("*")):
        if series.is_dir():
            out.append(Sample(f"DICOM series / {series.name}", series, series.name))
    return out


# ---- inputs ---------------------------------------------------------------------------------
def read_input(path: Path, work: Path) -> Volume:
    """Read an uploaded or sample image; a zip is a DICOM series (or one image) extracted into
    ``work`` with :func:`safe_extract_zip`."""
    if path.is_file() and path.name.lower().endswith(".zip"):
        files = safe_extract_zip(path, work)
        if not files:
            raise InputError(path, "zip archive holds no files")
        images = [f for f in files if not f.name.lower().endswith(".dcm")
                  and any(f.name.lower().endswith(s) for s in (".nii.gz", ".nii", ".nrrd",
                                                                ".mha"))]
        if len(images) == 1 and len(files) == 1:
            return read_image(images[0], registry=registry())
        folders = {f.parent for f in files}
        target = work if len(folders) > 1 else next(iter(folders))
        return _read_dicom_tree(target, path)
    return read_image(path, registry=registry())


def _read_dicom_tree(folder: Path, archive: Path) -> Volume:
    try:
        return read_image(folder, registry=registry())
    except InputError:
        subdirs = sorted({p.parent for p in folder.rglob("*") if p.is_file()})
        if len(subdirs) == 1:
            return read_image(subdirs[0], registry=registry())
        raise InputError(archive, "zip holds no readable DICOM series or image") from None


def read_reference(path: Path) -> LabelMap:
    return read_label_map(path, registry=registry())


# ---- outputs --------------------------------------------------------------------------------
def write_mask(seg: Segmentation, image: Volume, path: Path) -> bytes:
    """The mask as NIfTI bytes (written atomically on the image's grid, then read back)."""
    write_image(seg.labels, path, reference=image)
    return path.read_bytes()


def volumes_csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["label", "name", "voxels", "volume_ml"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()
