"""Lesion-wise detection: connected components matched between prediction and reference.

Layout as :mod:`medseg.evaluation.metrics`: boolean masks ``X, Y[, Z]`` of one class on one
grid, ``spacing`` in mm. Pure numpy/scipy; no I/O.

* **Components**: ``scipy.ndimage.label`` with full connectivity (26 neighbours in 3D, 8 in
  2D; as BraTS 2023 and panoptica), or face connectivity (``connectivity=1``).
* **Matching** (one-to-one, greedy, :class:`LesionRule`):

  - ``iou`` (default) or ``dice``: every pair of a reference and a predicted component that
    overlap is scored by the IoU (or Dice) of the two components; pairs above ``threshold``
    (default 0.1, strictly greater) are matched in order of decreasing score, each component
    at most once;
  - ``centre``: pairs whose centres of mass lie within ``max_distance_mm`` (default 10 mm)
    are matched in order of increasing distance.

  A matched reference lesion is a true positive (TP), an unmatched one a false negative
  (FN), an unmatched predicted component a false positive (FP).
* **Per case**: ``lesion_n_ref``, ``lesion_n_pred``, ``lesion_tp``, ``lesion_fn``,
  ``lesion_fp``, ``lesion_sensitivity`` = TP / n_ref (NaN without reference lesions) and
  ``lesion_dice``, the lesion-wise Dice of the BraTS 2023 metric: for each reference lesion the
  Dice between it and the union of the predicted components that overlap it (0 for a missed
  lesion), summed, divided by ``n_ref + n_FP`` where FP counts predicted components touching
  no reference lesion; NaN when both maps are empty. (BraTS also dilates the reference lesion
  before looking for overlapping components and drops small lesions; medseg does neither.)
* **Cohort** (:func:`froc`): the free-response ROC over a size threshold: a label map carries
  no confidence per lesion, so operating points are made by discarding predicted components
  smaller than ``s`` voxels, for every ``s`` seen; each point gives the per-lesion sensitivity
  (pooled over cases) and the mean FP per case. The summary is the mean sensitivity at
  1/8, 1/4, 1/2, 1, 2, 4 and 8 FP per case (the LUNA16 competition score), each read off the
  curve at the best operating point with at most that many FP per case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

LESION_METRICS = ("lesion_n_ref", "lesion_n_pred", "lesion_tp", "lesion_fn", "lesion_fp",
                  "lesion_sensitivity", "lesion_dice")
MATCH_CRITERIA = ("iou", "dice", "centre")
FROC_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class LesionRule:
    """How components are matched (see the module docstring)."""

    criterion: str = "iou"
    threshold: float = 0.1
    max_distance_mm: float = 10.0
    connectivity: int | None = None  # None = full

    def __post_init__(self) -> None:
        if self.criterion not in MATCH_CRITERIA:
            raise ValueError(f"lesion matching {self.criterion!r} is not one of "
                             f"{', '.join(MATCH_CRITERIA)}")

    def describe(self) -> str:
        conn = "full" if self.connectivity is None else f"connectivity {self.connectivity}"
        if self.criterion == "centre":
            rule = f"centres of mass within {self.max_distance_mm:g} mm"
        else:
            rule = f"{'IoU' if self.criterion == 'iou' else 'Dice'} > {self.threshold:g}"
        return f"connected components ({conn}), greedy one-to-one matching by {rule}"


DEFAULT_RULE = LesionRule()


def components(mask: np.ndarray, connectivity: int | None = None) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask: (labels 1..k, k)."""
    m = np.asarray(mask, dtype=bool)
    structure = ndi.generate_binary_structure(m.ndim, m.ndim if connectivity is None
                                              else connectivity)
    labels, k = ndi.label(m, structure=structure)
    return labels, int(k)


def match_lesions(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None = None,
    rule: LesionRule = DEFAULT_RULE,
) -> dict[str, Any]:
    """Per-case detection figures (:data:`LESION_METRICS`) and the lesion lists.

    Besides the metrics: ``matches`` [(ref id, pred id, score)], ``pred_sizes`` (voxels per
    predicted component, index = id - 1) and ``pred_matched`` (bool per predicted component).
    """
    p_lab, n_pred = components(pred, rule.connectivity)
    r_lab, n_ref = components(ref, rule.connectivity)
    sp = np.ones(p_lab.ndim) if spacing is None else np.asarray(spacing, dtype=float)
    p_size = np.bincount(p_lab.ravel(), minlength=n_pred + 1)[1:]
    r_size = np.bincount(r_lab.ravel(), minlength=n_ref + 1)[1:]
    both = (p_lab > 0) & (r_lab > 0)
    pairs: dict[tuple[int, int], int] = {}
    if both.any():  # overlap voxel counts of every (reference, predicted) component pair
        key = r_lab[both].astype(np.int64) * (n_pred + 1) + p_lab[both]
        keys, counts = np.unique(key, return_counts=True)
        pairs = {(int(k // (n_pred + 1)), int(k % (n_pred + 1))): int(c)
                 for k, c in zip(keys, counts, strict=True)}
    candidates: list[tuple[float, int, int]] = []
    if rule.criterion == "centre":
        idx_r = np.arange(1, n_ref + 1)
        idx_p = np.arange(1, n_pred + 1)
        c_r = np.asarray(ndi.center_of_mass(np.ones_like(r_lab), r_lab, idx_r)) * sp \
            if n_ref else np.zeros((0, sp.size))
        c_p = np.asarray(ndi.center_of_mass(np.ones_like(p_lab), p_lab, idx_p)) * sp \
            if n_pred else np.zeros((0, sp.size))
        for i in range(n_ref):
            for j in range(n_pred):
                dist = float(np.linalg.norm(c_r[i] - c_p[j]))
                if dist <= rule.max_distance_mm:
                    candidates.append((dist, i + 1, j + 1))
        candidates.sort()
    else:
        for (r, p), inter in pairs.items():
            union = r_size[r - 1] + p_size[p - 1] - inter
            score = inter / union if rule.criterion == "iou" else \
                2.0 * inter / (r_size[r - 1] + p_size[p - 1])
            if score > rule.threshold:
                candidates.append((-score, r, p))
        candidates.sort()
    used_r: set[int] = set()
    used_p: set[int] = set()
    matches = []
    for key, r, p in candidates:
        if r in used_r or p in used_p:
            continue
        used_r.add(r)
        used_p.add(p)
        matches.append((r, p, abs(key)))
    tp = len(matches)
    # BraTS-2023 lesion-wise Dice; components are disjoint, so the union of the predicted
    # components touching lesion r has the summed size, and its overlap the summed overlaps
    touching = {p for (_, p) in pairs}
    fp_untouched = n_pred - len(touching)
    inter_r: dict[int, int] = {}
    size_r: dict[int, int] = {}
    for (r, p), inter in pairs.items():
        inter_r[r] = inter_r.get(r, 0) + inter
        size_r[r] = size_r.get(r, 0) + int(p_size[p - 1])
    dice_sum = sum(2.0 * inter_r[r] / (size_r[r] + int(r_size[r - 1])) for r in inter_r)
    den = n_ref + fp_untouched
    pred_matched = np.zeros(n_pred, dtype=bool)
    for _, p, _ in matches:
        pred_matched[p - 1] = True
    return {
        "lesion_n_ref": n_ref, "lesion_n_pred": n_pred, "lesion_tp": tp,
        "lesion_fn": n_ref - tp, "lesion_fp": n_pred - tp,
        "lesion_sensitivity": tp / n_ref if n_ref else math.nan,
        "lesion_dice": dice_sum / den if den else math.nan,
        "matches": matches, "pred_sizes": p_size.tolist(), "pred_matched": pred_matched.tolist(),
    }


def froc(cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """FROC over a minimum-size threshold from :func:`match_lesions` results of every case.

    Each case needs ``lesion_n_ref``, ``pred_sizes`` and ``pred_matched``. Returns ``points``
    [{min_size, sensitivity, fp_per_case}] (sensitivity pooled over all reference lesions),
    ``fp_rates`` and ``sensitivity_at`` (one value per rate), and ``score`` (their mean).
    """
    n_cases = len(cases)
    n_ref = sum(int(c["lesion_n_ref"]) for c in cases)
    sizes = np.asarray([s for c in cases for s in c["pred_sizes"]], dtype=float)
    hits = np.asarray([m for c in cases for m in c["pred_matched"]], dtype=bool)
    out: dict[str, Any] = {"n_cases": n_cases, "n_ref": n_ref, "points": [],
                           "fp_rates": list(FROC_FP_RATES), "sensitivity_at": [],
                           "score": math.nan}
    if n_cases == 0 or n_ref == 0:
        return out
    thresholds = np.unique(np.concatenate([sizes, [np.inf]]))
    for s in thresholds:
        keep = sizes >= s
        out["points"].append({"min_size": float(s),
                              "sensitivity": float(np.count_nonzero(keep & hits)) / n_ref,
                              "fp_per_case": float(np.count_nonzero(keep & ~hits)) / n_cases})
    for rate in FROC_FP_RATES:
        ok = [p["sensitivity"] for p in out["points"] if p["fp_per_case"] <= rate]
        out["sensitivity_at"].append(max(ok) if ok else 0.0)
    out["score"] = float(np.mean(out["sensitivity_at"]))
    return out
