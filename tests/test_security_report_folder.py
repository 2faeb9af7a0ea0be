"""A report folder given as a symbolic link (issue 24, item 17): the report replaced the link
and left the link behind as a ``.part`` entry that the next run said it had removed while it
stayed. Now the folder the link points to is replaced, the link keeps pointing to it, nothing
is left beside either, and a leftover of the old behaviour is removed for real when a run says
so."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from medseg.cli import main
from medseg.io.atomic import _host
from tests.test_hardening_report_folder import COHORTS, _args, _cohort, _cohort_of


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_symlinked_report_folder_is_replaced_through_the_link(tmp_path, capsys):
    a = _cohort(tmp_path / "A", COHORTS["A"])
    b = _cohort(tmp_path / "B", COHORTS["B"])
    (tmp_path / "store").mkdir()
    (tmp_path / "links").mkdir()
    real = tmp_path / "store" / "report"
    real.mkdir()
    link = tmp_path / "links" / "report"
    link.symlink_to(real)
    for folders, cohort in ((a, "A"), (b, "B")):
        assert main(_args(folders, link)) == 0
        assert link.is_symlink() and link.resolve() == real.resolve()
        assert _cohort_of(real) == cohort
        assert _entries(tmp_path / "links") == [] and _entries(tmp_path / "store") == []
    assert "interrupted" not in capsys.readouterr().err


def test_a_leftover_link_is_removed_when_the_warning_says_so(tmp_path, capsys):
    a = _cohort(tmp_path / "A", COHORTS["A"])
    (tmp_path / "links").mkdir()
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "links" / "report"
    link.symlink_to(real)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs: the writer of the leftover
    leftover = tmp_path / "links" / f".report.{_host()}-{gone.pid}.abc123.part"
    leftover.symlink_to(real)  # what the old swap left beside the link
    assert main(_args(a, link)) == 0
    err = capsys.readouterr().err
    assert f"removed its unfinished folder {leftover}" in err
    assert not os.path.lexists(leftover)
    assert real.is_dir() and _cohort_of(real) == "A" and link.is_symlink()
