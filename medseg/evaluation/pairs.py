"""Scoring predictions against references: one pair of label maps, or two folders (a cohort).

* :func:`evaluate_pair` scores two :class:`~medseg.volume.LabelMap` objects per class with
  :func:`medseg.evaluation.metrics.class_metrics` (one row per class) plus one ``"all"`` row
  with the
  semantic view (pixel accuracy, mIoU). It checks that both share one grid (or resamples the
  prediction onto the reference grid, nearest neighbour) and that every label value is known.
* :func:`pair_cases` pairs files of two folders by case name (the file name without
  ``.nii.gz``, ``.nii``, ``.nrrd`` or ``.mha``) and lists what is unpaired.
* :func:`evaluate_folders` scores every pair in parallel (a process pool), keeps going past a
  bad case (its error lands in the ``error`` column) and writes the report files of
  :mod:`medseg.evaluation.report`.

The empty-mask policy is the one of :mod:`medseg.evaluation.metrics`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from medseg.errors import GeometryError, InputError, MedsegError
from medseg.evaluation.classes import ClassGroups
from medseg.evaluation.lesions import DEFAULT_RULE, LESION_METRICS, LesionRule, match_lesions
from medseg.evaluation.metrics import (
    class_metrics,
    semantic_from_counts,
    tolerance_for,
    union_box,
)
from medseg.io.names import LABEL_SUFFIXES, case_name
from medseg.specs import MetricSpec
from medseg.volume import LabelMap

#: file name endings recognised as cases (longest first)
CASE_SUFFIXES = LABEL_SUFFIXES
#: class name of the per-case row holding the semantic metrics
ALL_CLASSES = "all"


# ---- labels ---------------------------------------------------------------------------------
def normalize_labels(labels: Any) -> dict[int, str] | None:
    """``{label value: class name}`` from a list of values, ``{name: value}`` or ``{value: name}``.

    None stays None (meaning: every non-zero value found). Background 0 cannot be a class.
    :class:`~medseg.evaluation.classes.ClassGroups` give their classes' names.
    """
    if labels is None:
        return None
    if isinstance(labels, ClassGroups):
        return dict(labels.names)
    out: dict[int, str] = {}
    if isinstance(labels, Mapping):
        items = []
        for k, v in labels.items():
            if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
                items.append((int(k), str(v)))
            else:
                items.append((int(v), str(k)))
    else:
        items = [(int(v), str(int(v))) for v in labels]
    for value, name in items:
        if value <= 0:
            raise MedsegError(f"label {value} is not a class value (0 is background; use > 0)")
        if value in out:
            raise MedsegError(f"label {value} is given twice")
        if name in out.values():
            raise MedsegError(f"class name {name!r} is given twice")
        out[value] = name
    if not out:
        raise MedsegError("no labels given")
    return dict(sorted(out.items()))


def _present_labels(arr: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Non-zero label values of an integer array with their bounding boxes (one pass)."""
    if arr.size and int(arr.min()) < 0:
        raise GeometryError(f"holds negative label values (minimum {int(arr.min())})")
    boxes = ndi.find_objects(arr)
    return {i + 1: b for i, b in enumerate(boxes) if b is not None}


# ---- geometry -------------------------------------------------------------------------------
def _grid_text(vol: LabelMap) -> str:
    sp = "x".join(f"{s:.4g}" for s in vol.spacing)
    org = ", ".join(f"{o:.4g}" for o in vol.origin)
    return f"shape {'x'.join(map(str, vol.spatial_shape))}, spacing {sp} mm, origin ({org})"


def resample_nearest(pred: LabelMap, ref: LabelMap) -> LabelMap:
    """``pred`` resampled onto the grid of ``ref`` by nearest neighbour through both affines.

    A reference voxel centre takes the label of the nearest prediction voxel when it lies
    within the prediction's extent (voxel centres plus half a voxel); outside it becomes
    background. This is SimpleITK's ``ResampleImageFilter`` with ``sitkNearestNeighbor``.
    """
    if pred.spatial_ndim != ref.spatial_ndim:
        raise GeometryError(
            f"prediction is {pred.spatial_ndim}D, reference {ref.spatial_ndim}D; cannot resample"
        )
    n = ref.spatial_ndim
    vox = np.linalg.inv(pred.affine) @ ref.affine  # reference index -> prediction index
    data = ndi.affine_transform(
        pred.data, vox[:n, :n], offset=vox[:n, 3], output_shape=ref.spatial_shape,
        order=0, mode="grid-constant", cval=0, prefilter=False,
    )
    return LabelMap(data[None], ref.affine)


def single_slice_axis(shape: Sequence[int]) -> int | None:
    """The axis of a 3D grid with exactly one slice (``X x Y x 1``), else None.

    In 3D every voxel of such an image lies on the border (its erosion is empty), so surface
    metrics would measure nothing; :func:`evaluate_pair` scores it as a 2D image instead.
    """
    if len(shape) != 3:
        return None
    flat = [i for i, n in enumerate(shape) if n == 1]
    return flat[0] if len(flat) == 1 else None


# ---- one pair -------------------------------------------------------------------------------
#: policies for the surface distances of a structure present in one map only
MISSING_DISTANCE = ("worst", "exclude")


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The diagonal of the image's extent in mm, ``sqrt(sum((n_i s_i)^2))``: no distance
    between two points of the image can exceed it, so it is the worst possible HD95 / ASSD
    (the MSD / BraTS practice, recommended by Metrics Reloaded for a missed structure)."""
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def evaluate_pair(
    pred: LabelMap,
    ref: LabelMap,
    labels: Any = None,
    *,
    tolerance: float | Mapping[Any, float] | None = None,
    empty_score: float = math.nan,
    resample: bool = False,
    extra_metrics: Sequence[MetricSpec] = (),
    missing_distance: str = "worst",
    lesion_rule: LesionRule | None = DEFAULT_RULE,
) -> list[dict[str, Any]]:
    """Score ``pred`` against ``ref``: one dict per class, then one ``"all"`` row.

    ``labels``: class values (list), or a name mapping (see :func:`normalize_labels`); None
    scores every non-zero value present in either map. A value in either map that is not
    in ``labels`` raises :class:`MedsegError`, as does a grid mismatch without ``resample``.
    ``tolerance`` is the NSD tolerance in mm, one number or per class (name or value ->
    mm, optionally ``"default"``); None, or a class without one, takes the voxel size
    (:func:`~medseg.evaluation.metrics.voxel_tolerance`); each class row records it in
    ``nsd_tolerance_mm``. ``extra_metrics`` (plugin :class:`MetricSpec`) add columns named
    after them.
    Each class row holds ``class``, ``label``, ``status`` and every metric of
    :data:`medseg.evaluation.metrics.CLASS_METRICS`; the ``"all"`` row holds the semantic metrics.
    ``missing_distance`` (:data:`MISSING_DISTANCE`): ``"worst"`` sets HD95, HD and ASSD of a
    class present in only one map (``pred_empty``, ``ref_empty``) to the image diagonal in mm
    (:func:`image_diagonal_mm`) and stores it in ``missing_distance_mm``; ``"exclude"`` leaves
    them NaN (left out of every statistic). ``lesion_rule``: the connected components of
    each class are matched (:func:`~medseg.evaluation.lesions.match_lesions`) and the
    :data:`~medseg.evaluation.lesions.LESION_METRICS` added, with ``lesion_sizes`` and
    ``lesion_matched`` (per predicted component, for the FROC); None skips them.
    """
    if missing_distance not in MISSING_DISTANCE:
        raise ValueError(f"missing_distance {missing_distance!r} is not one of "
                         f"{', '.join(MISSING_DISTANCE)}")
    label_names = normalize_labels(labels)
    grid_note = grid_note_for(pred, ref)
    if not ref.same_grid(pred):
        if not resample:
            raise GeometryError(
                f"prediction grid ({_grid_text(pred)}) differs from the reference grid "
                f"({_grid_text(ref)}); use resample (--resample) to map it onto the reference"
            )
        pred = resample_nearest(pred, ref)
    p_arr, r_arr = pred.data, ref.data
    if isinstance(labels, ClassGroups):  # merged classes (brain=1,2,3), in both maps
        p_arr, r_arr = labels.apply(p_arr), labels.apply(r_arr)
    try:
        p_boxes = _present_labels(p_arr)
    except GeometryError as exc:
        raise GeometryError(f"prediction {exc}") from None
    try:
        r_boxes = _present_labels(r_arr)
    except GeometryError as exc:
        raise GeometryError(f"reference {exc}") from None
    notes = [n for n in (grid_note, labels_note(set(p_boxes), set(r_boxes)),
                         fewer_labels_note(set(p_boxes), set(r_boxes))) if n]
    if label_names is None:
        label_names = {v: str(v) for v in sorted(set(p_boxes) | set(r_boxes))}
    else:
        for who, boxes in (("prediction", p_boxes), ("reference", r_boxes)):
            unknown = sorted(set(boxes) - set(label_names))
            if unknown:
                raise MedsegError(
                    f"{who} holds label values {', '.join(map(str, unknown))} not in the "
                    f"labels ({', '.join(map(str, label_names))})"
                )
    spacing = ref.spacing
    n_voxels = int(r_arr.size)
    voxel_mm3 = None
    flat = single_slice_axis(r_arr.shape)
    if flat is not None:  # X x Y x 1: score in 2D, keep the slice thickness in the volumes
        warnings.warn(
            f"a single-slice image ({'x'.join(map(str, r_arr.shape))}) is scored as 2D "
            "(in-plane borders and distances; volumes with the slice thickness)", stacklevel=2)
        voxel_mm3 = math.prod(spacing)
        p_arr, r_arr = p_arr.squeeze(flat), r_arr.squeeze(flat)
        spacing = tuple(s for i, s in enumerate(spacing) if i != flat)
        p_boxes = {v: tuple(b for i, b in enumerate(box) if i != flat)
                   for v, box in p_boxes.items()}
        r_boxes = {v: tuple(b for i, b in enumerate(box) if i != flat)
                   for v, box in r_boxes.items()}
    rows: list[dict[str, Any]] = []
    counts: dict[Any, Any] = {}
    for value, name in label_names.items():
        box = union_box(p_boxes.get(value), r_boxes.get(value))
        if box is None:
            p = r = np.zeros((1,) * r_arr.ndim, dtype=bool)
        else:
            p, r = p_arr[box] == value, r_arr[box] == value
        tol = tolerance_for(tolerance, value, name, spacing)
        row: dict[str, Any] = {"class": name, "label": value}
        row.update(class_metrics(
            p, r, spacing, tolerance=tol,
            empty_score=empty_score, n_voxels=n_voxels, voxel_volume_mm3=voxel_mm3,
        ))
        row["nsd_tolerance_mm"] = tol
        if missing_distance == "worst" and row["status"] in ("pred_empty", "ref_empty"):
            worst = image_diagonal_mm(r_arr.shape, spacing)
            row.update({"hd95": worst, "hd": worst, "assd": worst, "missing_distance_mm": worst})
        if lesion_rule is not None:
            found = match_lesions(p, r, spacing, lesion_rule)
            row.update({k: found[k] for k in LESION_METRICS})
            row["lesion_sizes"], row["lesion_matched"] = (found["pred_sizes"],
                                                          found["pred_matched"])
        n_pred, n_ref = int(np.count_nonzero(p)), int(np.count_nonzero(r))
        counts[value] = (int(np.count_nonzero(p & r)), n_pred, n_ref)
        for spec in extra_metrics:
            row[spec.name] = float(spec.fn(p_arr == value, r_arr == value, spacing))
        rows.append(row)
    counts["mismatch"] = int(np.count_nonzero(p_arr != r_arr))
    rows.append({"class": ALL_CLASSES, "label": None, "status": "ok",
                 **({"note": "; ".join(notes)} if notes else {}),
                 **semantic_from_counts(counts, n_voxels)})
    return rows


def _grid_short(vol: LabelMap) -> str:
    sp = "x".join(f"{s:.3g}" for s in vol.spacing)
    return f"{'x'.join(map(str, vol.spatial_shape))} at {sp} mm"


def grid_note_for(pred: LabelMap, ref: LabelMap) -> str | None:
    """Said before a score: the reference grid differs beyond the grid tolerance (the
    prediction is then resampled onto it)."""
    if ref.same_grid(pred):
        return None
    return (f"reference grid differs: {_grid_short(ref)} vs {_grid_short(pred)} (prediction);"
            " resampled")


def labels_note(pred_values: set[int], ref_values: set[int]) -> str | None:
    """Said before a score: the two maps share no label value (a reference of another task
    or model); None when they do or when either map is empty."""
    pred_values, ref_values = pred_values - {0}, ref_values - {0}
    if not pred_values or not ref_values or pred_values & ref_values:
        return None
    return (f"no label in common (prediction {', '.join(map(str, sorted(pred_values)))}; "
            f"reference {', '.join(map(str, sorted(ref_values)))})")


def fewer_labels_note(pred_values: set[int], ref_values: set[int]) -> str | None:
    """Said before a score: the reference holds fewer classes than the prediction while
    sharing some (an outline of their union, say a whole-brain mask against three tissues):
    the prediction's other classes are scored against nothing."""
    pred_values, ref_values = pred_values - {0}, ref_values - {0}
    if not ref_values or not pred_values & ref_values or len(ref_values) >= len(pred_values):
        return None
    extra = sorted(pred_values - ref_values)
    values = ",".join(map(str, sorted(pred_values)))
    return (f"the reference has fewer labels ({len(ref_values)}: "
            f"{', '.join(map(str, sorted(ref_values)))}) than the prediction "
            f"({len(pred_values)}: {', '.join(map(str, sorted(pred_values)))}); classes "
            f"{', '.join(map(str, extra))} are scored against nothing. If the reference "
            f"outlines their union, merge them (labels NAME={values})")


# ---- pairing folders ------------------------------------------------------------------------


@dataclass
class Pairing:
    """Files of a prediction and a reference folder matched by case name."""

    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)
    pred_only: list[str] = field(default_factory=list)
    ref_only: list[str] = field(default_factory=list)
    #: files that are not images (not a recognised suffix), as ``folder/name``
    ignored: list[str] = field(default_factory=list)
    #: case -> reason, for case names with several files in one folder
    ambiguous: dict[str, str] = field(default_factory=dict)


#: what ``medseg segment`` writes beside a mask ``CASE.nii.gz`` (medseg.engine.outputs, manifests)
SIDECAR_SUFFIXES = ("_manifest.json", "_volumes.json", "_volumes.csv", "_probabilities.nii.gz",
                    "_seg.dcm", "_instances.nii.gz", "_panoptic.nii.gz", "_instances.csv",
                    "_instances.json")


def is_sidecar(path: Path) -> bool:
    """A file medseg wrote beside a mask of the same folder (or the run's summary): neither a
    case nor worth listing as ignored."""
    name = path.name
    if name == "summary.json" or (name.startswith("summary_rank") and name.endswith(".json")):
        return True
    for suffix in SIDECAR_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return (path.parent / f"{name[: -len(suffix)]}.nii.gz").is_file()
    return False


def _scan(folder: Path, role: str) -> tuple[dict[str, list[Path]], list[str]]:
    if not folder.exists():
        raise InputError(folder, f"{role} folder not found")
    if not folder.is_dir():
        raise InputError(folder, f"{role} path is not a folder")
    cases: dict[str, list[Path]] = {}
    ignored: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or (path.is_file() and is_sidecar(path)):
            continue
        name = case_name(path, CASE_SUFFIXES) if path.is_file() else None
        if name is None:
            ignored.append(str(path))
        else:
            cases.setdefault(name, []).append(path)
    if not cases:
        raise InputError(folder, f"{role} folder holds no images ({', '.join(CASE_SUFFIXES)})")
    return cases, ignored


def pair_cases(pred_dir: str | Path, ref_dir: str | Path) -> Pairing:
    """Match files by case name; unpaired, ambiguous and non-image files are listed."""
    preds, ign_p = _scan(Path(pred_dir), "prediction")
    refs, ign_r = _scan(Path(ref_dir), "reference")
    out = Pairing(ignored=ign_p + ign_r)
    for case in sorted(set(preds) | set(refs)):
        if case not in refs:
            out.pred_only.extend(str(p) for p in preds[case])
        elif case not in preds:
            out.ref_only.extend(str(p) for p in refs[case])
        elif len(preds[case]) > 1 or len(refs[case]) > 1:
            files = [p.name for p in preds[case] + refs[case]]
            out.ambiguous[case] = f"several files for one case: {', '.join(files)}"
        else:
            out.pairs.append((case, preds[case][0], refs[case][0]))
    if not out.pairs and not out.ambiguous:
        raise MedsegError(
            f"no case names match between {pred_dir} and {ref_dir} "
            f"({len(preds)} predictions, {len(refs)} references)"
        )
    return out
