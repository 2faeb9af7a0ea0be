"""Cohort statistics: n, NaN counts, mean, spread and the CI of the mean.

Statistics per class and metric (:func:`describe`) cover the finite values only and always say
how many cases they cover (``n``) and how many were NaN under the empty-mask policy
(``n_nan``); failed cases are counted apart (``n_errors``), and ``n_excluded`` is their sum.
``n_imputed`` counts the distances set to the worst case for a missed or spurious structure
(``missing_distance="worst"``, :mod:`medseg.evaluation.pairs`). The confidence interval of
the mean is :func:`medseg.evaluation.intervals.mean_ci` (BCa by default, none below
``min_n``); :func:`bootstrap_ci` is the plain percentile bootstrap, kept as a building block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medseg.evaluation.intervals import DEFAULT_STATS, StatsOptions, bootstrap_matrix, mean_ci
from medseg.evaluation.metrics import METRIC_INFO

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
STATS = ("n", "n_nan", "mean", "std", "median", "q1", "q3", "min", "max", "ci_low", "ci_high",
         "ci_low_mc_se", "ci_high_mc_se", "ci_note")
#: distances set to the image diagonal for a missed or spurious structure (policy "worst")
IMPUTED_METRICS = ("hd95", "hd", "assd")
STATUSES = ("ok", "both_empty", "pred_empty", "ref_empty", "error")


# ---- statistics -----------------------------------------------------------------------------
def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of the finite ``values``."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def describe(
    values: Sequence[float | None] | np.ndarray,
    options: StatsOptions | None = None,
    *,
    cases: Sequence[str] | None = None,
    boot: np.ndarray | None = None,
) -> dict[str, Any]:
    """n (finite values), n_nan, mean, std (ddof 1), median, q1, q3, min, max, and the CI of
    the mean with its Monte-Carlo errors and note (:func:`~medseg.evaluation.intervals.mean_ci`;
    ``cases`` name the values for a cluster bootstrap; ``boot`` the resampled means when
    computed already)."""
    x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    finite = x[np.isfinite(x)]
    out: dict[str, Any] = {"n": int(finite.size), "n_nan": int(x.size - finite.size)}
    if finite.size == 0:
        out.update({k: math.nan for k in STATS[2:9]})
        out.update(mean_ci(finite, options))
        return out
    q1, med, q3 = np.percentile(finite, [25, 50, 75])
    out.update({
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        "median": float(med), "q1": float(q1), "q3": float(q3),
        "min": float(finite.min()), "max": float(finite.max()),
    })
    out.update(mean_ci(x, options, cases=cases, boot=boot))
    return out


def summarize(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
              options: StatsOptions | None = None) -> dict[str, Any]:
    """Per class: label, case counts by status and :func:`describe` of every metric, with
    ``n_errors``, ``n_excluded`` (NaN or failed) and ``n_imputed`` (worst-case distances).

    ``rows`` are :func:`medseg.evaluation.run.evaluate_folders` rows; a metric a class row does not
    carry (None) is not applicable and is left out.
    """
    out: dict[str, Any] = {}
    for row in rows:
        name = row["class"]
        if name == "" and row.get("status") == "error":
            continue
        item = out.setdefault(name, {"label": row.get("label"), "n_cases": 0,
                                     "status": dict.fromkeys(STATUSES, 0), "metrics": {}})
        item["n_cases"] += 1
        item["status"][row.get("status", "ok")] += 1
    opts = options or DEFAULT_STATS
    for name, item in out.items():
        class_rows = [r for r in rows if r["class"] == name and r.get("status") != "error"]
        table = {m: [r.get(m) for r in class_rows] for m in metrics}
        table = {m: v for m, v in table.items() if class_rows and any(x is not None for x in v)}
        boots = _shared_bootstrap(table, opts)
        for metric, values in table.items():
            stats = describe(values, options, cases=[r["case"] for r in class_rows],
                             boot=boots.get(metric))
            imputed = sum(1 for r in class_rows if metric in IMPUTED_METRICS
                          and r.get("missing_distance_mm") is not None)
            item["metrics"][metric] = {**stats, "n_errors": item["status"]["error"],
                                       "n_excluded": stats["n_nan"] + item["status"]["error"],
                                       "n_imputed": imputed}
    return out


def _shared_bootstrap(table: Mapping[str, Sequence[Any]],
                      opts: StatsOptions) -> dict[str, np.ndarray]:
    """Resampled means of every metric whose finite values sit in the same cases, one matrix
    product per such group (the same draws as one metric at a time; much faster)."""
    if opts.ci_method == "t" or opts.clusters is not None:
        return {}
    groups: dict[bytes, list[tuple[str, np.ndarray]]] = {}
    for metric, values in table.items():
        x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
        keep = np.isfinite(x)
        if np.count_nonzero(keep) >= opts.min_n:
            groups.setdefault(np.packbits(keep).tobytes() + bytes([keep.size % 8]),
                              []).append((metric, x[keep]))
    out: dict[str, np.ndarray] = {}
    for members in groups.values():
        means = bootstrap_matrix(np.column_stack([x for _, x in members]), opts)
        if means is not None:
            out.update({m: means[:, j] for j, (m, _) in enumerate(members)})
    return out


def worst_cases(rows: Sequence[Mapping[str, Any]], metric: str, k: int = 5) -> dict[str, list]:
    """Per class the ``k`` worst finite values of ``metric`` as (case, value), worst first."""
    higher = METRIC_INFO.get(metric, ("", True, ""))[1]
    out: dict[str, list] = {}
    for row in rows:
        value = row.get(metric)
        if value is None or not np.isfinite(value):
            continue
        out.setdefault(row["class"], []).append((row["case"], float(value)))
    return {c: sorted(v, key=lambda cv: cv[1], reverse=not higher)[:k] for c, v in out.items()}
