"""How two folders are scored: the settings that change the numbers, as one frozen object."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.evaluation.intervals import DEFAULT_STATS, StatsOptions
from medseg.evaluation.lesions import DEFAULT_RULE, LesionRule
from medseg.specs import MetricSpec


@dataclass(frozen=True)
class EvaluationOptions:
    """Options of :func:`~medseg.evaluation.scoring.score_folders` and
    :func:`~medseg.evaluation.run.evaluate_folders`.

    * ``labels``: class names (``{name: value}``, ``{value: name}`` or a list of values);
      None = the values found in the files.
    * ``tolerance``: surface-Dice tolerance in mm, one number or per class; None (or a class
      missing from the mapping without a ``"default"``) = the voxel size of each case
      (:func:`~medseg.evaluation.metrics.voxel_tolerance`).
    * ``empty_score``: the score of a class empty in both maps (NaN = left out).
    * ``resample``: put a prediction on another grid onto the reference's (nearest neighbour)
      instead of refusing it.
    * ``workers``: scoring processes (None = :func:`~medseg.evaluation.scoring.default_workers`).
    * ``metrics``: extra :class:`~medseg.specs.MetricSpec` columns (None = the registry's;
      picklable when ``workers > 1``).
    * ``plugins_dir``: extra plugin folder for readers and metrics.
    * ``progress``: tqdm bar (None = on a terminal).
    * ``missing_distance``: HD95/HD/ASSD of a structure present in one map only: ``"worst"``
      (the image diagonal in mm, the default, as Metrics Reloaded recommends) or
      ``"exclude"`` (NaN, left out); see :func:`~medseg.evaluation.pairs.evaluate_pair`.
    * ``images``: folder of the cases' images (files or DICOM subfolders named by case, as
      segmented: ``case.nii.gz`` or ``case_0000.nii.gz``); the report's gallery is then
      drawn on them. None = masks alone.
    * ``stats``: intervals and the minimum n (:class:`~medseg.evaluation.intervals.StatsOptions`).
    * ``lesion_rule``: how lesions are matched (:class:`~medseg.evaluation.lesions.LesionRule`);
      None skips the component analysis (it costs about one extra pass per class);
      ``lesion_classes``: classes given a detection section (None = every class whose
      reference has several components in some case).
    """

    labels: Any = None
    tolerance: float | Mapping[Any, float] | None = None
    empty_score: float = math.nan
    resample: bool = False
    workers: int | None = None
    metrics: Sequence[MetricSpec] | None = None
    plugins_dir: str | Path | None = None
    progress: bool | None = None
    missing_distance: str = "worst"
    stats: StatsOptions = DEFAULT_STATS
    lesion_rule: LesionRule | None = DEFAULT_RULE
    lesion_classes: Sequence[str] | None = None
    images: str | Path | None = None

    def replace(self, **changes: Any) -> EvaluationOptions:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
