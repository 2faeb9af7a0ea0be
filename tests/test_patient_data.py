"""Patient data: DICOM-derived outputs, logs and reports carry no identifying attributes.

A series written here carries a distinctive fake identity (name, ID, birth date, accession
number); the bundled phantom series carries ``PHANTOM^CT`` / ``MEDSEG-PHANTOM-001``. Neither
may appear in ``medseg info`` (text or ``--json``), in the batch's ``summary.json``, volumes
JSON/CSV, masks, stdout/stderr, evaluation reports or the UI. The DICOM SEG is blanked by
default and keeps the identity only with ``--keep-patient-data``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.io.dicom_write import write_dicom_series
from medseg.volume import Volume
from tests.test_batch_resilience import write_tiny_bundle

ROOT = Path(__file__).resolve().parents[1]
PHANTOM = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
IDENTITY = {"PatientName": "ZZSECRET^PATIENT", "PatientID": "PID98765XYZ",
            "PatientBirthDate": "19230405", "AccessionNumber": "ACC55501234"}
#: what must never be printed or written (both spellings of the name)
SECRETS = (*IDENTITY.values(), "ZZSECRET", "PHANTOM^CT", "MEDSEG-PHANTOM-001")
TIMEOUT = 240


def leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    return [s for s in SECRETS if s in text]


@pytest.fixture(scope="module")
def identified_series(tmp_path_factory) -> Path:
    """A 24x20x6 CT series whose files carry the fake identity (neutral folder/file names)."""
    folder = tmp_path_factory.mktemp("dicom") / "study1"
    rng = np.random.default_rng(3)
    arr = rng.normal(0, 30, size=(24, 20, 6)).astype(np.int16)
    arr[6:14, 5:12, 1:5] += 400
    volume = Volume.from_spatial(arr, np.diag([1.5, 1.5, 3.0, 1.0]))
    for path in write_dicom_series(volume, folder, patient_name=IDENTITY["PatientName"],
                                   patient_id=IDENTITY["PatientID"]):
        ds = pydicom.dcmread(path)
        ds.PatientBirthDate = IDENTITY["PatientBirthDate"]
        ds.AccessionNumber = IDENTITY["AccessionNumber"]
        ds.save_as(path)
    assert leaks(next(folder.iterdir()).read_bytes())  # the source really is identified
    return folder


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return write_tiny_bundle(tmp_path_factory.mktemp("models") / "tiny")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medseg.cli", *args], capture_output=True,
                          text=True, timeout=TIMEOUT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("source", ["identified", "phantom"])
def test_info_text_and_json_carry_no_identity(identified_series, source, capsys):
    from medseg.cli import main

    path = identified_series if source == "identified" else PHANTOM
    for extra in ([], ["--json"]):
        assert main(["info", str(path), *extra]) == 0
        captured = capsys.readouterr()
        assert not leaks(captured.out + captured.err), captured.out
    # a single file of the series too
    assert main(["info", str(next(iter(sorted(path.iterdir())))), "--json"]) == 0
    captured = capsys.readouterr()
    assert not leaks(captured.out + captured.err)


def _seg_identity(path: Path) -> dict[str, str]:
    ds = pydicom.dcmread(path)
    return {k: str(ds.get(k, "")) for k in IDENTITY}


def test_segment_outputs_and_logs_carry_no_identity_unless_asked(identified_series, bundle,
                                                                 tmp_path):
    out = tmp_path / "out"
    zipped = tmp_path / "upload.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for p in sorted(identified_series.iterdir()):
            zf.write(p, f"s/{p.name}")
    proc = _cli("--debug", "segment", str(identified_series), str(PHANTOM), str(zipped),
                "-o", str(out), "-m", str(bundle), "--dicom-seg", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not leaks(proc.stdout + proc.stderr)
    seg_files = sorted(out.glob("*_seg.dcm"))
    assert len(seg_files) == 3
    for f in out.iterdir():
        if f.name.endswith("_seg.dcm"):
            assert all(v == "" for v in _seg_identity(f).values()), (f.name, _seg_identity(f))
            assert not leaks(f.read_bytes()), f.name
        else:  # summary.json, volumes JSON/CSV, masks
            assert not leaks(f.read_bytes()), f.name
    summary = json.loads((out / "summary.json").read_text())
    assert {r["status"] for r in summary} == {"ok"}

    kept = tmp_path / "kept"
    proc = _cli("segment", str(identified_series), "-o", str(kept), "-m", str(bundle),
                "--dicom-seg", "--keep-patient-data", "--device", "cpu", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _seg_identity(kept / "study1_seg.dcm") == IDENTITY
    # only the DICOM SEG keeps it: tables and logs stay clean
    assert not leaks(proc.stdout + proc.stderr)
    assert not any(leaks(f.read_bytes()) for f in kept.iterdir() if f.suffix != ".dcm")


def test_evaluation_report_carries_no_identity(identified_series, bundle, tmp_path):
    from medseg.evaluation.options import EvaluationOptions
    from medseg.evaluation.run import evaluate_folders
    from medseg.io import read_image, write_image
    from medseg.volume import LabelMap

    pred, ref = tmp_path / "pred", tmp_path / "ref"
    image = read_image(identified_series)
    labels = LabelMap.from_spatial((image.data > 200).astype(np.uint8), image.affine)
    write_image(labels, pred / "study1.nii.gz")
    write_image(labels, ref / "study1.nii.gz")
    result = evaluate_folders(pred, ref, tmp_path / "report",
                              EvaluationOptions(workers=1, progress=False))
    assert result.files
    for f in (tmp_path / "report").rglob("*"):
        if f.is_file():
            assert not leaks(f.read_bytes()), f.name


def test_error_messages_carry_no_identity(identified_series, tmp_path):
    """A broken slice's error names the file, not the patient."""
    from medseg.errors import MedsegError
    from medseg.io import read_image

    broken = tmp_path / "broken"
    broken.mkdir()
    for p in sorted(identified_series.iterdir()):
        (broken / p.name).write_bytes(p.read_bytes())
    victim = sorted(broken.iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:-300])
    with pytest.raises(MedsegError) as err:
        read_image(broken)
    assert not leaks(str(err.value))


# ---- the UI -------------------------------------------------------------------------------------
def _all_text(at) -> str:
    parts: list[str] = []
    for kind in ("markdown", "caption", "success", "info", "warning", "error", "text", "title",
                 "header", "subheader", "code", "json", "metric", "exception"):
        for element in getattr(at, kind, []):
            parts.append(str(getattr(element, "value", "")))
            parts.append(str(getattr(element, "label", "")))
    for frame in [*at.dataframe, *at.table]:
        parts.append(frame.value.to_csv())
    return "\n".join(parts)


def test_ui_shows_no_identity(identified_series, bundle, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(bundle.parent))
    app_dir = ROOT / "app"
    monkeypatch.syspath_prepend(str(app_dir))
    at = AppTest.from_file(str(app_dir / "Home.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(identified_series.iterdir()):
            zf.write(p, f"series/{p.name}")
    at.file_uploader(key="upload").set_value(("scan.zip", buf.getvalue(), "application/zip"))
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not leaks(_all_text(at))
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not leaks(_all_text(at))
    for key in at.session_state:  # what the page offers for download (mask bytes, ...)
        value = at.session_state[key]
        if isinstance(value, (bytes, str)):
            assert not leaks(value), key
