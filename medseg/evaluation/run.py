"""``evaluate_folders``: score two folders and write the report
(:mod:`medseg.evaluation.report`)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.evaluation import report
from medseg.evaluation.agreement import volume_agreement
from medseg.evaluation.classes import ClassGroups
from medseg.evaluation.detection import detection_section
from medseg.evaluation.metrics import CLASS_METRICS
from medseg.evaluation.options import EvaluationOptions
from medseg.evaluation.pairs import Pairing
from medseg.evaluation.report.folder import check_target, relocate, report_folder
from medseg.evaluation.scoring import score_folders


@dataclass
class EvaluationResult:
    """What :func:`evaluate_folders` scored and wrote."""

    rows: list[dict[str, Any]]
    pairing: Pairing
    settings: dict[str, Any]
    summary: dict[str, Any]
    files: dict[str, Path]
    #: study sections (criteria, subgroups, volume agreement, readers) as written
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def criteria_passed(self) -> bool | None:
        """True/False when criteria were judged, None when there were none."""
        crit = self.sections.get("criteria")
        return None if crit is None else bool(crit["passed"])

    @property
    def errors(self) -> dict[str, str]:
        """case -> error message, for cases that could not be scored."""
        return {r["case"]: r["error"] for r in self.rows if r.get("error")}



def evaluate_folders(
    pred_dir: str | Path,
    ref_dir: str | Path,
    out_dir: str | Path,
    options: EvaluationOptions | None = None,
    *,
    study: Any = None,
    sections: Mapping[str, Any] | None = None,
    pdf: bool = False,
    atomic: bool = True,
    ref_label: str | None = None,
) -> EvaluationResult:
    """Score every case of ``pred_dir`` against ``ref_dir`` and write the report to ``out_dir``.

    Writes ``per_case.csv``, ``summary.csv``, ``summary.json``, ``report.html`` (and
    ``report.pdf`` with ``pdf``; see :mod:`medseg.evaluation.report`). A case that cannot be scored
    (unreadable file, grid mismatch without ``resample``, unknown label value) is kept with
    its ``error``; the rest are scored with ``options`` (:class:`EvaluationOptions`). ``study``: a
    :class:`medseg.evaluation.study.options.StudyOptions` (criteria, subgroups); ``sections``:
    report sections computed elsewhere (the readers of :mod:`medseg.evaluation.study.readers`).
    ``atomic``: build the report beside ``out_dir`` and swap it in as a whole
    (:mod:`medseg.evaluation.report.folder`); False
    when ``out_dir`` is itself inside such a build folder. ``ref_label``: the reference
    folder as the report names it (default ``ref_dir``).
    """
    opts = options or EvaluationOptions()
    if atomic:
        check_target(out_dir)  # before the scoring, which can take minutes
    scored = score_folders(pred_dir, ref_dir, opts)
    rows, extras = scored.rows, scored.extras
    classes = {int(r["label"]): r["class"] for r in rows if r.get("label") is not None}
    settings = report.settings_dict(
        labels=scored.labels, classes=dict(sorted(classes.items())), tolerance=opts.tolerance,
        empty_score=opts.empty_score, resample=opts.resample, workers=scored.workers,
        extra_metrics=extras, pred_dir=str(pred_dir), ref_dir=ref_label or str(ref_dir),
        missing_distance=opts.missing_distance, stats=opts.stats, rows=rows,
    )
    if isinstance(opts.labels, ClassGroups):
        settings["labels"] = f"{opts.labels.describe()} (values merged in both maps)"
    extra = {"volume_agreement": volume_agreement(rows), **(sections or {})}
    if opts.lesion_rule is not None:
        detection = detection_section(rows, opts.lesion_classes, opts.stats,
                                      opts.lesion_rule.describe())
        if detection["classes"]:
            extra["detection"] = detection
    if study is not None:
        extra.update(study.sections(rows, [*CLASS_METRICS, *(s.name for s in extras)],
                                    opts.stats))
    folder = report_folder(out_dir) if atomic else contextlib.nullcontext(Path(out_dir))
    with folder as build:
        summary, written = report.write_report(rows, build, settings=settings,
                                               pairing=scored.pairing,
                                               extra_metrics=[s.name for s in extras],
                                               sections=extra, pdf=pdf, stats=opts.stats)
    if atomic:
        written = relocate(written, build, Path(out_dir))
    return EvaluationResult(rows=rows, pairing=scored.pairing, settings=settings,
                            summary=summary, files=written, sections=extra)


