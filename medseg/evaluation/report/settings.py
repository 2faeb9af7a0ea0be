"""The settings block of a report: everything a reader needs to reproduce or judge it."""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from medseg import __version__
from medseg.evaluation.intervals import DEFAULT_STATS, StatsOptions
from medseg.evaluation.metrics import (
    CLASS_METRICS,
    METRIC_INFO,
    METRICS_VERSION,
    NSD_RTOL,
    SEMANTIC_METRICS,
    VOXEL_TOLERANCE,
    explicit_tolerance,
)

EMPTY_POLICY = (
    "Both masks empty (both_empty): Dice, IoU and NSD are undefined (NaN) unless empty_score "
    "is set, and counted apart; distances, sensitivity, precision and relative volume "
    "difference are NaN; specificity 1. One mask empty (pred_empty / ref_empty): Dice, IoU "
    "and NSD are 0, surface distances NaN (missing). Statistics use finite values only and "
    "report n (cases covered) and n_nan."
)
BOUNDARY = (
    "Border = mask minus its face-connected binary erosion (outside the image = background), "
    "as MONAI get_mask_edges; distances are exact Euclidean distances in mm between border "
    "voxel centres using the voxel spacing; HD95 = max of the two directed 95th percentiles "
    "(linear interpolation); ASSD = mean of pooled directed distances; NSD counts border "
    f"voxels within the tolerance (<=, with a relative slack of {NSD_RTOL:g} so that float32 "
    "spacings do not drop points lying exactly on it). A 3D image with a single slice "
    "(X x Y x 1) is scored in 2D (in-plane borders), volumes with its slice thickness."
)

MISSING_POLICY = {
    "worst": "HD95, HD and ASSD of a structure present in only one of prediction and reference "
             "(missed, or predicted where the reference has none) are set to the diagonal of "
             "the image extent in mm (the worst possible distance; Metrics Reloaded, MSD/BraTS "
             "practice) and counted as n_imputed",
    "exclude": "HD95, HD and ASSD of a structure present in only one map are undefined (NaN) "
               "and left out of every statistic (counted in n_nan / n_excluded): a model is "
               "not penalised on distances for missing an organ",
}


def software_versions() -> dict[str, str]:
    import scipy
    import SimpleITK


    return {"medseg": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "SimpleITK": SimpleITK.Version_VersionString(),
            "python": sys.version.split()[0], "platform": platform.platform()}


def tolerance_table(tolerance: float | Mapping[Any, float] | None, classes: Mapping[int, str],
                    rows: Sequence[Mapping[str, Any]] = ()) -> dict[str, float | str | None]:
    """``{class: mm}``: the tolerance given, else the voxel size the cases used (one number
    when they agree, ``"a-b"`` when the cases' voxel sizes differ; None when no case had a
    border of that class)."""
    out: dict[str, float | str | None] = {}
    for value, name in classes.items():
        given = explicit_tolerance(tolerance, value, name)
        if given is not None:
            out[name] = given
            continue
        used = sorted({float(r["nsd_tolerance_mm"]) for r in rows if r.get("class") == name
                       and r.get("nsd_tolerance_mm") is not None})
        out[name] = (None if not used else used[0] if len(used) == 1
                     else f"{used[0]:g}-{used[-1]:g}")
    return out


def tolerance_rule(tolerance: float | Mapping[Any, float] | None,
                   classes: Mapping[int, str]) -> str:
    """In words: where the NSD tolerances came from."""
    voxel = [n for v, n in classes.items() if explicit_tolerance(tolerance, v, n) is None]
    if not voxel:
        return "set by the user (--tolerance)"
    if len(voxel) == len(classes):
        return f"default: {VOXEL_TOLERANCE}"
    return f"set by the user (--tolerance); {', '.join(voxel)}: {VOXEL_TOLERANCE}"


def tolerance_text(settings: Mapping[str, Any]) -> str:
    """One line for stdout and the page: the tolerance per class and where it came from."""
    table = settings.get("nsd_tolerance_mm") or {}
    values = {str(v) for v in table.values() if v is not None}
    if len(values) == 1:
        mm = next(v for v in table.values() if v is not None)
        shown = f"{mm:g} mm" if isinstance(mm, float) else f"{mm} mm"
    else:
        shown = ", ".join(f"{n} {v:g} mm" if isinstance(v, float) else f"{n} {v} mm"
                          for n, v in table.items() if v is not None) or "none applied"
    return f"{shown} ({settings.get('nsd_tolerance', '')})"


def settings_dict(
    *,
    labels: Mapping[int, str] | None,
    classes: Mapping[int, str],
    tolerance: float | Mapping[Any, float] | None,
    empty_score: float,
    resample: bool,
    workers: int,
    extra_metrics: Sequence[Any] = (),
    pred_dir: str = "",
    ref_dir: str = "",
    missing_distance: str = "worst",
    stats: StatsOptions | None = None,
    rows: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Everything a reader of the report needs to reproduce or judge it (``rows``: the
    per-case rows, for the voxel-size tolerances they used)."""

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pred_dir": pred_dir,
        "ref_dir": ref_dir,
        "labels": "all non-zero values found" if labels is None
        else {str(v): n for v, n in labels.items()},
        "nsd_tolerance_mm": tolerance_table(tolerance, classes, rows),
        "nsd_tolerance": tolerance_rule(tolerance, classes),
        "empty_score": None if math.isnan(empty_score) else empty_score,
        "resample": "nearest neighbour onto the reference grid" if resample else "off",
        "workers": workers,
        "metrics_version": METRICS_VERSION,
        "metric_definitions": {m: METRIC_INFO[m][2] for m in CLASS_METRICS + SEMANTIC_METRICS},
        "extra_metrics": {s.name: s.description for s in extra_metrics},
        "boundary": BOUNDARY,
        "empty_mask_policy": EMPTY_POLICY,
        "missing_distance": missing_distance,
        "missing_distance_policy": MISSING_POLICY[missing_distance],
        "bootstrap": (stats or DEFAULT_STATS).describe(),
        "intervals": (stats or DEFAULT_STATS).record(),
        "software": software_versions(),
    }
