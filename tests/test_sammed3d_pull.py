"""``medseg models pull sammed3d:turbo`` against a server on 127.0.0.1 (never the real hub).

The server plays Hugging Face through ``$MEDSEG_SAMMED3D_URL``, serving the small
random-initialised SAM-Med3D fixture under the published file name.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.cli import main
from medseg.engine.segmenter import Segmenter
from medseg.hub.sammed3d import HF_FILES, RELEASES, release_url
from medseg.io import checksum_record as record
from medseg.io.nifti import read_nifti
from medseg.models.base import InferenceSettings
from medseg.models.loading import load_model
from medseg.prompts.types import Point, Prompts
from tests.release_server import release_server

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "sample_data" / "sammed3d"
TURBO = RELEASES["turbo"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    with release_server() as srv:
        monkeypatch.setenv("MEDSEG_SAMMED3D_URL", srv.root + "/hf")
        monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path / "models"))
        yield {"server": srv, "models": tmp_path / "models"}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_published_url_is_the_authors_hugging_face_file(monkeypatch):
    monkeypatch.delenv("MEDSEG_SAMMED3D_URL", raising=False)
    assert release_url(TURBO) == f"{HF_FILES}/sam_med3d_turbo.pth"
    assert HF_FILES == "https://huggingface.co/blueyo0/SAM-Med3D/resolve/main"


def test_pull_installs_a_model_folder_that_segments(env, capsys):
    body = (FIXTURE / "tiny_random" / "sam_med3d_tiny.pth").read_bytes()
    env["server"].put("/hf/sam_med3d_turbo.pth", body)
    code, out, err = run_cli(capsys, "models", "pull", "sammed3d:turbo")
    assert code == 0, err
    folder = env["models"] / TURBO.folder
    assert "Apache-2.0" in out and str(folder) in out
    assert (folder / TURBO.filename).read_bytes() == body
    doc = json.loads((folder / "sammed3d.json").read_text())
    assert doc["format"] == "sammed3d" and doc["licence"] == "Apache-2.0"
    record.check_installed(folder)
    assert sorted(p.name for p in env["models"].iterdir() if p.name.startswith(".")) == [
        p.name for p in env["models"].iterdir() if p.name.endswith(".lock")]
    code, out, _ = run_cli(capsys, "models", "--json")
    row = {r["name"]: r for r in json.loads(out)}["sammed3d:turbo"]
    assert row["state"] == "present" and row["licence"] == "Apache-2.0"
    assert run_cli(capsys, "models", "verify", "sammed3d:turbo")[0] == 0
    # the pulled folder is an ordinary SAM-Med3D model: it gives the authors' mask
    with np.load(FIXTURE / "expected_ct_abdomen.npz") as e:
        points = [Point(tuple(map(float, p)), bool(s))
                  for p, s in zip(e["points"], e["positive"], strict=True)]
        shape = tuple(int(s) for s in e["input_shape"])
        theirs = np.unpackbits(e["input_mask"])[: int(np.prod(shape))].reshape(shape)
        volume = read_nifti(ROOT / "sample_data" / str(e["image"]))
    result = Segmenter(load_model(folder, device="cpu"), InferenceSettings(device="cpu"))(
        volume, "ct.nii.gz", prompts=Prompts(tuple(points)))
    assert ((result.labels.data != 0) == theirs.astype(bool)).mean() >= 0.999


def test_a_checkpoint_that_pickles_objects_is_refused_and_nothing_installed(env, capsys):
    state = torch.load(FIXTURE / "tiny_random" / "sam_med3d_tiny.pth", weights_only=True)
    buf = io.BytesIO()
    torch.save({**state, "args": argparse.Namespace(lr=1e-4)}, buf)
    env["server"].put("/hf/sam_med3d_turbo.pth", buf.getvalue())
    code, _, err = run_cli(capsys, "models", "pull", "sammed3d:turbo")
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("medseg:")]
    assert len(lines) == 1 and "argparse.Namespace" in lines[0] and "Traceback" not in err
    assert not (env["models"] / TURBO.folder).exists()
    assert not any((env["models"] / f".{TURBO.folder}.download").glob("*"))


def test_an_unknown_checkpoint_name_lists_the_known_ones(env, capsys):
    code, _, err = run_cli(capsys, "models", "pull", "sammed3d:huge")
    assert code != 0 and "sammed3d:turbo" in err and "Traceback" not in err
