"""A case is done only when everything asked of it exists (its manifest, written last, lists
it); a rerun's summary keeps the first run's results; a missing input is one failed case, not
a failed batch; exit statuses 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medseg.cli import main
from tests.pause_kill import kill_at
from tests.test_batch_resilience import write_tiny_bundle

ROOT = Path(__file__).resolve().parent.parent
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
TIMEOUT = 240


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def _summary(out: Path) -> dict[str, dict]:
    return {r["case"]: r for r in json.loads((out / "summary.json").read_text())}


def test_missing_input_is_one_failed_case_and_the_rest_run(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "does" / "not" / "exist.nii.gz"
    code = main(["segment", str(SERIES), str(missing), "-o", str(out), "-m", str(bundle),
                 "--quiet"])
    captured = capsys.readouterr()
    assert code == 1  # some cases failed
    rows = _summary(out)
    assert rows["ct_phantom_001"]["status"] == "ok" and (out / "ct_phantom_001.nii.gz").is_file()
    assert rows["exist"]["status"] == "error" and "file not found" in rows["exist"]["message"]
    assert f"medseg: error: {missing}: file not found" in captured.err
    assert "1 of 2 cases done, 1 failed" in captured.out


def test_nothing_could_run_is_status_2_with_the_promised_line(bundle, tmp_path, capsys):
    fake = tmp_path / "fake.nii.gz"
    fake.write_text("this is text, not NIfTI")
    code = main(["segment", str(fake), "-o", str(tmp_path / "out"), "-m", str(bundle),
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[0].startswith(f"medseg: error: {fake}: ") and len(err) == 1
    assert not (tmp_path / "out" / "fake.nii.gz").exists()


def test_rerun_keeps_the_first_runs_results(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["segment", str(SERIES), "-o", str(out), "-m", str(bundle), "--quiet"]
    assert main(args) == 0
    first = _summary(out)["ct_phantom_001"]
    mask_time = (out / "ct_phantom_001.nii.gz").stat().st_mtime_ns
    assert main(args) == 0
    again = _summary(out)["ct_phantom_001"]
    assert again["status"] == "skipped"
    for key in ("seconds", "volumes_ml", "qc", "mask"):
        assert again[key] == first[key], key
    assert (out / "ct_phantom_001.nii.gz").stat().st_mtime_ns == mask_time
    assert "skipped (done earlier)" in capsys.readouterr().out


def test_adding_outputs_on_a_rerun_produces_them(bundle, tmp_path):
    out = tmp_path / "out"
    args = ["segment", str(SERIES), "-o", str(out), "-m", str(bundle), "--quiet"]
    assert main(args) == 0
    mask_time = (out / "ct_phantom_001.nii.gz").stat().st_mtime_ns
    assert main([*args, "--dicom-seg"]) == 0  # the SEG comes from the existing mask
    row = _summary(out)["ct_phantom_001"]
    assert row["status"] == "ok" and "added dicom_seg" in row["message"]
    assert (out / "ct_phantom_001_seg.dcm").is_file()
    assert (out / "ct_phantom_001.nii.gz").stat().st_mtime_ns == mask_time
    manifest = json.loads((out / "ct_phantom_001_manifest.json").read_text())
    assert {"mask", "volumes_json", "volumes_csv", "dicom_seg"} <= set(manifest["outputs"])
    assert main([*args, "--dicom-seg", "--probabilities"]) == 0  # needs a new inference
    assert _summary(out)["ct_phantom_001"]["status"] == "ok"
    assert (out / "ct_phantom_001_probabilities.nii.gz").is_file()
    assert main([*args, "--dicom-seg", "--probabilities"]) == 0
    assert _summary(out)["ct_phantom_001"]["status"] == "skipped"


def test_a_kill_between_mask_and_seg_is_redone_on_rerun(bundle, tmp_path):
    """SIGKILL at the named point after the mask is written and before the SEG: the rerun
    must not count the case as done by its mask alone."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medseg.cli", "segment", str(SERIES), "-o", str(out), "-m",
           str(bundle), "--dicom-seg", "--quiet", "--device", "cpu"]
    kill_at("after-mask", cmd[1:], tmp_path, timeout=TIMEOUT)
    assert (out / "ct_phantom_001.nii.gz").is_file()
    assert not (out / "ct_phantom_001_seg.dcm").exists()
    assert not (out / "ct_phantom_001_manifest.json").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=TIMEOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert rerun.returncode == 0, rerun.stderr
    assert _summary(out)["ct_phantom_001"]["status"] == "ok"
    assert (out / "ct_phantom_001_seg.dcm").is_file()
    assert (out / "ct_phantom_001_manifest.json").is_file()
