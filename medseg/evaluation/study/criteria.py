"""Pre-registered acceptance criteria, judged PASS or FAIL on a scored cohort.

A criteria file (JSON, or YAML when it ends in ``.yaml``/``.yml``) holds a list of criteria,
or ``{"criteria": [...]}``. Each criterion::

    {"class": "liver", "metric": "dice", "statistic": "ci_low", "op": ">=", "threshold": 0.9,
     "id": "C1"}   # id optional

* ``class``: a class name of ``--labels`` (or its value); without ``--labels`` a label value.
* ``metric``: a per-class metric (:data:`medseg.evaluation.metrics.CLASS_METRICS`, or a plugin
  metric).
* ``statistic``: ``mean``, ``median``, ``ci_low``/``ci_high`` (the bounds of the CI of the
  mean, :func:`medseg.evaluation.intervals.mean_ci`: BCa by default), or ``pNN``: the NN-th
  percentile of the per-case values (``p5`` of Dice >= 0.8 says "95% of cases reach 0.8",
  with numpy's linear interpolation).
* ``op``: ``>=``, ``>``, ``<=``, ``<``; ``threshold``: a number.
* ``class: all``: the criterion holds for every class (one result per class).
* ``subgroup`` (optional, ``"column=value"``): judged on the cases whose metadata column has
  that value only (needs ``--metadata``).
* cohort statistics, named by a pseudo-metric: ``metric: volume`` with a statistic of
  :data:`AGREEMENT_STATISTICS` (Bland-Altman bias and limits in mL, Lin's CCC and ICCs with
  their bounds; :func:`medseg.evaluation.agreement.bland_altman`), or ``metric: detection``
  with one of :data:`DETECTION_STATISTICS` (pooled lesion sensitivity and its bounds, FP per
  case and its bounds, lesion-wise Dice, FROC score; :mod:`medseg.evaluation.detection`).
  These always need the study's ``min_n`` cases.
* ``min_n`` (optional): the fewest finite values the criterion may be judged on (default 1;
  a ``ci_low``/``ci_high`` criterion always needs the study's ``min_n``,
  :class:`~medseg.evaluation.intervals.StatsOptions`). Below it the result is
  ``NOT EVALUABLE``, which is not a PASS (``--fail-on-criteria`` exits 3).
* ``endpoint`` (optional): ``primary`` or ``secondary``. When any criterion names one, the
  primary criteria decide ``passed``; the secondary ones are judged in file order as a fixed
  sequence (gatekeeping): each only while every primary and every earlier secondary passed,
  the rest ``NOT TESTED``. This keeps the family-wise error at the level of one test
  without any adjustment. Without ``endpoint`` every criterion is co-primary (all must pass).

:func:`load_criteria` checks every field, class and metric before anything is scored and
raises a one-line :class:`~medseg.errors.InputError` naming the file and the criterion.
:func:`judge` computes the statistic over the finite per-case values of that class (the
empty-mask policy and ``missing_distance`` decide which are finite) and says PASS, FAIL or
NOT EVALUABLE with the value, the number of cases it was judged on (``n``), the cases left
out (``n_excluded``: NaN or failed), the worst-case distances counted in (``n_imputed``); no
finite value is a FAIL. Value and threshold are both rounded to 12 decimals
(:data:`ROUND_DIGITS`) before the comparison. A ``ci_low``/``ci_high`` value within 2
Monte-Carlo SE of its threshold is flagged (``mc_flag``): another seed could flip it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.evaluation.agreement import bland_altman
from medseg.evaluation.detection import detection_section
from medseg.evaluation.intervals import DEFAULT_STATS, StatsOptions, mean_ci, near_threshold
from medseg.evaluation.lesions import LESION_METRICS
from medseg.evaluation.metrics import CLASS_METRICS
from medseg.evaluation.stats import IMPUTED_METRICS

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
STATISTICS = ("mean", "median", "ci_low", "ci_high")
_PERCENTILE = re.compile(r"^p(\d{1,3}(?:\.\d+)?)$")
_FIELDS = {"class", "metric", "statistic", "op", "threshold", "id", "description", "min_n",
           "endpoint", "subgroup"}
AGREEMENT_STATISTICS = ("bias_ml", "bias_ci_low_ml", "bias_ci_high_ml", "loa_low_ml",
                        "loa_high_ml", "loa_low_ci_low_ml", "loa_high_ci_high_ml", "bias_pct",
                        "ccc", "ccc_ci_low", "ccc_ci_high", "icc_a1", "icc_a1_ci_low",
                        "icc_a1_ci_high", "icc_c1", "icc_c1_ci_low", "icc_c1_ci_high")
DETECTION_STATISTICS = ("sensitivity", "sensitivity_ci_low", "sensitivity_ci_high",
                        "fp_per_case", "fp_per_case_ci_low", "fp_per_case_ci_high",
                        "lesion_dice", "lesion_dice_ci_low", "lesion_dice_ci_high", "froc_score")
#: label of a criterion on every class
ALL_CLASSES = 0
ENDPOINTS = ("primary", "secondary")
#: value and threshold are rounded to this many decimals before the comparison, so that
#: floating-point noise (a mean of 0.9, 0.8, 0.7 is 0.8000000000000002) cannot flip a
#: criterion whose value lies exactly on its threshold
ROUND_DIGITS = 12
#: size cap of a criteria file (it is a short list written by hand)
MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class Criterion:
    """One acceptance criterion (see the module docstring)."""

    id: str
    class_name: str
    label: int
    metric: str
    statistic: str
    op: str
    threshold: float
    description: str = ""
    min_n: int = 1
    endpoint: str = ""
    subgroup: str = ""

    def text(self) -> str:
        where = f" in {self.subgroup}" if self.subgroup else ""
        return (f"{self.statistic} {self.metric} of {self.class_name}{where} {self.op} "
                f"{self.threshold:g}")


def _read(path: Path) -> Any:
    if not path.is_file():
        raise InputError(path, "criteria file not found")
    if path.stat().st_size > MAX_BYTES:
        raise InputError(path, f"criteria file is larger than {MAX_BYTES} bytes")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" (line {where.line + 1})" if where is not None else ""
            raise InputError(path, f"not valid YAML{line}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None


def _class(value: Any, labels: Mapping[int, str] | None) -> tuple[str, int] | None:
    if labels is None:
        try:
            number = int(str(value))
        except ValueError:
            return None
        return (str(number), number) if number > 0 else None
    for number, name in labels.items():
        if str(value) in (name, str(number)):
            return name, number
    return None


def load_criteria(
    path: str | Path,
    labels: Mapping[int, str] | None = None,
    extra_metrics: Sequence[str] = (),
) -> list[Criterion]:
    """Read and validate a criteria file against the classes and metrics of the study."""
    path = Path(path)
    data = _read(path)
    if isinstance(data, Mapping):
        data = data.get("criteria")
    if not isinstance(data, list) or not data:
        raise InputError(path, "expected a non-empty list of criteria (or {criteria: [...]})")
    metrics = (*CLASS_METRICS, *LESION_METRICS, *extra_metrics)
    out: list[Criterion] = []
    for i, item in enumerate(data, 1):
        where = f"criterion {i}"
        if not isinstance(item, Mapping):
            raise InputError(path, f"{where} is not a mapping")
        missing = [k for k in ("class", "metric", "statistic", "op", "threshold")
                   if k not in item]
        if missing:
            raise InputError(path, f"{where} lacks {', '.join(missing)}")
        unknown = sorted(set(map(str, item)) - _FIELDS)
        if unknown:
            raise InputError(path, f"{where} has unknown fields {', '.join(unknown)}")
        found = ("all", ALL_CLASSES) if str(item["class"]) == "all" \
            else _class(item["class"], labels)
        if found is None:
            known = ("label values (no --labels given)" if labels is None
                     else ", ".join(labels.values()))
            raise InputError(path, f"{where}: unknown class {item['class']!r} (known: {known})")
        metric = str(item["metric"])
        if metric not in (*metrics, "volume", "detection"):
            raise InputError(path, f"{where}: unknown metric {metric!r} "
                                   f"(known: {', '.join(metrics)}, volume, detection)")
        statistic = str(item["statistic"])
        match = _PERCENTILE.match(statistic)
        cohort = {"volume": AGREEMENT_STATISTICS, "detection": DETECTION_STATISTICS}.get(metric)
        if cohort is not None and statistic not in cohort:
            raise InputError(path, f"{where}: unknown {metric} statistic {statistic!r} "
                                   f"({', '.join(cohort)})")
        if cohort is None and statistic not in STATISTICS and not (
                match and 0 <= float(match.group(1)) <= 100):
            raise InputError(path, f"{where}: unknown statistic {statistic!r} "
                                   f"({', '.join(STATISTICS)} or pNN)")
        subgroup = str(item.get("subgroup", ""))
        if subgroup and not re.match(r"^[^=]+=.*$", subgroup):
            raise InputError(path, f"{where}: subgroup {subgroup!r} is not column=value")
        op = str(item["op"])
        if op not in OPS:
            raise InputError(path, f"{where}: unknown op {op!r} ({' '.join(OPS)})")
        threshold = item["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not math.isfinite(threshold):
            raise InputError(path, f"{where}: threshold {threshold!r} is not a finite number")
        min_n = item.get("min_n", 1)
        if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1:
            raise InputError(path, f"{where}: min_n {min_n!r} is not a positive whole number")
        endpoint = str(item.get("endpoint", ""))
        if endpoint and endpoint not in ENDPOINTS:
            raise InputError(path, f"{where}: endpoint {endpoint!r} is not primary or secondary")
        out.append(Criterion(id=str(item.get("id", f"C{i}")), class_name=found[0],
                             label=found[1], metric=metric, statistic=statistic, op=op,
                             threshold=float(threshold),
                             description=str(item.get("description", "")), min_n=min_n,
                             endpoint=endpoint, subgroup=subgroup))
    if any(c.endpoint for c in out):
        if not any(c.endpoint == "primary" for c in out):
            raise InputError(path, "endpoints are declared but none is primary")
        out = [c if c.endpoint else dataclasses.replace(c, endpoint="primary") for c in out]
    return out


def statistic_of(values: Sequence[float | None], statistic: str,
                 options: StatsOptions | None = None) -> tuple[float, int]:
    """The statistic over the finite values and how many there were (NaN for a CI bound
    below the minimum n)."""
    value, n, _ = _statistic(values, statistic, options or DEFAULT_STATS)
    return value, n


def _statistic(values: Sequence[float | None], statistic: str, opts: StatsOptions,
               cases: Sequence[str] | None = None) -> tuple[float, int, dict[str, Any]]:
    x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    finite = np.isfinite(x)
    n = int(np.count_nonzero(finite))
    if n == 0:
        return math.nan, 0, {}
    if statistic in ("ci_low", "ci_high"):
        ci = mean_ci(x, opts, cases=cases)
        value = ci[statistic]
        return (math.nan if value is None else float(value)), n, ci
    y = x[finite]
    if statistic == "mean":
        value = float(y.mean())
    elif statistic == "median":
        value = float(np.median(y))
    else:
        value = float(np.percentile(y, float(statistic[1:])))
    return value, n, {}


def _cohort_statistic(c: Criterion, name: str, scored: Sequence[Mapping[str, Any]],
                      opts: StatsOptions) -> tuple[float, int]:
    """(value, cases) of a ``volume`` or ``detection`` criterion."""
    if c.metric == "volume":
        ba = bland_altman([float(r.get("pred_volume_ml", math.nan)) for r in scored],
                          [float(r.get("ref_volume_ml", math.nan)) for r in scored])
        key = c.statistic
        if key.endswith("_ml") or key == "bias_pct":
            unit = "pct" if key.endswith("_pct") else "ml"
            value = ba[unit].get(key.rsplit("_", 1)[0])
        else:
            value = ba.get(key)
        return (math.nan if value is None else float(value)), int(ba["n"])
    section = detection_section(scored, [name], opts)
    item = section["classes"].get(name)
    if item is None:
        return math.nan, 0
    value = item.get(c.statistic)
    return (math.nan if value is None else float(value)), int(item["n_cases"])


def _in_subgroup(case: str, subgroup: str,
                 metadata: Mapping[str, Mapping[str, str]] | None) -> bool:
    if not subgroup:
        return True
    column, _, value = subgroup.partition("=")
    return (metadata or {}).get(case, {}).get(column.strip(), "") == value.strip()


def judge(criteria: Sequence[Criterion], rows: Sequence[Mapping[str, Any]],
          options: StatsOptions | None = None,
          metadata: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """PASS / FAIL / NOT EVALUABLE (/ NOT TESTED in a hierarchy) of every criterion on per-case
    rows; ``passed`` is True when every (primary) criterion passes; ``verdict`` says PASS,
    FAIL or NOT EVALUABLE. ``metadata`` selects the cases of a ``subgroup`` criterion."""
    opts = options or DEFAULT_STATS
    results = []
    gate_open = True
    for c, label, name in _expanded(criteria, rows):
        class_rows = [r for r in rows if r.get("label") == label
                      and _in_subgroup(r["case"], c.subgroup, metadata)]
        scored = [r for r in class_rows if r.get("status") != "error"]
        if c.metric in ("volume", "detection"):
            value, n = _cohort_statistic(c, name, scored, opts)
            ci: dict[str, Any] = {}
            need = max(c.min_n, opts.min_n)
            n = n if math.isfinite(value) else 0
        else:
            values = [r.get(c.metric) for r in scored]
            value, n, ci = _statistic(values, c.statistic, opts, [r["case"] for r in scored])
            need = max(c.min_n, opts.min_n if c.statistic in ("ci_low", "ci_high") else 1)
        imputed = sum(1 for r in scored if c.metric in IMPUTED_METRICS
                      and r.get("missing_distance_mm") is not None)
        text = c.text().replace(" of all", f" of {name}")
        item = {**asdict(c), "class": name, "text": text, "value": value, "n": n,
                "n_excluded": len(class_rows) - n, "n_imputed": imputed, "min_n": need,
                "mc_se": None, "mc_flag": False}
        if c.label == ALL_CLASSES:
            item["id"] = f"{c.id}[{name}]"
        item["label"] = label
        item.pop("class_name")
        if c.endpoint == "secondary" and not gate_open:
            item.update(result="NOT TESTED",
                        note="an earlier endpoint of the hierarchy did not pass")
        elif n == 0:
            item.update(result="FAIL", note="no finite value: judged FAIL")
        elif n < need:
            item.update(result="NOT EVALUABLE", value=None,
                        note=f"n < {need}: not decidable")
        else:
            ok = OPS[c.op](round(value, ROUND_DIGITS), round(c.threshold, ROUND_DIGITS))
            item.update(result="PASS" if ok else "FAIL", note="")
            se = ci.get(f"{c.statistic}_mc_se")
            if near_threshold(value, se, c.threshold):
                item.update(mc_se=se, mc_flag=True,
                            note="within 2 Monte-Carlo SE of the threshold: rerun with more "
                                 "--resamples")
            elif se is not None:
                item["mc_se"] = se
        if c.endpoint and item["result"] != "PASS":
            gate_open = False
        results.append(item)
    deciding = [r for r in results if r["endpoint"] in ("", "primary")]
    passed = all(r["result"] == "PASS" for r in deciding)
    verdict = ("PASS" if passed else "FAIL" if any(r["result"] == "FAIL" for r in deciding)
               else "NOT EVALUABLE")
    return {"passed": passed, "verdict": verdict, "criteria": results,
            "intervals": opts.record()}


def _expanded(criteria: Sequence[Criterion], rows: Sequence[Mapping[str, Any]]
              ) -> list[tuple[Criterion, int, str]]:
    """(criterion, label, class name); a criterion on ``all`` once per class in the rows."""
    classes = {int(r["label"]): r["class"] for r in rows if r.get("label") is not None}
    out = []
    for c in criteria:
        if c.label == ALL_CLASSES:
            out += [(c, label, name) for label, name in sorted(classes.items())]
        else:
            out.append((c, c.label, c.class_name))
    return out
