"""Report folders change as a whole (issue 16, item 4).

``medseg evaluate`` of cohort B over a report of cohort A runs as a child process and is
killed with SIGKILL at named pause points (:mod:`medseg.io.debughooks`): after the per-case table
is written, after the swap, and (without ``renameat2``) between the two renames. After every
kill the folder holds one complete report of one cohort (``per_case.csv``, ``summary.*`` and
``report.html`` agree) or is absent while the unfinished build beside it says it is
incomplete; the next ``medseg evaluate`` says a run was interrupted and clears it up.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main
from medseg.evaluation.report.folder import INCOMPLETE, interrupted_builds
from medseg.io import write_image
from medseg.volume import LabelMap
from tests.pause_kill import kill_at

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])
COHORTS = {"A": ("a1", "a2", "a3"), "B": ("b1", "b2")}


def _cohort(root: Path, cases) -> tuple[Path, Path]:
    for i, case in enumerate(cases):
        ref = np.zeros((12, 12, 6), np.uint8)
        ref[2:9, 2:9, 1:5] = 1
        pred = ref.copy()
        pred[2:3 + i] = 0
        write_image(LabelMap(pred[None], AFFINE), root / "pred" / f"{case}.nii.gz")
        write_image(LabelMap(ref[None], AFFINE), root / "ref" / f"{case}.nii.gz")
    return root / "pred", root / "ref"


def _args(folders, out):
    return ["evaluate", "--pred", str(folders[0]), "--ref", str(folders[1]), "-o", str(out),
            "--workers", "1"]


def _cohort_of(out: Path) -> str:
    """The one cohort the whole report describes (fails on a mix)."""
    with open(out / "per_case.csv", newline="", encoding="utf-8") as f:
        per_case = {r["case"] for r in csv.DictReader(f)}
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        n_summary = {int(r["n"]) for r in csv.DictReader(f) if r["metric"] == "dice"}
    html = (out / "report.html").read_text()
    matches = [name for name, cases in COHORTS.items() if set(cases) == per_case]
    assert matches, f"per_case.csv holds {per_case}"
    cases = COHORTS[matches[0]]
    assert summary["n_cases"] == len(cases), "summary.json is of another cohort"
    assert n_summary == {len(cases)}, "summary.csv is of another cohort"
    assert all(c in html for c in cases), "report.html is of another cohort"
    assert not (out / INCOMPLETE).exists()
    return matches[0]


def _kill_at(point: str, argv, tmp_path: Path, *, exchange: bool = True) -> None:
    code = (f"import sys, medseg.io.atomic_folder as f; f.USE_EXCHANGE = {exchange!r}; "
            "from medseg.cli import main; sys.exit(main(sys.argv[1:]))")
    kill_at(point, ["-c", code, *argv], tmp_path, timeout=120)


@pytest.mark.parametrize(("point", "exchange", "expected"), [
    ("report-per-case-written", True, "A"),
    pytest.param("report-before-swap", True, "A", marks=pytest.mark.slow),
    ("report-after-exchange", True, "B"),
    pytest.param("report-between-renames", False, None, marks=pytest.mark.slow),
])
def test_killed_evaluate_leaves_one_whole_report(tmp_path, capsys, point, exchange, expected):
    a = _cohort(tmp_path / "A", COHORTS["A"])
    b = _cohort(tmp_path / "B", COHORTS["B"])
    out = tmp_path / "report"
    assert main(_args(a, out)) == 0
    assert _cohort_of(out) == "A"

    _kill_at(point, _args(b, out), tmp_path, exchange=exchange)

    leftovers = interrupted_builds(out)
    if expected is None:  # killed between the renames: no report, and the build says so
        assert not out.exists()
        assert leftovers
    else:
        assert _cohort_of(out) == expected
    unfinished = [p for p in leftovers if (p / INCOMPLETE).exists()]
    if point in ("report-per-case-written", "report-before-swap"):
        assert unfinished, "the interrupted build does not say it is incomplete"
        assert "interrupted" in (unfinished[0] / INCOMPLETE).read_text()

    capsys.readouterr()
    assert main(_args(b, out)) == 0
    err = capsys.readouterr().err
    if leftovers:
        assert "was interrupted" in err
    assert _cohort_of(out) == "B"
    assert interrupted_builds(out) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


def test_report_folder_refuses_a_folder_of_other_files(tmp_path, capsys):
    a = _cohort(tmp_path / "A", COHORTS["A"])
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not a report")
    assert main(_args(a, out)) == 2
    assert "not a medseg report" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "not a report"
