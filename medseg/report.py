"""Cohort summaries and report files: ``per_case.csv``, ``summary.csv``, ``summary.json``,
``report.html``.

Statistics per class and metric (:func:`describe`) cover the finite values only and always say
how many cases they cover (``n``) and how many were NaN under the empty-mask policy
(``n_nan``); failed cases are counted apart (``n_errors``). The 95% confidence interval of the
mean is a percentile bootstrap (:func:`bootstrap_ci`: 2000 resamples, fixed seed, vectorised).
Every file is written atomically. The HTML page is self-contained (inline CSS and SVG plots)
so it can be attached to a study record.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medseg.io.atomic import write_text_atomic
from medseg.metrics import CLASS_METRICS, METRIC_INFO, METRICS_VERSION, SEMANTIC_METRICS

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
STATS = ("n", "n_nan", "mean", "std", "median", "q1", "q3", "min", "max", "ci_low", "ci_high")
STATUSES = ("ok", "both_empty", "pred_empty", "ref_empty", "error")

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
    "voxels within the tolerance (<=)."
)


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


def describe(values: Sequence[float | None] | np.ndarray) -> dict[str, float | int]:
    """n (finite values), n_nan, mean, std (ddof 1), median, q1, q3, min, max, 95% CI."""
    x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    finite = x[np.isfinite(x)]
    out: dict[str, float | int] = {"n": int(finite.size), "n_nan": int(x.size - finite.size)}
    if finite.size == 0:
        out.update({k: math.nan for k in STATS[2:]})
        return out
    q1, med, q3 = np.percentile(finite, [25, 50, 75])
    lo, hi = bootstrap_ci(finite)
    out.update({
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        "median": float(med), "q1": float(q1), "q3": float(q3),
        "min": float(finite.min()), "max": float(finite.max()),
        "ci_low": lo, "ci_high": hi,
    })
    return out


def summarize(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Per class: label, case counts by status and :func:`describe` of every metric.

    ``rows`` are :func:`medseg.evaluation.evaluate_folders` rows; a metric a class row does not
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
    for name, item in out.items():
        class_rows = [r for r in rows if r["class"] == name and r.get("status") != "error"]
        for metric in metrics:
            values = [r.get(metric) for r in class_rows]
            if not class_rows or all(v is None for v in values):
                continue
            item["metrics"][metric] = {**describe(values), "n_errors": item["status"]["error"]}
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


# ---- settings -------------------------------------------------------------------------------
def software_versions() -> dict[str, str]:
    import scipy

    from medseg import __version__

    return {"medseg": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
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
) -> dict[str, Any]:
    """Everything a reader of the report needs to reproduce or judge it."""
    from medseg.metrics import tolerance_for

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
        "bootstrap": f"percentile bootstrap of the mean, {BOOTSTRAP_RESAMPLES} resamples, "
                     f"seed {BOOTSTRAP_SEED}",
        "software": software_versions(),
    }


# ---- writers --------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj


def per_case_columns(extra_metrics: Sequence[str] = ()) -> list[str]:
    return ["case", "class", "label", "status", *CLASS_METRICS, *extra_metrics,
            *SEMANTIC_METRICS, "error", "pred_file", "ref_file"]


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """CSV with fixed columns: NaN as ``nan``, not applicable (None) as an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    write_text_atomic(path, buf.getvalue())


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per class and metric (the layout of ``summary.csv``)."""
    rows = []
    for name, item in summary.items():
        for metric, stats in item["metrics"].items():
            rows.append({"class": name, "label": item["label"], "metric": metric, **stats})
    return rows


def write_report(
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    settings: Mapping[str, Any],
    pairing: Any = None,
    extra_metrics: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write the four report files; return the summary and the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = [*CLASS_METRICS, *extra_metrics, *SEMANTIC_METRICS]
    summary = summarize(rows, metrics)
    unpaired = {
        "pred_only": list(getattr(pairing, "pred_only", [])),
        "ref_only": list(getattr(pairing, "ref_only", [])),
        "ignored": list(getattr(pairing, "ignored", [])),
    }
    errors = {r["case"]: r["error"] for r in rows if r.get("error")}
    cases = sorted({r["case"] for r in rows})
    files = {
        "per_case": out / "per_case.csv",
        "summary_csv": out / "summary.csv",
        "summary_json": out / "summary.json",
        "html": out / "report.html",
    }
    write_csv(files["per_case"], rows, per_case_columns(extra_metrics))
    write_csv(files["summary_csv"], summary_rows(summary),
              ["class", "label", "metric", *STATS, "n_errors"])
    document = {
        "n_cases": len(cases),
        "n_scored": len(cases) - len(errors),
        "errors": errors,
        "unpaired": unpaired,
        "classes": summary,
        "worst_cases": {"dice": worst_cases(rows, "dice"), "hd95": worst_cases(rows, "hd95")},
        "settings": settings,
    }
    write_text_atomic(files["summary_json"],
                      json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n")
    write_text_atomic(files["html"], render_html(document, rows))
    return summary, files


# ---- HTML -----------------------------------------------------------------------------------
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:12px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.err{color:#a00}.note{color:#555;font-size:12px}svg{display:block;margin:.5em 0}
"""
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def box_strip_svg(groups: Mapping[str, Sequence[float | None]], title: str, unit: str = "",
                  width: int = 720, height: int = 260) -> str:
    """An inline SVG box plot (median, IQR, 1.5 IQR whiskers) with jittered points per group."""
    esc = html.escape
    data = {k: np.asarray([v for v in vals if v is not None and math.isfinite(v)], float)
            for k, vals in groups.items()}
    allv = np.concatenate([v for v in data.values() if v.size] or [np.zeros(1)])
    lo, hi = min(0.0, float(allv.min())), float(allv.max())
    hi = hi if hi > lo else lo + 1.0
    hi += 0.05 * (hi - lo)
    left, right, top, bottom = 60, 10, 24, 40
    pw, ph = width - left - right, height - top - bottom

    def y(v: float) -> float:
        return top + ph * (1.0 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{esc(title)}">',
             f'<text x="{left}" y="15" font-size="13" font-weight="bold">{esc(title)}</text>']
    for t in np.linspace(lo, hi, 5):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y(t) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{t:.3g}</text>')
    parts.append(f'<text x="12" y="{top + ph / 2}" font-size="11" transform="rotate(-90 12 '
                 f'{top + ph / 2})" text-anchor="middle">{esc(unit)}</text>')
    n = max(1, len(data))
    rng = np.random.default_rng(0)
    for i, (name, vals) in enumerate(data.items()):
        cx = left + pw * (i + 0.5) / n
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<text x="{cx:.1f}" y="{height - 22}" font-size="11" '
                     f'text-anchor="middle">{esc(str(name))} (n={vals.size})</text>')
        if vals.size == 0:
            continue
        q1, med, q3 = np.percentile(vals, [25, 50, 75])
        iqr = q3 - q1
        wlo = float(vals[vals >= q1 - 1.5 * iqr].min())
        whi = float(vals[vals <= q3 + 1.5 * iqr].max())
        bw = min(60.0, pw / n * 0.5)
        parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(wlo):.1f}" y2="{y(whi):.1f}" '
                     f'stroke="{color}"/>')
        parts.append(f'<rect x="{cx - bw / 2:.1f}" y="{y(q3):.1f}" width="{bw:.1f}" '
                     f'height="{max(y(q1) - y(q3), 0.5):.1f}" fill="{color}" '
                     'fill-opacity="0.25" stroke="' + color + '"/>')
        parts.append(f'<line x1="{cx - bw / 2:.1f}" x2="{cx + bw / 2:.1f}" y1="{y(med):.1f}" '
                     f'y2="{y(med):.1f}" stroke="{color}" stroke-width="2"/>')
        jitter = rng.uniform(-bw * 0.4, bw * 0.4, vals.size)
        for v, j in zip(vals, jitter, strict=True):
            parts.append(f'<circle cx="{cx + j:.1f}" cy="{y(float(v)):.1f}" r="2.5" '
                         f'fill="{color}" fill-opacity="0.7"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(document: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The self-contained report page."""
    esc = html.escape
    settings = document["settings"]
    classes = document["classes"]
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           "<title>medseg evaluation report</title>", f"<style>{CSS}</style></head><body>",
           "<h1>Segmentation evaluation report</h1>",
           f"<p>{document['n_cases']} cases, {document['n_scored']} scored, "
           f"{len(document['errors'])} failed. Created {esc(str(settings.get('created', '')))}"
           f" by medseg {esc(settings['software']['medseg'])}.</p>"]
    unp = document["unpaired"]
    if unp["pred_only"] or unp["ref_only"]:
        out.append("<h2>Unpaired files (not scored)</h2><ul>")
        for f in unp["pred_only"]:
            out.append(f"<li class='err'>prediction without reference: {esc(f)}</li>")
        for f in unp["ref_only"]:
            out.append(f"<li class='err'>reference without prediction: {esc(f)}</li>")
        out.append("</ul>")
    if unp["ignored"]:
        out.append("<p class='note'>Ignored (not an image): "
                   + ", ".join(esc(f) for f in unp["ignored"]) + "</p>")
    if document["errors"]:
        out.append("<h2>Cases that could not be scored</h2><table><tr><th class='l'>case</th>"
                   "<th class='l'>error</th></tr>")
        for case, err in document["errors"].items():
            out.append(f"<tr><td class='l'>{esc(case)}</td><td class='l err'>{esc(err)}</td></tr>")
        out.append("</table>")
    out.append("<h2>Summary</h2><p class='note'>Statistics over finite values; n = cases "
               "covered, NaN = cases where the metric is undefined under the empty-mask policy; "
               "CI = 95% bootstrap interval of the mean.</p>")
    head = "".join(f"<th>{h}</th>" for h in ("n", "NaN", "mean", "std", "median", "Q1", "Q3",
                                             "min", "max", "CI low", "CI high"))
    for name, item in classes.items():
        st = item["status"]
        counts = ", ".join(f"{k} {v}" for k, v in st.items() if v)
        out.append(f"<h3>{esc(str(name))}"
                   + (f" (label {esc(str(item['label']))})" if item["label"] else "")
                   + f"</h3><p class='note'>{item['n_cases']} cases: {esc(counts)}</p>")
        out.append(f"<table><tr><th class='l'>metric</th>{head}</tr>")
        for metric, s in item["metrics"].items():
            unit = METRIC_INFO.get(metric, ("", True, ""))[0]
            label = f"{metric} ({unit})" if unit else metric
            cells = "".join(f"<td>{_fmt(s[k])}</td>" for k in STATS)
            out.append(f"<tr><td class='l'>{esc(label)}</td>{cells}</tr>")
        out.append("</table>")
    class_rows = [r for r in rows if r.get("label") is not None]
    names = list(dict.fromkeys(r["class"] for r in class_rows))
    for metric, unit in (("dice", ""), ("hd95", "mm")):
        groups = {n: [r.get(metric) for r in class_rows if r["class"] == n] for n in names}
        if groups:
            out.append(box_strip_svg(groups, f"{metric} per class", unit))
    out.append("<h2>Worst cases</h2>")
    for metric, per_class in document["worst_cases"].items():
        direction = "lowest" if METRIC_INFO[metric][1] else "highest"
        out.append(f"<p><b>{metric}</b> ({direction})</p><table><tr><th class='l'>class</th>"
                   "<th class='l'>cases</th></tr>")
        for name, items in per_class.items():
            listing = ", ".join(f"{esc(c)} ({v:.4g})" for c, v in items)
            out.append(f"<tr><td class='l'>{esc(str(name))}</td><td class='l'>{listing}</td></tr>")
        out.append("</table>")
    out.append("<h2>Settings</h2><table>")
    for key, value in settings.items():
        if isinstance(value, Mapping):
            text = "<br>".join(f"{esc(str(k))}: {esc(str(v))}" for k, v in value.items()) or "none"
        else:
            text = esc(str(value))
        out.append(f"<tr><th class='l'>{esc(key)}</th><td class='l'>{text}</td></tr>")
    out.append("</table></body></html>\n")
    return "\n".join(out)
