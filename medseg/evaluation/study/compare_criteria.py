"""Pre-registered criteria on a model comparison (``medseg compare --criteria``).

A criteria file as for :mod:`medseg.evaluation.study.criteria` (JSON or YAML, a list or
``{criteria: [...]}``), each item::

    {"id": "NI-LIVER", "class": "liver", "metric": "dice", "statistic": "non_inferior"}
    {"id": "HD", "class": "all", "metric": "hd95", "statistic": "ci_high", "op": "<",
     "threshold": 1.0, "model": "B", "endpoint": "secondary"}

* ``class``: a class name (or value), or ``all``: one criterion per class, all must pass;
* ``metric``: a compared metric; ``model``: the model B (default every model after the
  first, each judged);
* ``statistic``: ``non_inferior`` (PASS when B was declared non-inferior at the compare
  margin, FAIL when not, NOT EVALUABLE below the minimum n or without a margin; no
  ``op``/``threshold``), or one of :data:`STATISTICS` (of B - A) with ``op`` and
  ``threshold``; ``ci_low`` / ``ci_high`` are the bounds of the CI of the mean difference
  and need the study's minimum n, like non-inferiority;
* ``endpoint``, ``min_n``: as for evaluation criteria (primary/secondary gatekeeping in
  file order).

Every result carries the value, ``n_pairs``, ``n_excluded``, ``n_imputed`` and the
missing-distance policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.evaluation.study.criteria import ENDPOINTS, OPS, ROUND_DIGITS, _read

STATISTICS = ("non_inferior", "mean_diff", "ci_low", "ci_high", "hl_estimate", "hl_ci_low",
              "hl_ci_high", "p_wilcoxon", "p_holm", "p_fdr")
_FIELDS = {"id", "class", "metric", "statistic", "op", "threshold", "model", "endpoint",
           "min_n", "description"}


@dataclass(frozen=True)
class ComparisonCriterion:
    id: str
    class_name: str
    metric: str
    statistic: str
    op: str = ""
    threshold: float | None = None
    model: str = ""
    endpoint: str = ""
    min_n: int = 1
    description: str = ""

    def text(self) -> str:
        who = self.model or "B"
        if self.statistic == "non_inferior":
            return f"{who} non-inferior to A on {self.metric} of {self.class_name}"
        return (f"{self.statistic} of {who} - A, {self.metric} of {self.class_name} "
                f"{self.op} {self.threshold:g}")


def load_comparison_criteria(path: str | Path, classes: Sequence[str] | None,
                             metrics: Sequence[str]) -> list[ComparisonCriterion]:
    """Read and check a comparison criteria file against the classes (None: not known before
    scoring, ``all`` then expands when judged) and the compared metrics."""
    path = Path(path)
    data = _read(path)
    if isinstance(data, Mapping):
        data = data.get("criteria")
    if not isinstance(data, list) or not data:
        raise InputError(path, "expected a non-empty list of criteria (or {criteria: [...]})")
    out = []
    for i, item in enumerate(data, 1):
        where = f"criterion {i}"
        if not isinstance(item, Mapping):
            raise InputError(path, f"{where} is not a mapping")
        missing = [k for k in ("class", "metric", "statistic") if k not in item]
        if missing:
            raise InputError(path, f"{where} lacks {', '.join(missing)}")
        unknown = sorted(set(map(str, item)) - _FIELDS)
        if unknown:
            raise InputError(path, f"{where} has unknown fields {', '.join(unknown)}")
        name = str(item["class"])
        if classes is not None and name != "all" and name not in classes:
            raise InputError(path, f"{where}: unknown class {name!r} (known: all, "
                                   f"{', '.join(classes)})")
        metric = str(item["metric"])
        if metric not in metrics:
            raise InputError(path, f"{where}: metric {metric!r} is not compared "
                                   f"({', '.join(metrics)})")
        statistic = str(item["statistic"])
        if statistic not in STATISTICS:
            raise InputError(path, f"{where}: unknown statistic {statistic!r} "
                                   f"({', '.join(STATISTICS)})")
        op, threshold = str(item.get("op", "")), item.get("threshold")
        if statistic != "non_inferior":
            if op not in OPS:
                raise InputError(path, f"{where}: op {op!r} must be one of {' '.join(OPS)}")
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
                raise InputError(path, f"{where}: threshold {threshold!r} is not a number")
        endpoint = str(item.get("endpoint", ""))
        if endpoint and endpoint not in ENDPOINTS:
            raise InputError(path, f"{where}: endpoint {endpoint!r} is not primary or secondary")
        min_n = item.get("min_n", 1)
        if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1:
            raise InputError(path, f"{where}: min_n {min_n!r} is not a positive whole number")
        expand = name == "all" and classes is not None
        for cls in (classes if expand else [name]):
            out.append(ComparisonCriterion(
                id=f"{item.get('id', f'K{i}')}" + (f"[{cls}]" if expand else ""),
                class_name=cls, metric=metric, statistic=statistic, op=op,
                threshold=None if threshold is None else float(threshold),
                model=str(item.get("model", "")), endpoint=endpoint, min_n=min_n,
                description=str(item.get("description", ""))))
    if any(c.endpoint for c in out) and not any(c.endpoint == "primary" for c in out):
        raise InputError(path, "endpoints are declared but none is primary")
    return out


def judge_comparison(criteria: Sequence[ComparisonCriterion],
                     rows: Sequence[Mapping[str, Any]], min_n: int) -> dict[str, Any]:
    """PASS / FAIL / NOT EVALUABLE / NOT TESTED of every criterion for every model B."""
    results = []
    gate_open = True
    has_endpoints = any(c.endpoint for c in criteria)
    for c in criteria:
        targets = [r for r in rows if c.class_name in ("all", r["class"])
                   and r["metric"] == c.metric and (not c.model or r["model_b"] == c.model)]
        for r in targets:
            endpoint = c.endpoint or ("primary" if has_endpoints else "")
            text = c.text().replace(" of all", f" of {r['class']}")
            item = {"id": c.id + (f"[{r['class']}]" if c.class_name == "all" else ""),
                    "model_a": r["model_a"], "model_b": r["model_b"],
                    "class": r["class"], "metric": c.metric, "statistic": c.statistic,
                    "op": c.op, "threshold": c.threshold, "endpoint": endpoint,
                    "text": f"{r['model_b']} vs {r['model_a']}: {text}",
                    "n": r["n_pairs"], "n_pairs": r["n_pairs"], "n_excluded": r["n_excluded"],
                    "n_imputed": r.get("n_imputed", 0),
                    "missing_distance": r.get("missing_distance", ""), "value": None}
            needs_ci = c.statistic in ("non_inferior", "ci_low", "ci_high")
            need = max(c.min_n, min_n if needs_ci else 1)
            value = r.get(c.statistic)
            if endpoint == "secondary" and not gate_open:
                item.update(result="NOT TESTED",
                            note="an earlier endpoint of the hierarchy did not pass")
            elif r["n_pairs"] < need:
                item.update(result="NOT EVALUABLE", note=f"n < {need}: not decidable")
            elif c.statistic == "non_inferior":
                if value is None:
                    item.update(result="NOT EVALUABLE",
                                note=r.get("non_inferior_note") or "no margin for this metric")
                else:
                    item.update(value=bool(value), result="PASS" if value else "FAIL",
                                note=r.get("non_inferior_note", ""))
            elif value is None or value != value:
                item.update(result="NOT EVALUABLE", note="statistic undefined")
            else:
                ok = OPS[c.op](round(float(value), ROUND_DIGITS),
                               round(float(c.threshold), ROUND_DIGITS))
                item.update(value=float(value), result="PASS" if ok else "FAIL", note="")
            if endpoint and item["result"] != "PASS":
                gate_open = False
            results.append(item)
    deciding = [r for r in results if r["endpoint"] in ("", "primary")]
    passed = bool(deciding) and all(r["result"] == "PASS" for r in deciding)
    verdict = ("PASS" if passed else "FAIL" if any(r["result"] == "FAIL" for r in deciding)
               else "NOT EVALUABLE")
    return {"passed": passed, "verdict": verdict, "criteria": results, "min_n": min_n}
