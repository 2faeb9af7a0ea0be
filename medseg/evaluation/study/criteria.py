"""Pre-registered acceptance criteria, judged PASS or FAIL on a scored cohort.

A criteria file (JSON, or YAML when it ends in ``.yaml``/``.yml``) holds a list of criteria,
or ``{"criteria": [...]}``. Each criterion::

    {"class": "liver", "metric": "dice", "statistic": "ci_low", "op": ">=", "threshold": 0.9,
     "id": "C1"}   # id optional

* ``class``: a class name of ``--labels`` (or its value); without ``--labels`` a label value.
* ``metric``: a per-class metric (:data:`medseg.evaluation.metrics.CLASS_METRICS`, or a plugin
  metric).
* ``statistic``: ``mean``, ``median``, ``ci_low``/``ci_high`` (95% bootstrap CI of the mean,
  :mod:`medseg.evaluation.report`), or ``pNN``: the NN-th percentile of the per-case values
  (``p5`` of
  Dice >= 0.8 says "95% of cases reach 0.8", with numpy's linear interpolation).
* ``op``: ``>=``, ``>``, ``<=``, ``<``; ``threshold``: a number.

:func:`load_criteria` checks every field, class and metric before anything is scored and
raises a one-line :class:`~medseg.errors.InputError` naming the file and the criterion.
:func:`judge` computes the statistic over the finite per-case values of that class (the
empty-mask policy decides which are finite) and says PASS or FAIL with the value and the
number of cases it was judged on; no finite value is a FAIL. The value is compared after
rounding to 12 decimals (:data:`ROUND_DIGITS`).
"""

from __future__ import annotations

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
from medseg.evaluation.metrics import CLASS_METRICS
from medseg.evaluation.report import bootstrap_ci

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
STATISTICS = ("mean", "median", "ci_low", "ci_high")
_PERCENTILE = re.compile(r"^p(\d{1,3}(?:\.\d+)?)$")
_FIELDS = {"class", "metric", "statistic", "op", "threshold", "id", "description"}
#: the value is rounded to this many decimals before the comparison, so that floating-point
#: noise (a mean of 0.9, 0.8, 0.7 is 0.8000000000000002) cannot flip a criterion whose
#: value lies exactly on its threshold
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

    def text(self) -> str:
        return f"{self.statistic} {self.metric} of {self.class_name} {self.op} {self.threshold:g}"


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
    metrics = (*CLASS_METRICS, *extra_metrics)
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
        found = _class(item["class"], labels)
        if found is None:
            known = ("label values (no --labels given)" if labels is None
                     else ", ".join(labels.values()))
            raise InputError(path, f"{where}: unknown class {item['class']!r} (known: {known})")
        metric = str(item["metric"])
        if metric not in metrics:
            raise InputError(path, f"{where}: unknown metric {metric!r} "
                                   f"(known: {', '.join(metrics)})")
        statistic = str(item["statistic"])
        match = _PERCENTILE.match(statistic)
        if statistic not in STATISTICS and not (match and 0 <= float(match.group(1)) <= 100):
            raise InputError(path, f"{where}: unknown statistic {statistic!r} "
                                   f"({', '.join(STATISTICS)} or pNN)")
        op = str(item["op"])
        if op not in OPS:
            raise InputError(path, f"{where}: unknown op {op!r} ({' '.join(OPS)})")
        threshold = item["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not math.isfinite(threshold):
            raise InputError(path, f"{where}: threshold {threshold!r} is not a finite number")
        out.append(Criterion(id=str(item.get("id", f"C{i}")), class_name=found[0],
                             label=found[1], metric=metric, statistic=statistic, op=op,
                             threshold=float(threshold),
                             description=str(item.get("description", ""))))
    return out


def statistic_of(values: Sequence[float | None], statistic: str) -> tuple[float, int]:
    """The statistic over the finite values and how many there were."""
    x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, 0
    if statistic == "mean":
        value = float(x.mean())
    elif statistic == "median":
        value = float(np.median(x))
    elif statistic in ("ci_low", "ci_high"):
        value = bootstrap_ci(x)[0 if statistic == "ci_low" else 1]
    else:
        value = float(np.percentile(x, float(statistic[1:])))
    return value, int(x.size)


def judge(criteria: Sequence[Criterion], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """PASS/FAIL of every criterion on per-case rows; ``passed`` is True when all pass."""
    results = []
    for c in criteria:
        values = [r.get(c.metric) for r in rows
                  if r.get("label") == c.label and r.get("status") != "error"]
        value, n = statistic_of(values, c.statistic)
        ok = n > 0 and OPS[c.op](round(value, ROUND_DIGITS), c.threshold)
        results.append({**asdict(c), "class": c.class_name, "text": c.text(), "value": value,
                        "n": n, "result": "PASS" if ok else "FAIL",
                        "note": "" if n else "no finite value: judged FAIL"})
        results[-1].pop("class_name")
    return {"passed": all(r["result"] == "PASS" for r in results), "criteria": results}
