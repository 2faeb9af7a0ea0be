"""Report files: ``per_case.csv``, ``summary.csv``, ``summary.json``, ``report.html`` and the
study files (``criteria.json``, ``subgroups.csv``, ``volume_agreement.csv``, ``gallery/``,
``report.pdf``). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.evaluation.agreement import volume_agreement
from medseg.evaluation.detection import DETECTION_COLUMNS, detection_rows
from medseg.evaluation.intervals import StatsOptions
from medseg.evaluation.lesions import LESION_METRICS
from medseg.evaluation.metrics import CLASS_METRICS, SEMANTIC_METRICS
from medseg.evaluation.report.gallery import write_gallery
from medseg.evaluation.report.html import render_html
from medseg.evaluation.report.pdf import html_to_pdf
from medseg.evaluation.stats import STATS, summarize, worst_cases
from medseg.io.atomic import write_text_atomic
from medseg.io.csvsafe import safe_row
from medseg.io.debughooks import pause_point


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


def per_case_columns(extra_metrics: Sequence[str] = (),
                     metadata_columns: Sequence[str] = ()) -> list[str]:
    """Columns of ``per_case.csv``; metadata columns come last as ``meta_<column>``."""
    return ["case", "class", "label", "status", *CLASS_METRICS, "nsd_tolerance_mm",
            *extra_metrics, *LESION_METRICS,
            *SEMANTIC_METRICS, "missing_distance_mm", "note", "error", "pred_file", "ref_file",
            *(f"meta_{c}" for c in metadata_columns)]


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """CSV with fixed columns: NaN as ``nan``, not applicable (None) as an empty cell; text
    that a spreadsheet would run as a formula starts with ``'`` (:mod:`medseg.io.csvsafe`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(safe_row(_cell(row.get(c)) for c in columns))
    write_text_atomic(path, buf.getvalue())


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per class and metric (the layout of ``summary.csv``)."""
    rows = []
    for name, item in summary.items():
        for metric, stats in item["metrics"].items():
            rows.append({"class": name, "label": item["label"], "metric": metric, **stats})
    return rows


#: columns of ``subgroups.csv``
SUBGROUP_COLUMNS = ("by", "group", "n_cases", "class", "metric", "n", "n_nan", "mean", "std",
                    "median", "ci_low", "ci_high", "ci_note")
#: columns of ``volume_agreement.csv``
AGREEMENT_COLUMNS = ("class", "n", "bias_ml", "loa_low_ml", "loa_high_ml", "bias_ci_low_ml",
                     "bias_ci_high_ml", "loa_low_ci_low_ml", "loa_low_ci_high_ml",
                     "loa_high_ci_low_ml", "loa_high_ci_high_ml", "bias_pct", "loa_low_pct",
                     "loa_high_pct", "ccc", "ccc_ci_low", "ccc_ci_high", "icc_a1",
                     "icc_a1_ci_low", "icc_a1_ci_high", "icc_c1", "icc_c1_ci_low",
                     "icc_c1_ci_high")


def agreement_rows(agreement: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per class (the layout of ``volume_agreement.csv``)."""
    rows = []
    for name, a in agreement.items():
        rows.append({"class": name, "n": a["n"], "bias_ml": a["ml"]["bias"],
                     "loa_low_ml": a["ml"]["loa_low"], "loa_high_ml": a["ml"]["loa_high"],
                     "bias_ci_low_ml": a["ml"]["bias_ci_low"],
                     "bias_ci_high_ml": a["ml"]["bias_ci_high"], "bias_pct": a["pct"]["bias"],
                     "loa_low_pct": a["pct"]["loa_low"], "loa_high_pct": a["pct"]["loa_high"],
                     "ccc": a["ccc"],
                     **{f"{k}_ml": a["ml"].get(k) for k in (
                         "loa_low_ci_low", "loa_low_ci_high", "loa_high_ci_low",
                         "loa_high_ci_high")},
                     **{k: a.get(k) for k in (
                         "ccc_ci_low", "ccc_ci_high", "icc_a1", "icc_a1_ci_low",
                         "icc_a1_ci_high", "icc_c1", "icc_c1_ci_low", "icc_c1_ci_high")}})
    return rows


def write_report(
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    settings: Mapping[str, Any],
    pairing: Any = None,
    extra_metrics: Sequence[str] = (),
    sections: Mapping[str, Any] | None = None,
    gallery: int = 6,
    pdf: bool = False,
    stats: StatsOptions | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write the report files; return the summary and the written paths.

    ``sections``: study sections (``criteria``, ``subgroups``, ``readers``) computed by the
    caller; volume agreement is always computed here. ``gallery``: how many worst cases get
    a slice picture (0: none). ``pdf``: also print ``report.pdf`` (headless Chromium).
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = [*CLASS_METRICS, *extra_metrics, *LESION_METRICS, *SEMANTIC_METRICS]
    summary = summarize(rows, metrics, stats)
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
    sections = dict(sections or {})
    if "volume_agreement" not in sections:
        sections["volume_agreement"] = volume_agreement(rows)
    metadata = sections.pop("metadata", None) or {}
    meta_columns = sorted({k for m in metadata.values() for k in m} - {"case"})
    if meta_columns:  # merged into per_case.csv for other tools (R, spreadsheets)
        rows = [{**r, **{f"meta_{k}": metadata.get(r["case"], {}).get(k, "")
                         for k in meta_columns}} for r in rows]
    write_csv(files["per_case"], rows, per_case_columns(extra_metrics, meta_columns))
    pause_point("report-per-case-written")
    write_csv(files["summary_csv"], summary_rows(summary),
              ["class", "label", "metric", *STATS, "n_errors", "n_excluded", "n_imputed"])
    write_csv(out / "volume_agreement.csv", agreement_rows(sections["volume_agreement"]),
              AGREEMENT_COLUMNS)
    files["volume_agreement"] = out / "volume_agreement.csv"
    if "criteria" in sections:
        files["criteria"] = out / "criteria.json"
        write_text_atomic(files["criteria"], json.dumps(json_safe(sections["criteria"]),
                                                        indent=2, allow_nan=False) + "\n")
    if (sections.get("detection") or {}).get("classes"):
        files["detection"] = out / "detection.csv"
        write_csv(files["detection"], detection_rows(sections["detection"]), DETECTION_COLUMNS)
    if "subgroups" in sections:
        files["subgroups"] = out / "subgroups.csv"
        write_csv(files["subgroups"], sections["subgroups"]["rows"], SUBGROUP_COLUMNS)
    pictures = write_gallery(rows, out / "gallery", k=gallery) if gallery else []
    document = {
        "n_cases": len(cases),
        "n_scored": len(cases) - len(errors),
        "errors": errors,
        "unpaired": unpaired,
        "classes": summary,
        "worst_cases": {"dice": worst_cases(rows, "dice"), "hd95": worst_cases(rows, "hd95")},
        **sections,
        "gallery": pictures,
        "settings": settings,
    }
    stored = {**document, "gallery": [{k: v for k, v in g.items() if k != "png_base64"}
                                       for g in pictures]}
    write_text_atomic(files["summary_json"],
                      json.dumps(json_safe(stored), indent=2, allow_nan=False) + "\n")
    write_text_atomic(files["html"], render_html(document, rows))
    if pdf:
        files["pdf"] = html_to_pdf(files["html"], out / "report.pdf")
    return summary, files
