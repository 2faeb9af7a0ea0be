"""Memory is bounded by design: the working memory of each step is estimated from the header
(decoded size plus the copies reading or segmenting makes) and a request beyond
MEDSEG_MAX_MEMORY_BYTES is refused before any voxel is allocated, in ``info`` and ``segment``
alike. The issue's bomb: a ~250 kB .nii.gz of zeros that decodes to 250 MB, under a 260 MB
limit, used to take 1.3 GB in ``info`` and 4.95 GB in ``segment``."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import InputError
from medseg.models.medseg_bundle.bundle import load_bundle
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.volume import Volume

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (630, 630, 630)  # 250 MB of uint8
LIMIT = 260 * 1024**2


@pytest.fixture(scope="module")
def zeros_bomb(tmp_path_factory) -> Path:
    """A real .nii.gz of 250 MB of zeros, written in chunks (never 250 MB in this process)."""
    path = tmp_path_factory.mktemp("bomb") / "zeros.nii.gz"
    header = nib.Nifti1Header()
    header.set_data_shape(SHAPE)
    header.set_data_dtype(np.uint8)
    header.set_zooms((1.0, 1.0, 1.0))
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=1)
    raw = header.binaryblock + b"\0" * 4  # 348-byte header + 4-byte extension flag = 352
    chunk = bytes(1 << 22)
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(raw)
        left = int(np.prod(SHAPE))
        while left:
            n = min(left, len(chunk))
            fh.write(chunk[:n])
            left -= n
    assert path.stat().st_size < 400_000
    return path


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, float, int]:
    """Exit status, stderr, seconds and peak RSS (bytes) of a medseg subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "medseg.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _pid, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read() if proc.stderr else ""
    return (os.waitstatus_to_exitcode(status), err, time.perf_counter() - start,
            usage.ru_maxrss * 1024)


@pytest.mark.parametrize("command", ["info", "segment"])
def test_zeros_bomb_is_refused_from_the_header_near_baseline_memory(zeros_bomb, tmp_path,
                                                                     command):
    env = {**os.environ, "MEDSEG_MAX_MEMORY_BYTES": str(LIMIT), "OMP_NUM_THREADS": "1"}
    tiny = ROOT / "sample_data" / "Dataset002_AbdomenCT" / "labelsTs" / "abdomen_101.nii.gz"
    extra = ["-m", "abdomen_ct", "-o", str(tmp_path / "out"), "--quiet"] \
        if command == "segment" else []
    base_code, _, _, base_rss = _run([command, str(tiny), *extra], env)
    assert base_code == 0
    code, err, seconds, rss = _run([command, str(zeros_bomb), *extra], env)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"medseg: error: {zeros_bomb}: NIfTI header declares 630x630x630 ")
    assert f"more than the limit of {LIMIT} bytes (MEDSEG_MAX_MEMORY_BYTES)" in line
    assert rss < base_rss + 64 * 1024**2, (rss, base_rss)  # nothing of the 250 MB allocated
    assert seconds < 60
    assert not (tmp_path / "out" / "zeros.nii.gz").exists()


def test_segmenting_is_checked_against_the_model_grid(monkeypatch):
    """An image that can be read may still be too large to segment (model grid, classes):
    refused by the segmenter before it allocates, naming the limit."""
    seg = Segmenter(MedsegBundleModel(load_bundle("abdomen_ct")), InferenceSettings(device="cpu"))
    fine = Volume.from_spatial(np.zeros((40, 40, 20), np.int16), np.diag([0.5, 0.5, 0.5, 1]))
    estimate = seg.memory_estimate(fine)
    coarse = Volume.from_spatial(np.zeros((40, 40, 20), np.int16), np.diag([8.0, 8.0, 10, 1]))
    assert estimate < seg.memory_estimate(coarse)  # a finer model grid than the input costs
    monkeypatch.setenv("MEDSEG_MAX_MEMORY_BYTES", str(estimate // 2))
    with pytest.raises(InputError, match=r"scan\.nii\.gz: segmenting this 40x40x20 image needs "
                                         r"about \d+ bytes, more than the limit"):
        seg(coarse, where="scan.nii.gz")
    monkeypatch.setenv("MEDSEG_MAX_MEMORY_BYTES", str(seg.memory_estimate(coarse) * 2))
    assert seg(coarse).labels.spatial_shape == (40, 40, 20)
