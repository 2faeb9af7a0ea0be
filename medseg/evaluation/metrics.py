"""Segmentation metrics as pure numpy functions of (prediction, reference, spacing).

Layout: every mask is a boolean array ``X, Y[, Z]`` (2D or 3D) of one class, on the same
grid; ``spacing`` is the voxel size in mm along each axis (as :attr:`Volume.spacing`).
No I/O happens here; :mod:`medseg.evaluation` reads files and calls these functions.

Definitions (version :data:`METRICS_VERSION`), with TP/FP/FN/TN voxel counts:

* ``dice`` = 2TP / (2TP + FP + FN); ``iou`` (Jaccard) = TP / (TP + FP + FN).
* ``sensitivity`` = TP / (TP + FN); ``precision`` = TP / (TP + FP);
  ``specificity`` = TN / (TN + FP).
* ``ref_volume_ml`` and ``pred_volume_ml``: voxel count x voxel volume / 1000 (a 2D mask counts
  its area with the nominal 1 mm thickness of a 2D :class:`~medseg.volume.Volume`);
  ``abs_volume_diff_ml`` = ``|V_pred - V_ref|``; ``rel_volume_diff_pct`` =
  100 (V_pred - V_ref) / V_ref (signed).
* Boundary: the border of a mask is the mask minus its binary erosion with the face-connected
  structuring element (6-neighbourhood in 3D, 4 in 2D), voxels outside the array counting as
  background. This is MONAI's ``get_mask_edges`` (without sub-voxel areas).
* Surface distances are exact Euclidean distances in mm between the *centres* of border voxels,
  from each border voxel of one mask to the nearest border voxel of the other, with axes scaled
  by ``spacing``: the same values as ``scipy.ndimage.distance_transform_edt(~border,
  sampling=spacing)`` read at the other border (MONAI's convention). They are computed with a
  k-d tree over the border voxels, which gives identical values and is several times faster
  than a dense transform for compact organs (see ``docs/evaluation.md``).
* ``hd95`` = max of the two directed 95th percentiles (linear interpolation, as
  ``numpy.percentile`` and ``torch.quantile``); ``hd`` = max of all distances;
  ``assd`` = mean of the pooled distances of both directions.
* ``nsd`` (normalized surface Dice, Nikolov et al. 2021, arXiv:1809.04430, counted over border
  voxels as MONAI's ``compute_surface_dice`` without sub-voxels) = number of border voxels of
  both masks within ``tolerance`` mm (``<=``) of the other border / number of border voxels.
  The comparison allows a relative slack of :data:`NSD_RTOL` (``d <= tolerance (1 + 1e-6)``):
  spacings stored as float32 (0.8 becomes 0.800000012) or read back from a rotated affine
  (column norms off by 1e-16) put a point that lies exactly on the tolerance a hair outside
  it, which changed NSD from 1.0 to 0.77 for a cube shifted by exactly the tolerance.
* A 3D image with a single slice (``X x Y x 1``) has every voxel on the border in 3D;
  :func:`medseg.evaluation.pairs.evaluate_pair` scores such images in 2D (in-plane borders and
  distances, volumes with the slice thickness) and warns.
* Semantic view over a whole label map (:func:`semantic_metrics`): ``pixel_accuracy`` = fraction
  of voxels whose label agrees; ``miou`` = mean IoU over background and the evaluated classes,
  classes absent from both maps left out.

Empty-mask policy (the same everywhere in medseg; ``status`` names the case):

* ``both_empty`` (class in neither mask): Dice, IoU and NSD are undefined, NaN, unless
  ``empty_score`` is given (``empty_score=1`` scores agreement on absence as perfect);
  sensitivity, precision, HD95, HD, ASSD and the relative volume difference are NaN;
  specificity is 1, volumes and the absolute volume difference are 0.
* ``pred_empty`` / ``ref_empty`` (class in one mask only): Dice, IoU and NSD are 0; the surface
  distances are NaN (flagged "missing": there is no surface to measure to, where MONAI returns
  inf); sensitivity is 0 when the prediction is empty; precision is 0 when the reference is
  empty; the other ratio, and the relative volume difference for an empty reference, are NaN.
* ``ok``: both present; every metric is defined.

Summaries never average NaN: they report how many cases each statistic covers and how many
were NaN (:mod:`medseg.evaluation.report`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from medseg.errors import GeometryError

#: bumped whenever a definition changes; written into every report
METRICS_VERSION = "1.1"  # 1.1: NSD tolerance compared with a relative slack (NSD_RTOL)
#: relative slack of the NSD comparison ``d <= tolerance (1 + NSD_RTOL)`` (float32 spacings)
NSD_RTOL = 1e-6

OVERLAP_METRICS = ("dice", "iou", "sensitivity", "precision", "specificity")
DISTANCE_METRICS = ("hd95", "hd", "assd", "nsd")
VOLUME_METRICS = ("ref_volume_ml", "pred_volume_ml", "abs_volume_diff_ml", "rel_volume_diff_pct")
#: every per-class metric, in report order
CLASS_METRICS = OVERLAP_METRICS + DISTANCE_METRICS + VOLUME_METRICS
#: per-case metrics of the semantic view
SEMANTIC_METRICS = ("pixel_accuracy", "miou")

#: metric -> (unit, higher is better, one-line definition)
METRIC_INFO: dict[str, tuple[str, bool, str]] = {
    "dice": ("", True, "2TP / (2TP + FP + FN)"),
    "iou": ("", True, "Jaccard index TP / (TP + FP + FN)"),
    "sensitivity": ("", True, "TP / (TP + FN)"),
    "precision": ("", True, "TP / (TP + FP)"),
    "specificity": ("", True, "TN / (TN + FP)"),
    "hd95": ("mm", False, "max of the two directed 95th percentiles of border distances"),
    "hd": ("mm", False, "maximum (Hausdorff) border distance"),
    "assd": ("mm", False, "mean of the pooled border distances of both directions"),
    "nsd": ("", True, "fraction of border voxels within the tolerance of the other border"),
    "ref_volume_ml": ("mL", True, "reference voxel count x voxel volume"),
    "pred_volume_ml": ("mL", True, "predicted voxel count x voxel volume"),
    "abs_volume_diff_ml": ("mL", False, "|V_pred - V_ref|"),
    "rel_volume_diff_pct": ("%", False, "100 (V_pred - V_ref) / V_ref, signed"),
    "pixel_accuracy": ("", True, "fraction of voxels whose label agrees (all labels)"),
    "miou": ("", True, "mean IoU over background and the classes present in either map"),
    # lesion-wise detection (medseg.evaluation.lesions)
    "lesion_n_ref": ("lesions", True, "connected components of the reference"),
    "lesion_n_pred": ("lesions", True, "connected components of the prediction"),
    "lesion_tp": ("lesions", True, "reference lesions matched by a predicted component"),
    "lesion_fn": ("lesions", False, "reference lesions left unmatched"),
    "lesion_fp": ("lesions", False, "predicted components left unmatched"),
    "lesion_sensitivity": ("", True, "matched reference lesions / reference lesions"),
    "lesion_dice": ("", True, "BraTS-2023 lesion-wise Dice"),
}

NAN = float("nan")


# ---- helpers --------------------------------------------------------------------------------
def _check_pair(pred: Any, ref: Any, spacing: Sequence[float] | None) -> tuple:
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise GeometryError(f"prediction shape {pred.shape} differs from reference {ref.shape}")
    if pred.ndim not in (2, 3):
        raise GeometryError(f"masks must be 2D or 3D, got shape {pred.shape}")
    sp = _spacing(spacing, pred.ndim)
    return pred, ref, sp


def _spacing(spacing: Sequence[float] | float | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    sp = np.atleast_1d(np.asarray(spacing, dtype=float))
    if sp.size == 1:
        sp = np.repeat(sp, ndim)
    if sp.size != ndim or np.any(sp <= 0) or not np.all(np.isfinite(sp)):
        raise GeometryError(f"spacing {sp.tolist()} does not fit a {ndim}D mask")
    return tuple(float(s) for s in sp)


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Smallest slices holding every true voxel of ``mask`` (None when it is empty)."""
    mask = np.asarray(mask)
    box = ndi.find_objects(mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8))
    return box[0] if box else None


def union_box(*boxes: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    """Smallest box holding every given box (None entries are skipped)."""
    real = [b for b in boxes if b is not None]
    if not real:
        return None
    return tuple(
        slice(min(b[d].start for b in real), max(b[d].stop for b in real))
        for d in range(len(real[0]))
    )


def border(mask: np.ndarray) -> np.ndarray:
    """Border voxels: the mask minus its face-connected erosion (outside = background)."""
    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    return mask & ~ndi.binary_erosion(mask, border_value=0)


def _directed(src: np.ndarray, dst: np.ndarray, sp: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """Distances (mm) from each border voxel of ``src`` to the nearest one of ``dst``.

    Voxels on both borders (``shared``) are at distance 0 and skip the k-d tree query.
    """
    out = np.zeros(int(np.count_nonzero(src)), dtype=np.float64)
    away = (src & ~shared)[src]
    if away.any():
        tree = cKDTree(np.argwhere(dst) * sp, leafsize=32, balanced_tree=False)
        out[away] = tree.query(np.argwhere(src & ~shared) * sp, k=1)[0]
    return out


def surface_distances(
    pred: Any, ref: Any, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed border distances in mm: ``(pred -> ref, ref -> pred)``.

    Both arrays are empty when either mask is empty (distances are then undefined).
    """
    pred, ref, sp = _check_pair(pred, ref, spacing)
    box = union_box(bounding_box(pred), bounding_box(ref))
    if box is None or not pred.any() or not ref.any():
        return np.zeros(0), np.zeros(0)
    return _distances(border(pred[box]), border(ref[box]), np.asarray(sp))


def _distances(bp: np.ndarray, br: np.ndarray, sp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shared = bp & br
    return _directed(bp, br, sp, shared), _directed(br, bp, sp, shared)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else NAN


# ---- per-class metrics ----------------------------------------------------------------------
def overlap_from_counts(
    tp: int, fp: int, fn: int, tn: int, *, empty_score: float = NAN
) -> dict[str, float]:
    """Dice, IoU, sensitivity, precision, specificity from voxel counts (empty policy applied)."""
    both_empty = tp + fp + fn == 0
    return {
        "dice": empty_score if both_empty else 2.0 * tp / (2.0 * tp + fp + fn),
        "iou": empty_score if both_empty else tp / float(tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "precision": _ratio(tp, tp + fp),
        "specificity": _ratio(tn, tn + fp),
    }


def status_of(pred_voxels: int, ref_voxels: int) -> str:
    """``ok``, ``both_empty``, ``pred_empty`` or ``ref_empty`` (see the module docstring)."""
    if pred_voxels and ref_voxels:
        return "ok"
    if not pred_voxels and not ref_voxels:
        return "both_empty"
    return "pred_empty" if not pred_voxels else "ref_empty"


def distance_metrics(
    d_pred_ref: np.ndarray,
    d_ref_pred: np.ndarray,
    *,
    tolerance: float = 1.0,
    percentile: float = 95.0,
    status: str = "ok",
    empty_score: float = NAN,
) -> dict[str, float]:
    """HD95 (or another ``percentile``), HD, ASSD and NSD from directed border distances."""
    if status != "ok":
        nsd = empty_score if status == "both_empty" else 0.0
        return {"hd95": NAN, "hd": NAN, "assd": NAN, "nsd": nsd}
    n = d_pred_ref.size + d_ref_pred.size
    limit = tolerance * (1.0 + NSD_RTOL)
    return {
        "hd95": float(max(np.percentile(d_pred_ref, percentile),
                          np.percentile(d_ref_pred, percentile))),
        "hd": float(max(d_pred_ref.max(), d_ref_pred.max())),
        "assd": float((d_pred_ref.sum() + d_ref_pred.sum()) / n),
        "nsd": float((np.count_nonzero(d_pred_ref <= limit)
                      + np.count_nonzero(d_ref_pred <= limit)) / n),
    }


def volume_metrics(pred_voxels: int, ref_voxels: int, voxel_ml: float) -> dict[str, float]:
    """Volumes in mL and their absolute and relative (signed, %) difference."""
    vp, vr = pred_voxels * voxel_ml, ref_voxels * voxel_ml
    return {
        "ref_volume_ml": vr,
        "pred_volume_ml": vp,
        "abs_volume_diff_ml": abs(vp - vr),
        "rel_volume_diff_pct": 100.0 * (vp - vr) / vr if ref_voxels else NAN,
    }


def class_metrics(
    pred: Any,
    ref: Any,
    spacing: Sequence[float] | None = None,
    *,
    tolerance: float = 1.0,
    empty_score: float = NAN,
    n_voxels: int | None = None,
    voxel_volume_mm3: float | None = None,
) -> dict[str, Any]:
    """Every per-class metric of :data:`CLASS_METRICS` plus ``status``, in one pass.

    Works on the bounding box of both masks only: counts, borders (computed once per mask)
    and the directed distances shared by HD95, HD, ASSD and NSD. ``n_voxels`` is the size of
    the full image when ``pred``/``ref`` are already cropped (for TN and specificity).
    ``voxel_volume_mm3`` overrides the voxel volume (a single slice scored in 2D keeps its
    slice thickness in the volumes).
    """
    pred, ref, sp = _check_pair(pred, ref, spacing)
    total = pred.size if n_voxels is None else int(n_voxels)
    box = union_box(bounding_box(pred), bounding_box(ref))
    if box is not None:
        pred, ref = pred[box], ref[box]
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    tp = int(np.count_nonzero(pred & ref))
    fp, fn = n_pred - tp, n_ref - tp
    status = status_of(n_pred, n_ref)
    out: dict[str, Any] = {"status": status}
    out.update(overlap_from_counts(tp, fp, fn, total - tp - fp - fn, empty_score=empty_score))
    if status == "ok":
        d_pr, d_rp = _distances(border(pred), border(ref), np.asarray(sp))
    else:
        d_pr = d_rp = np.zeros(0)
    out.update(distance_metrics(d_pr, d_rp, tolerance=tolerance, status=status,
                                empty_score=empty_score))
    voxel_mm3 = math.prod(sp) if voxel_volume_mm3 is None else float(voxel_volume_mm3)
    out.update(volume_metrics(n_pred, n_ref, voxel_mm3 / 1000.0))
    return {"status": out.pop("status"), **{k: out[k] for k in CLASS_METRICS}}


# ---- single-metric conveniences (same code path as class_metrics) -----------------------------
def dice(pred: Any, ref: Any, *, empty_score: float = NAN) -> float:
    """Dice coefficient of two boolean masks (NaN or ``empty_score`` when both are empty)."""
    return class_metrics(pred, ref, empty_score=empty_score)["dice"]


def iou(pred: Any, ref: Any, *, empty_score: float = NAN) -> float:
    """Intersection over union (Jaccard) of two boolean masks."""
    return class_metrics(pred, ref, empty_score=empty_score)["iou"]


def hausdorff_distance(
    pred: Any, ref: Any, spacing: Sequence[float] | None = None, *, percentile: float | None = None
) -> float:
    """Symmetric Hausdorff distance in mm (``percentile=95`` gives HD95); NaN if a mask is empty."""
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    if d_pr.size == 0:
        return NAN
    if percentile is None:
        return float(max(d_pr.max(), d_rp.max()))
    return float(max(np.percentile(d_pr, percentile), np.percentile(d_rp, percentile)))


def average_symmetric_surface_distance(
    pred: Any, ref: Any, spacing: Sequence[float] | None = None
) -> float:
    """ASSD in mm: mean of the pooled directed border distances; NaN if a mask is empty."""
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    if d_pr.size == 0:
        return NAN
    return float((d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size))


def normalized_surface_dice(
    pred: Any, ref: Any, spacing: Sequence[float] | None = None, *, tolerance: float = 1.0,
    empty_score: float = NAN,
) -> float:
    """NSD at ``tolerance`` mm (empty policy of the module docstring)."""
    return class_metrics(pred, ref, spacing, tolerance=tolerance, empty_score=empty_score)["nsd"]


# ---- semantic view --------------------------------------------------------------------------
def semantic_metrics(pred: Any, ref: Any, labels: Sequence[int]) -> dict[str, float]:
    """Pixel accuracy and mIoU of two integer label maps over background and ``labels``.

    Every voxel is expected to hold 0 or a value of ``labels``; classes absent from both maps
    are left out of the mean.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise GeometryError(f"prediction shape {pred.shape} differs from reference {ref.shape}")
    counts = confusion_counts(pred, ref, labels)
    return semantic_from_counts(counts, pred.size)


def confusion_counts(pred: np.ndarray, ref: np.ndarray, labels: Sequence[int]) -> dict:
    """``{label: (tp, n_pred, n_ref)}`` for each label plus ``"mismatch"``: voxels that differ."""
    out: dict[Any, Any] = {}
    for value in labels:
        p, r = pred == value, ref == value
        out[int(value)] = (int(np.count_nonzero(p & r)), int(np.count_nonzero(p)),
                           int(np.count_nonzero(r)))
    out["mismatch"] = int(np.count_nonzero(pred != ref))
    return out


def semantic_from_counts(counts: Mapping[Any, Any], n_voxels: int) -> dict[str, float]:
    """Pixel accuracy and mIoU from :func:`confusion_counts`-style counts (background derived)."""
    mismatch = counts["mismatch"]
    per_class = [v for k, v in counts.items() if k != "mismatch"]
    tp_fg = sum(tp for tp, _, _ in per_class)
    tp_bg = n_voxels - mismatch - tp_fg
    n_pred_bg = n_voxels - sum(p for _, p, _ in per_class)
    n_ref_bg = n_voxels - sum(r for _, _, r in per_class)
    ious = []
    for tp, n_pred, n_ref in [(tp_bg, n_pred_bg, n_ref_bg), *per_class]:
        union = n_pred + n_ref - tp
        if union > 0:
            ious.append(tp / union)
    return {
        "pixel_accuracy": (n_voxels - mismatch) / n_voxels,
        "miou": float(np.mean(ious)) if ious else NAN,
    }


#: what the default NSD tolerance is (recorded in every report)
VOXEL_TOLERANCE = ("the voxel size: the largest voxel spacing of each case's reference grid "
                   "(in-plane for a single-slice image), so a border off by one voxel along "
                   "any axis still counts")


def voxel_tolerance(spacing: Sequence[float]) -> float:
    """The default NSD tolerance of a case: its largest voxel spacing in mm.

    DeepMind's ``surface-distance`` (``compute_surface_dice_at_tolerance``) and MONAI's
    ``compute_surface_dice`` (``class_thresholds``) have no default: Nikolov et al. set the
    tolerance per organ from the inter-observer variation, and Metrics Reloaded (Maier-Hein
    et al. 2024) asks for a tolerance that reflects the clinical need or the rater variability.
    When none is given, a tolerance below the voxel size would count a border one slice off as
    wrong although the grid cannot place it better; the largest spacing (not the mean) keeps
    a one-voxel shift along the coarsest axis (e.g. 5 mm slices) within tolerance.
    """
    return float(max(spacing))


def explicit_tolerance(tolerance: float | Mapping[Any, float] | None, label: int,
                       name: str) -> float | None:
    """The tolerance given for one class (a number, or a mapping by class name, label value
    or ``"default"``), or None when the class takes the voxel size."""
    if tolerance is None:
        return None
    if isinstance(tolerance, Mapping):
        for key in (name, label, str(label), "default"):
            if key in tolerance and tolerance[key] is not None:
                return float(tolerance[key])
        return None
    return float(tolerance)


def tolerance_for(tolerance: float | Mapping[Any, float] | None, label: int, name: str,
                  spacing: Sequence[float] | None = None) -> float:
    """The NSD tolerance of one class in mm: the one given (:func:`explicit_tolerance`), else
    the voxel size of ``spacing`` (:func:`voxel_tolerance`)."""
    given = explicit_tolerance(tolerance, label, name)
    if given is not None:
        return given
    if spacing is None:
        raise ValueError("the voxel-size NSD tolerance needs the voxel spacing")
    return voxel_tolerance(spacing)
