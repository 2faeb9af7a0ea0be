"""Cohort detection statistics per lesion class, from the per-case rows.

For each class declared a lesion class, or (by default) each class whose reference holds more
than one connected component in some case (:mod:`medseg.evaluation.lesions`):

* ``sensitivity``: per-lesion sensitivity pooled over cases (sum TP / sum reference
  lesions), with its CI from the cluster bootstrap over cases (lesions of one case are not
  independent; :func:`medseg.evaluation.intervals.mean_ci` with each case a cluster);
* ``fp_per_case``: mean false-positive components per case, with its CI;
* ``lesion_dice``: the BraTS-2023 lesion-wise Dice, :func:`~medseg.evaluation.stats.describe`
  over cases;
* ``froc``: :func:`medseg.evaluation.lesions.froc` (size-threshold FROC and its score).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medseg.evaluation.intervals import StatsOptions, mean_ci
from medseg.evaluation.lesions import froc
from medseg.evaluation.stats import describe

#: columns of ``detection.csv``
DETECTION_COLUMNS = ("class", "n_cases", "n_ref_lesions", "n_pred_lesions", "tp", "fn", "fp",
                     "sensitivity", "sensitivity_ci_low", "sensitivity_ci_high",
                     "fp_per_case", "fp_per_case_ci_low", "fp_per_case_ci_high",
                     "lesion_dice", "lesion_dice_ci_low", "lesion_dice_ci_high", "froc_score",
                     "ci_note")


def detection_section(rows: Sequence[Mapping[str, Any]], classes: Sequence[str] | None = None,
                      options: StatsOptions | None = None, rule: str = "") -> dict[str, Any]:
    """``{"rule", "classes": {name: statistics}}`` (see the module docstring)."""
    scored = [r for r in rows if r.get("label") is not None and r.get("status") != "error"
              and r.get("lesion_n_ref") is not None]
    names = list(dict.fromkeys(r["class"] for r in scored))
    if classes is None:
        names = [n for n in names if any(r["class"] == n and r["lesion_n_ref"] > 1
                                         for r in scored)]
    else:
        wanted = {str(c) for c in classes}
        names = [n for n in names if str(n) in wanted]
    out: dict[str, Any] = {"rule": rule, "classes": {}}
    opts = options or StatsOptions()
    for name in names:
        cr = [r for r in scored if r["class"] == name]
        hits: list[float] = []
        lesion_cases: list[str] = []
        for r in cr:
            hits += [1.0] * int(r["lesion_tp"]) + [0.0] * int(r["lesion_fn"])
            lesion_cases += [r["case"]] * int(r["lesion_n_ref"])
        clustered = opts.replace(clusters={c: c for c in lesion_cases},
                                 cluster_column=opts.cluster_column or "case")
        sens = mean_ci(hits, clustered, cases=lesion_cases) if hits else {}
        fps = [float(r["lesion_fp"]) for r in cr]
        fp_ci = mean_ci(fps, opts, cases=[r["case"] for r in cr])
        dice = describe([r.get("lesion_dice") for r in cr], opts,
                        cases=[r["case"] for r in cr])
        n_ref = sum(int(r["lesion_n_ref"]) for r in cr)
        curve = froc([{"lesion_n_ref": r["lesion_n_ref"], "pred_sizes": r.get("lesion_sizes", []),
                       "pred_matched": r.get("lesion_matched", [])} for r in cr])
        out["classes"][name] = {
            "n_cases": len(cr), "n_ref_lesions": n_ref,
            "n_pred_lesions": sum(int(r["lesion_n_pred"]) for r in cr),
            "tp": sum(int(r["lesion_tp"]) for r in cr), "fn": sum(int(r["lesion_fn"]) for r in cr),
            "fp": sum(int(r["lesion_fp"]) for r in cr),
            "sensitivity": sum(hits) / len(hits) if hits else None,
            "sensitivity_ci_low": sens.get("ci_low"), "sensitivity_ci_high": sens.get("ci_high"),
            "fp_per_case": sum(fps) / len(fps) if fps else None,
            "fp_per_case_ci_low": fp_ci["ci_low"], "fp_per_case_ci_high": fp_ci["ci_high"],
            "lesion_dice": dice["mean"], "lesion_dice_ci_low": dice["ci_low"],
            "lesion_dice_ci_high": dice["ci_high"],
            "froc_score": curve["score"], "froc": curve,
            "ci_note": fp_ci["ci_note"],
        }
    return out


def detection_rows(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per class (the layout of ``detection.csv``)."""
    return [{"class": name, **{k: v for k, v in item.items() if k != "froc"}}
            for name, item in section.get("classes", {}).items()]
