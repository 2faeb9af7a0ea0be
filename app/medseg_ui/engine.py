"""The app's calls into the engine: cached registry and segmenters, samples, inputs, outputs.

Heavy objects are cached with ``st.cache_resource`` (shared by all sessions, read-only);
everything a user loads or produces is returned to the page, which keeps it in
``st.session_state``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from medseg.engine.outputs import volumes_csv as volumes_table
from medseg.engine.segmenter import InferenceSettings, Segmentation, Segmenter
from medseg.errors import InputError, MedsegError
from medseg.io import read_image, read_label_map, write_image
from medseg.io.archive import safe_extract_zip
from medseg.models import ModelInfo, describe_model, load_model, resolve_model
from medseg.models.catalog import list_models
from medseg.models.medseg_bundle.bundle import Bundle, load_bundle
from medseg.models.totalseg.naming import FORMAT as TOTALSEG_FORMAT
from medseg.models.totalseg.status import PRESENT, task_state
from medseg.models.totalseg.tasks import task_name
from medseg.registry import Registry, load_registry
from medseg.volume import LabelMap, Volume

SAMPLE_ROOT = Path(__file__).resolve().parents[2] / "sample_data"


@st.cache_resource(show_spinner=False)
def registry() -> Registry:
    return load_registry()


def models_dir() -> str:
    return os.environ.get("MEDSEG_MODELS_DIR", "")


def models() -> list[str]:
    """Names of every model that can run now, any format (bundled, MEDSEG_MODELS_DIR,
    TotalSegmentator's folders; a TotalSegmentator task only when all its weights are there:
    the Models page pulls the others)."""
    return [e.name for e in list_models(registry())
            if e.format != TOTALSEG_FORMAT or task_state(task_name(e.name)) == PRESENT]


def _version(name: str) -> str:
    """Cache key part that changes when a model folder is rewritten (retrained in place)."""
    try:
        path, _spec = resolve_model(name, registry())
        stamps = [f.stat().st_mtime_ns for f in path.iterdir() if f.is_file()]
        return f"{models_dir()}|{path}|{max(stamps, default=0)}"
    except (OSError, MedsegError):
        return models_dir()


@st.cache_resource(show_spinner=False, max_entries=16)
def _info(name: str, version: str) -> ModelInfo:
    return describe_model(name, registry())


def model_info(name: str) -> ModelInfo:
    """Metadata of a model (no weights read): format, labels, grid, source."""
    return _info(name, _version(name))


@st.cache_resource(show_spinner=False, max_entries=8)
def _medseg_bundle(name: str, version: str) -> Bundle:
    return load_bundle(resolve_model(name, registry())[0], registry())


def medseg_bundle(name: str) -> Bundle:
    """A medseg-format model's bundle (its training figures and config)."""
    return _medseg_bundle(name, _version(name))


def takes_trust(name: str) -> bool:
    """Whether the model's format runs code from its config only when trusted."""
    try:
        return "trust" in resolve_model(name, registry())[1].options
    except MedsegError:
        return False


@st.cache_resource(show_spinner=False, max_entries=4)
def _segmenter(name: str, version: str, overlap: float | None, mirror: bool, fast: bool,
               postprocessors: tuple[str, ...], trust: bool) -> Segmenter:
    settings = InferenceSettings(overlap=overlap, mirror=mirror, fast=fast,
                                 postprocessors=[(p, {}) for p in postprocessors])
    options = {"trust": True} if trust else {}
    return Segmenter(load_model(name, registry(), None, **options), settings, registry())


def segmenter(name: str, *, overlap: float | None = None, mirror: bool = False,
              fast: bool = False, postprocessors: tuple[str, ...] = (),
              trust: bool = False) -> Segmenter:
    return _segmenter(name, _version(name), None if overlap is None else float(overlap),
                      bool(mirror), bool(fast), tuple(postprocessors), bool(trust))


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
    """The mask as NIfTI bytes (written atomically on the image's grid, then read back), its
    class names in the header as the CLI writes them."""
    write_image(seg.labels, path, reference=image, label_names=seg.label_names)
    return path.read_bytes()


def volumes_csv(rows: list[dict], qc=None) -> bytes:
    """The volumes table as the CLI writes it, with the quality flag's ``qc`` and
    ``qc_reasons`` columns."""
    return volumes_table(rows, qc).encode()
