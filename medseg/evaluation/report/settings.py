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
    tolerance_for,
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


def settings_dict(
    *,
    labels: Mapping[int, str] | None,
    classes: Mapping[int, str],
    tolerance: float | Mapping[Any, float],
    empty_score: float,
    resample: bool,
    workers: int,
    extra_metrics: Sequence[Any] = (),
    pred_dir: str = "",
    ref_dir: str = "",
    missing_distance: str = "worst",
    stats: StatsOptions | None = None,
) -> dict[str, Any]:
    """Everything a reader of the report needs to reproduce or judge it."""

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pred_dir": pred_dir,
        "ref_dir": ref_dir,
        "labels": "all non-zero values found" if labels is None
        else {str(v): n for v, n in labels.items()},
        "nsd_tolerance_mm": {n: tolerance_for(tolerance, v, n) for v, n in classes.items()},
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
