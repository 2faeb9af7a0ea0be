"""Memory from model files (issue 24, items 9 and 10): a plans file or a bundle config that asks
for more memory than ``MEDSEG_MAX_MEMORY_BYTES`` is refused with one line naming the file and
the numbers, before the network is built or any tile allocated.

The reproductions of the second attack round, each run through ``medseg segment`` in a
subprocess whose peak RSS is compared with a normal run of the same model family:

* nnU-Net ``features_per_stage`` of 1536 (5.1 GB allocated building the network, before the
  weights were checked);
* nnU-Net patch ``[160, 192, 192]`` on a small image under 256 MiB (peaked at 3.7 GB: the
  estimate ignored the padding to the patch and the network's activations);
* nnU-Net patch ``[4096]^3`` (tried to allocate 275 GB);
* a schema-valid medseg bundle with patch ``1024^3`` under 256 MiB (tried to allocate 4 GiB).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medseg.errors import InputError
from medseg.models import load_model
from medseg.models.memory_budget import (
    nnunet_tiles,
    padded_to_patch,
    unet_parameters,
)
from medseg.models.nnunet.checkpoint import read_checkpoint
from medseg.models.nnunet.network import build_network, stored_elements
from medseg.models.nnunet.plans import ArchitectureSpec, read_plans
from tests.nnunet_fixture import INPUTS, MODEL_A, MODEL_B, copy_model

pytest.importorskip("dynamic_network_architectures")

ROOT = Path(__file__).resolve().parent.parent
CASE = INPUTS / "A" / "ct_ras_0000.nii.gz"  # 90x20x83 voxels: a small CT
ABDOMEN = ROOT / "sample_data" / "Dataset002_AbdomenCT" / "imagesTs" / "abdomen_101_0000.nii.gz"
LIMIT_256 = 256 * 1024**2
#: a refusal may cost this much above a normal run's peak (nothing of the request allocated)
SLACK = 64 * 1024**2


# ---- the arithmetic, against the real thing ----------------------------------------------
def _variants(spec: ArchitectureSpec) -> list[tuple[str, ArchitectureSpec]]:
    """The plans' network and kin: residual encoder (with a stem of its own), batch norm,
    PReLU with instance-norm statistics."""
    kw = copy.deepcopy(dict(spec.kwargs))
    res = copy.deepcopy(kw)
    res["n_blocks_per_stage"] = res.pop("n_conv_per_stage")
    stem = copy.deepcopy(res)
    stem["stem_channels"] = 5
    stem["n_blocks_per_stage"] = [1, 3, 2, 2, 1][: stem["n_stages"]]
    bn = copy.deepcopy(kw)
    bn["norm_op"] = bn["norm_op"].replace("instancenorm.InstanceNorm", "batchnorm.BatchNorm")
    bn["conv_bias"] = False
    prelu = copy.deepcopy(kw)
    prelu["nonlin"], prelu["nonlin_kwargs"] = "torch.nn.PReLU", {}
    prelu["norm_op_kwargs"] = {"eps": 1e-5, "affine": False, "track_running_stats": True}
    imports = spec.requires_import
    return [("plans", spec), ("residual", ArchitectureSpec("ResidualEncoderUNet", res, imports)),
            ("residual+stem", ArchitectureSpec("ResidualEncoderUNet", stem, imports)),
            ("batchnorm", ArchitectureSpec(spec.class_name, bn, imports)),
            ("prelu", ArchitectureSpec(spec.class_name, prelu, imports))]


@pytest.mark.parametrize("model", [MODEL_A, MODEL_B], ids=["A", "B"])
@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_parameters_from_the_plans_equal_the_built_network(model, configuration):
    config = read_plans(model / "plans.json").configuration(configuration)
    dims = len(config.patch_size)
    for label, spec in _variants(config.architecture):
        for in_channels, classes in ((1, 6), (2, 3)):
            net = build_network(spec, model / "plans.json", in_channels, classes)
            built = (sum(p.numel() for p in net.parameters())
                     + sum(b.numel() for b in net.buffers()))
            assert unet_parameters(spec.class_name, spec.kwargs, in_channels, classes,
                                   dims) == built, label


@pytest.mark.parametrize("model", [MODEL_A, MODEL_B], ids=["A", "B"])
def test_checkpoints_store_exactly_the_parameters_the_plans_describe(model):
    """The comparison that refuses an oversized network before building it never refuses a
    real checkpoint: each fold of the fixtures (made by nnunetv2) stores exactly that many."""
    config = read_plans(model / "plans.json").configuration("3d_fullres")
    labels = json.loads((model / "dataset.json").read_text())["labels"]
    planned = unet_parameters(config.architecture.class_name, config.architecture.kwargs, 1,
                              len(labels), 3)
    folds = sorted(model.glob("fold_*/checkpoint_final.pth"))
    assert len(folds) == 2
    for path in folds:
        weights = read_checkpoint(path).weights
        assert stored_elements(weights) == planned
        assert sum(t.numel() for t in weights.values()) > planned  # keys name weights twice


def test_padding_to_the_patch_is_counted():
    grid, patch = (4, 29, 16), (20, 80, 80)
    tiles = dict(nnunet_tiles(grid, patch, 1, 6, 2, 0).parts)
    assert tiles["padded image"] == 4 * 20 * 80 * 80
    # the logit and weight buffers cover the grid only (a tile adds its part inside it)
    assert "logit padding" not in tiles
    assert tiles["weight sum"] == 4 * 4 * 29 * 16
    big = dict(nnunet_tiles((40, 100, 90), patch, 1, 6, 2, 0).parts)
    assert big["padded image"] == 0
    assert padded_to_patch((30, 10, 10), (48, 40)) == (30, 48, 40)  # 2D: slices kept


# ---- the reproductions, through the CLI ----------------------------------------------------
def _run(args: list[str], env: dict[str, str], tmp: Path) -> tuple[int, str, int]:
    """Exit status, stderr and peak RSS (bytes) of one ``medseg`` subprocess (its own
    ``ru_maxrss``, from ``wait4``; stderr goes to a file, so the child never blocks on it)."""
    err_path = tmp / "stderr.txt"
    with open(err_path, "w") as err, open(os.devnull, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "medseg.cli", *args], env=env,
                                stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
    return (os.waitstatus_to_exitcode(status), err_path.read_text(),
            usage.ru_maxrss * 1024)


def _env(limit: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MEDSEG_MAX_MEMORY_BYTES", "MEDSEG_MAX_IMAGE_BYTES")}
    env["OMP_NUM_THREADS"] = "1"
    if limit is not None:
        env["MEDSEG_MAX_MEMORY_BYTES"] = str(limit)
    return env


def _segment(model: Path, case: Path, out: Path, limit: int | None) -> tuple[int, str, int]:
    out.mkdir(parents=True, exist_ok=True)
    return _run(["segment", str(case), "-m", str(model), "-o", str(out / "seg"), "--quiet"],
                _env(limit), out)


def _last_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    return lines[0]


def _edit_plans(model: Path, change) -> None:
    path = model / "plans.json"
    data = json.loads(path.read_text())
    change(data["configurations"]["3d_fullres"])
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def nnunet_baseline(tmp_path_factory) -> int:
    """Peak RSS of a normal segmentation with fixture A under the 256 MiB limit."""
    out = tmp_path_factory.mktemp("nnunet_baseline")
    code, err, rss = _segment(MODEL_A, CASE, out, LIMIT_256)
    assert code == 0, err
    return rss


def _wide(config: dict) -> None:
    config["architecture"]["arch_kwargs"]["features_per_stage"] = [1536] * 5


def test_wide_nnunet_is_refused_before_it_is_built(tmp_path, nnunet_baseline):
    """features_per_stage 1536 under the default limit: the network (1.2 G parameters,
    4.9 GB) is larger than what the checkpoint stores, so it is never built."""
    model = copy_model(MODEL_A, tmp_path / "m")
    _edit_plans(model, _wide)
    code, err, rss = _segment(model, CASE, tmp_path, None)
    assert code == 2
    line = _last_line(err)
    assert line.startswith(f"medseg: error: {model / 'plans.json'}: the PlainConvUNet described "
                           "here has 1224614424 parameters (4.6 GiB)"), line
    assert f"but {model / 'fold_0' / 'checkpoint_final.pth'} stores 370216: the weights " \
           "cannot fit it, so it is not built" in line
    assert rss < nnunet_baseline + SLACK, (rss, nnunet_baseline)
    assert not list((tmp_path / "seg").glob("*.nii*"))  # only the summary's error row


def test_wide_nnunet_over_the_limit_is_refused_before_any_checkpoint_is_read(tmp_path):
    """Under 256 MiB the same plans are refused from the plans alone: the checkpoint, here
    replaced by garbage, is not even opened."""
    model = copy_model(MODEL_A, tmp_path / "m")
    _edit_plans(model, _wide)
    (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    os.environ["MEDSEG_MAX_MEMORY_BYTES"] = str(LIMIT_256)
    try:
        with pytest.raises(InputError) as info:
            load_model(model, device="cpu")
    finally:
        os.environ.pop("MEDSEG_MAX_MEMORY_BYTES")
    message = str(info.value)
    assert message.startswith(f"{model / 'plans.json'}: the PlainConvUNet described here has "
                              "1224614424 parameters, which need about 4898457696 bytes "
                              "(4.6 GiB)"), message
    assert f"more than the limit of {LIMIT_256} bytes (MEDSEG_MAX_MEMORY_BYTES)" in message
    assert "\n" not in message


@pytest.mark.parametrize(("patch", "limit"),
                         [([160, 192, 192], LIMIT_256), ([4096] * 3, None)],
                         ids=["160x192x192-256MiB", "4096^3-default"])
def test_large_nnunet_patch_is_refused_before_any_tile(tmp_path, nnunet_baseline, patch, limit):
    model = copy_model(MODEL_A, tmp_path / "m", folds=("0", "1"))

    def large(config: dict) -> None:
        config["patch_size"] = patch

    _edit_plans(model, large)
    code, err, rss = _segment(model, CASE, tmp_path, limit)
    assert code == 2
    line = _last_line(err)
    shown = limit if limit is not None else 8 * 1024**3
    assert line.startswith(f"medseg: error: {CASE}: segmenting this 90x20x83 image needs "
                           "about "), line
    assert f"more than the limit of {shown} bytes (MEDSEG_MAX_MEMORY_BYTES); " \
           f"{model / 'plans.json'}: patch {'x'.join(map(str, patch))} on a model grid of " \
           f"22x83x90 padded to {'x'.join(map(str, patch))}: padded image " in line
    needed = int(line.split("needs about ")[1].split()[0])
    assert needed > 4 * math.prod(patch) * 6  # at least the padded logits of 6 classes
    assert "network activations" in line
    assert rss < nnunet_baseline + SLACK, (rss, nnunet_baseline)
    assert not list((tmp_path / "seg").glob("*.nii*"))  # only the summary's error row


def test_bundle_patch_of_1024_cubed_is_refused_before_any_tile(tmp_path):
    """A schema-valid medseg bundle (the shipped abdomen model, patch 1024^3; the checksum
    covers the weights, not the config) under 256 MiB; the unmodified bundle runs."""
    bundle = tmp_path / "big_patch"
    shutil.copytree(ROOT / "sample_data" / "models" / "abdomen_ct", bundle)
    config = json.loads((bundle / "config.json").read_text())
    config["patch_size"] = [1024] * 3
    (bundle / "config.json").write_text(json.dumps(config))
    code, err, base_rss = _segment(ROOT / "sample_data" / "models" / "abdomen_ct", ABDOMEN,
                                   tmp_path / "base", LIMIT_256)
    assert code == 0, err
    code, err, rss = _segment(bundle, ABDOMEN, tmp_path / "attack", LIMIT_256)
    assert code == 2
    line = _last_line(err)
    assert line.startswith(f"medseg: error: {ABDOMEN}: segmenting this 96x96x60 image needs "
                           "about "), line
    assert f"more than the limit of {LIMIT_256} bytes (MEDSEG_MAX_MEMORY_BYTES); " \
           f"{bundle / 'config.json'}: patch 1024x1024x1024 on a model grid of 96x96x60 " \
           "padded to 1024x1024x1024: padded image 4.0 GiB" in line
    assert rss < base_rss + SLACK, (rss, base_rss)
    assert not list((tmp_path / "attack" / "seg").glob("*.nii*"))


def test_bundle_network_over_the_limit_is_refused_before_it_is_built(tmp_path):
    """Channel counts the schema allows (under its 2 GiB cap) but over the memory limit."""
    bundle = tmp_path / "wide"
    shutil.copytree(ROOT / "sample_data" / "models" / "abdomen_ct", bundle)
    config = json.loads((bundle / "config.json").read_text())
    config["architecture"]["params"]["channels"] = [256, 512, 1024, 1024]
    (bundle / "config.json").write_text(json.dumps(config))
    os.environ["MEDSEG_MAX_MEMORY_BYTES"] = str(LIMIT_256)
    try:
        with pytest.raises(InputError) as info:
            load_model(bundle, device="cpu")
    finally:
        os.environ.pop("MEDSEG_MAX_MEMORY_BYTES")
    message = str(info.value)
    assert message.startswith(f"{bundle / 'config.json'}: the network this bundle describes "
                              "needs about "), message
    assert f"more than the limit of {LIMIT_256} bytes (MEDSEG_MAX_MEMORY_BYTES)" in message

