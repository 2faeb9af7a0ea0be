"""What a study adds to an evaluation: criteria to judge and subgroups to summarise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medseg.evaluation.intervals import StatsOptions
from medseg.evaluation.study.criteria import Criterion, judge
from medseg.evaluation.study.subgroups import subgroup_summary

#: metrics summarised per subgroup
SUBGROUP_METRICS = ("dice", "iou", "hd95", "assd", "nsd", "abs_volume_diff_ml",
                    "rel_volume_diff_pct")


@dataclass(frozen=True)
class StudyOptions:
    """Criteria (validated before scoring) and subgroups of one evaluation."""

    criteria: Sequence[Criterion] = ()
    metadata: Mapping[str, Mapping[str, str]] | None = None
    by: Sequence[str] = ()
    #: smallest subgroup given a CI (None = the study's ``min_n``, StatsOptions)
    min_n: int | None = None
    metadata_source: str = ""
    subgroup_metrics: Sequence[str] = field(default=SUBGROUP_METRICS)

    def sections(self, rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                 stats: StatsOptions | None = None) -> dict[str, Any]:
        """The report sections: ``criteria`` and ``subgroups`` (when asked for)."""
        out: dict[str, Any] = {}
        stats = stats or StatsOptions()
        min_n = stats.min_n if self.min_n is None else self.min_n
        if self.criteria:
            out["criteria"] = judge(self.criteria, rows, stats, self.metadata)
        if self.metadata is not None:  # merged into per_case.csv, not into summary.json
            out["metadata"] = {c: dict(v) for c, v in self.metadata.items()}
        if self.metadata is not None and self.by:
            wanted = [m for m in self.subgroup_metrics if m in metrics]
            wanted += [c.metric for c in self.criteria if c.metric not in wanted]
            out["subgroups"] = {
                "by": list(self.by), "min_n": min_n, "source": self.metadata_source,
                "rows": subgroup_summary(rows, self.metadata, self.by, wanted,
                                         min_n=min_n, stats=stats),
            }
        return out
