"""A batch killed with SIGKILL mid-run leaves complete outputs only, and a rerun resumes.

``medseg segment`` runs as a child process over several small cases with a tiny bundle
(seeded, untrained weights: written in a second, no training) and a ``slow`` postprocessor
plugin (it sleeps, so the kill lands deterministically while a case is in progress). Also
checked: a stale atomic-write temporary of a killed run is removed by the rerun, and
``--overwrite`` redoes finished cases.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from medseg.io import read_image, write_image
from medseg.volume import LabelMap, Volume

N_CASES = 4
TIMEOUT = 240
EXPECTED_SUFFIXES = (".nii.gz", "_volumes.json", "_volumes.csv")

SLOW_PLUGIN = textwrap.dedent('''
    """Test plugin: a postprocessor that waits ``MEDSEG_TEST_SLOW_S`` seconds."""
    import os
    import time

    from medseg.hookspecs import hookimpl
    from medseg.specs import PostprocessorSpec


    def slow(labels, *, spacing, classes=None, **params):
        time.sleep(float(os.environ.get("MEDSEG_TEST_SLOW_S", "0")))
        return labels


    @hookimpl
    def medseg_register_postprocessors():
        return [PostprocessorSpec("slow", slow, "sleeps (tests only)")]
''')


def write_tiny_bundle(path: Path) -> Path:
    """A 3D two-class U-Net bundle with seeded, untrained weights (about 10 kB)."""
    import torch

    from medseg.models.medseg_bundle.bundle import save_bundle
    from medseg.registry import load_registry

    params = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    torch.manual_seed(0)
    net = load_registry().architectures.get("unet").factory(
        spatial_dims=3, in_channels=1, out_channels=2, **params)
    save_bundle(path, {
        "name": "Tiny", "architecture": {"name": "unet", "params": params},
        "spatial_dims": 3, "in_channels": 1, "labels": {"background": 0, "blob": 1},
        "patch_size": [16, 16, 16],
        "preprocessing": {"target_spacing": [2.0, 2.0, 2.0], "intensity": {"scheme": "zscore"},
                          "orientation": "RAS"},
        "inference": {"overlap": 0.0, "postprocessors": []},
    }, net.state_dict())
    return path


def write_cases(folder: Path, n: int, shape=(20, 18, 14), seed: int = 0) -> list[Path]:
    """``n`` small MR-like volumes with distinct content (a bright blob that moves)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.normal(100, 10, size=shape).astype(np.float32)
        arr[2 + i: 8 + i, 4:10, 3:9] += 300
        affine = np.diag([2.0, 2.0, 2.5, 1.0])
        affine[:3, 3] = (-10 * i, 5, 3)
        path = folder / f"case_{i:03d}.nii.gz"
        write_image(Volume.from_spatial(arr, affine), path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "slow_pp.py").write_text(SLOW_PLUGIN)
    return {"bundle": write_tiny_bundle(root / "bundle"), "plugins": plugins,
            "inputs": write_cases(root / "in", N_CASES)}


def segment_cmd(setup, out: Path, *extra: str, slow: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "medseg.cli", "--plugins-dir", str(setup["plugins"]),
           "segment", *map(str, setup["inputs"]), "-o", str(out), "-m", str(setup["bundle"]),
           "--quiet", "--device", "cpu", *extra]
    return [*cmd, "--postprocess", "slow"] if slow else cmd


def child_env(slow_s: float = 0.0) -> dict[str, str]:
    return {**os.environ, "MEDSEG_TEST_SLOW_S": str(slow_s), "OMP_NUM_THREADS": "1"}


def check_outputs_complete(out: Path, inputs: list[Path]) -> set[str]:
    """Every visible file is a complete output; return the names of finished cases."""
    finished = set()
    by_name = {p.name[: -len(".nii.gz")]: p for p in inputs}
    for f in sorted(out.iterdir()):
        if f.name.startswith("."):
            assert ".part" in f.name, f  # only atomic-write temporaries are hidden
            continue
        if f.name.startswith("summary"):
            assert isinstance(json.loads(f.read_text()), list)
        elif f.name.endswith("_volumes.json"):
            data = json.loads(f.read_text())
            assert data["case"] in by_name and data["volumes"]
        elif f.name.endswith("_volumes.csv"):
            lines = f.read_text().splitlines()
            assert lines[0] == "label,name,voxels,volume_ml,qc,qc_reasons" and len(lines) >= 2
        elif f.name.endswith("_manifest.json"):  # written last: every output it lists exists
            data = json.loads(f.read_text())
            assert all((out / e["file"]).stat().st_size == e["bytes"]
                       for e in data["outputs"].values())
        elif f.name.endswith(".nii.gz"):
            case = f.name[: -len(".nii.gz")]
            mask = LabelMap.from_volume(read_image(f))  # a truncated gzip would be refused
            image = read_image(by_name[case])
            assert mask.spatial_shape == image.spatial_shape
            np.testing.assert_allclose(mask.affine, image.affine, atol=1e-5)
            # the mask is written last: its tables must already be there
            assert (out / f"{case}_volumes.json").is_file()
            assert (out / f"{case}_volumes.csv").is_file()
            finished.add(case)
        else:
            pytest.fail(f"unexpected output file {f.name}")
    return finished


def _wait_for(predicate, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"medseg segment ended early ({proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("timed out waiting for the first mask")


def test_kill_9_mid_batch_leaves_complete_outputs_and_rerun_resumes(setup, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(segment_cmd(setup, out), env=child_env(slow_s=3.0),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_mask = out / "case_000.nii.gz"
    _wait_for(first_mask.exists, proc, TIMEOUT)
    time.sleep(0.5)  # now inside case_001's slow postprocessing
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    finished = check_outputs_complete(out, setup["inputs"])
    assert "case_000" in finished and len(finished) < N_CASES
    assert not (out / "summary.json").exists()  # the killed run never got that far

    # what a kill during a write leaves: a hidden temporary beside the target
    stale = out / ".case_002.nii.gz.dead1234.part.nii.gz"
    stale.write_bytes(b"\x1f\x8b half a mask")
    old = time.time() - 60
    os.utime(stale, (old, old))

    rerun = subprocess.run(segment_cmd(setup, out), env=child_env(), capture_output=True,
                           text=True, timeout=TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    rows = {r["case"]: r for r in json.loads((out / "summary.json").read_text())}
    assert {c for c, r in rows.items() if r["status"] == "skipped"} == finished
    assert all(r["status"] == "ok" for c, r in rows.items() if c not in finished)
    assert check_outputs_complete(out, setup["inputs"]) == {f"case_{i:03d}" for i in
                                                            range(N_CASES)}
    assert not [p for p in out.iterdir() if ".part" in p.name], list(out.iterdir())


def test_rerun_skips_finished_cases_and_overwrite_redoes_them(setup, tmp_path):
    out = tmp_path / "out"
    first = subprocess.run(segment_cmd(setup, out, slow=False), env=child_env(),
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert first.returncode == 0, first.stderr[-2000:]
    masks = {p.name: p.stat().st_mtime_ns for p in out.glob("case_*.nii.gz")}
    assert len(masks) == N_CASES
    again = subprocess.run(segment_cmd(setup, out, slow=False), env=child_env(),
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0
    assert f"0 of {N_CASES} cases done" not in again.stdout
    assert all(r["status"] == "skipped" for r in json.loads((out / "summary.json").read_text()))
    assert masks == {p.name: p.stat().st_mtime_ns for p in out.glob("case_*.nii.gz")}
    redo = subprocess.run(segment_cmd(setup, out, "--overwrite", slow=False), env=child_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert redo.returncode == 0
    assert all(r["status"] == "ok" for r in json.loads((out / "summary.json").read_text()))
    check_outputs_complete(out, setup["inputs"])


def test_a_paused_writers_part_is_left_alone_and_a_dead_ones_removed(tmp_path):
    """Cleanup goes by the writer's process, not by file age: a writer paused for longer than
    any age threshold keeps its temporary; once it is SIGKILLed the temporary is removed."""
    from medseg.engine.batch import remove_stale_parts

    ready = tmp_path / "ready"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from medseg.io.atomic import atomic_path\n"
        "with atomic_path(Path(sys.argv[1]) / 'a.nii.gz') as tmp:\n"
        "    tmp.write_bytes(b'partial')\n"
        "    Path(sys.argv[2]).write_text(str(tmp))\n"
        "    time.sleep(600)\n"), str(tmp_path), str(ready)])
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert time.time() < deadline and writer.poll() is None
            time.sleep(0.1)
        part = Path(ready.read_text())
        os.utime(part, (time.time() - 86400, time.time() - 86400))  # looks a day old
        unowned = tmp_path / ".a.nii.gz.x1.part.nii.gz"  # a leftover from before owners
        unowned.write_bytes(b"")
        assert remove_stale_parts(tmp_path, ["a.nii.gz"]) == [unowned]
        assert part.exists()
        writer.kill()
        writer.wait()
        assert remove_stale_parts(tmp_path, ["a.nii.gz"]) == [part]
        assert not (tmp_path / "a.nii.gz").exists()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
