"""Cohort summaries and report files (one concern per module).

* :mod:`~medseg.evaluation.stats`: :func:`describe`, :func:`bootstrap_ci`, :func:`summarize`.
* :mod:`.settings`: the settings block (definitions, policy, versions).
* :mod:`.files`: ``per_case.csv``, ``summary.csv``, ``summary.json``, the study
  files, and :func:`write_report` which writes them all.
* :mod:`.html`: the self-contained ``report.html`` and ``comparison.html``.
* :mod:`.svg`: inline SVG plots (box/strip, paired, Bland-Altman).
* :mod:`.gallery`: PNG slices of the worst cases at the largest disagreement, drawn on the
  image when the cases' images are given.
* :mod:`.pdf`: the same page printed to PDF by headless Chromium.
"""

from medseg.evaluation.report.files import (
    json_safe,
    per_case_columns,
    summary_rows,
    write_csv,
    write_report,
)
from medseg.evaluation.report.html import CSS, render_comparison_page, render_html
from medseg.evaluation.report.pdf import html_to_pdf
from medseg.evaluation.report.settings import (
    BOUNDARY,
    EMPTY_POLICY,
    settings_dict,
    software_versions,
)
from medseg.evaluation.report.svg import PALETTE, bland_altman_svg, box_strip_svg, paired_svg
from medseg.evaluation.stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    STATS,
    STATUSES,
    bootstrap_ci,
    describe,
    summarize,
    worst_cases,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "BOUNDARY", "CSS", "EMPTY_POLICY", "PALETTE",
    "STATS", "STATUSES", "bland_altman_svg", "bootstrap_ci", "box_strip_svg", "describe",
    "html_to_pdf", "json_safe", "paired_svg", "per_case_columns", "render_comparison_page",
    "render_html", "settings_dict", "software_versions", "summarize", "summary_rows",
    "worst_cases", "write_csv", "write_report",
]
