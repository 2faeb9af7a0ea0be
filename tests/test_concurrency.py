"""Concurrency: two ``medseg segment`` runs on one output folder, two UI sessions at once.

* Two batch processes started together on the same inputs and output folder both finish
  without error; every output is complete and valid (atomic writes use unique temporaries),
  and no temporary is left behind.
* Two Streamlit sessions (AppTest, in two processes at once: AppTest's runtime is a
  per-process singleton, so two threads would share it) upload and segment different
  volumes; each session's image, mask and volumes belong to its own upload.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.test_batch_resilience import (
    N_CASES,
    TIMEOUT,
    check_outputs_complete,
    child_env,
    segment_cmd,
    write_cases,
    write_tiny_bundle,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrent")
    return {"bundle": write_tiny_bundle(root / "models" / "tiny"), "plugins": root,
            "inputs": write_cases(root / "in", N_CASES)}


def test_two_batches_on_one_output_folder(setup, tmp_path):
    out = tmp_path / "out"
    cmd = segment_cmd(setup, out, slow=False)
    procs = [subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=TIMEOUT) for p in procs]
    for proc, (_stdout, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr[-2000:]
        assert "Traceback" not in stderr
    finished = check_outputs_complete(out, setup["inputs"])
    assert finished == {f"case_{i:03d}" for i in range(N_CASES)}
    assert not [p.name for p in out.iterdir() if ".part" in p.name]
    rows = json.loads((out / "summary.json").read_text())
    assert {r["status"] for r in rows} <= {"ok", "skipped"} and len(rows) == N_CASES


# ---- UI sessions ------------------------------------------------------------------------------
def _upload_bytes(shape: tuple[int, int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.normal(100, 10, size=shape).astype(np.float32)
    arr[2:8, 3:9, 2:7] += 300
    img = nib.Nifti1Image(arr, np.diag([2.0, 2.0, 2.5, 1.0]))
    return gzip.compress(img.to_bytes())


def _session(shape: tuple[int, int, int], seed: int, name: str) -> dict:
    from streamlit.testing.v1 import AppTest

    if str(ROOT / "app") not in sys.path:
        sys.path.insert(0, str(ROOT / "app"))
    at = AppTest.from_file(str(ROOT / "app" / "Home.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    at.file_uploader(key="upload").set_value((name, _upload_bytes(shape, seed),
                                              "application/gzip"))
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    mask = nib.Nifti1Image.from_bytes(gzip.decompress(at.session_state["mask_bytes"]))
    return {"name": at.session_state["image_name"], "mask_shape": mask.shape,
            "folder": str(at.session_state["_medseg_folder"].path),
            "markdown": " ".join(m.value for m in at.markdown)}


def test_two_ui_sessions_segmenting_at_once_do_not_mix(setup, monkeypatch):
    pytest.importorskip("streamlit")
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(setup["bundle"].parent))
    monkeypatch.syspath_prepend(str(ROOT / "app"))
    jobs = {"first": ((20, 18, 14), 1, "first_scan.nii.gz"),
            "second": ((26, 16, 12), 2, "second_scan.nii.gz")}
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        futures = {k: pool.submit(_session, *args) for k, args in jobs.items()}
        got = {k: f.result(timeout=2 * TIMEOUT) for k, f in futures.items()}
    for key, (shape, _, name) in jobs.items():
        assert got[key]["name"] == name
        assert got[key]["mask_shape"] == shape
        other = jobs["second" if key == "first" else "first"][2]
        assert other not in got[key]["markdown"]
    assert got["first"]["folder"] != got["second"]["folder"]


def test_sessions_keep_their_own_upload_when_interleaved(setup, monkeypatch):
    """Upload in A, upload in B, run A, run B: A's mask is A's volume's shape."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(setup["bundle"].parent))
    monkeypatch.syspath_prepend(str(ROOT / "app"))
    shapes = {"a": (20, 18, 14), "b": (26, 16, 12)}
    apps = {}
    for key in shapes:
        at = AppTest.from_file(str(ROOT / "app" / "Home.py"), default_timeout=TIMEOUT)
        at.run()
        at.switch_page("pages/1_Segment.py").run()
        apps[key] = at
    for i, (key, shape) in enumerate(shapes.items()):
        apps[key].file_uploader(key="upload").set_value(
            (f"{key}.nii.gz", _upload_bytes(shape, i), "application/gzip"))
        apps[key].run()
    for key in shapes:
        apps[key].button(key="run").click().run()
        assert not apps[key].exception and not apps[key].error
    for key, shape in shapes.items():
        data = gzip.decompress(apps[key].session_state["mask_bytes"])
        assert nib.Nifti1Image.from_bytes(data).shape == shape
        assert apps[key].session_state["image_name"] == f"{key}.nii.gz"
