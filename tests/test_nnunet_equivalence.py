"""medseg reproduces nnU-Net v2's own predictions (``nnUNetPredictor``) on the committed fixtures.

The fixtures (``tests/fixtures/nnunet``, README there) hold two models trained with the real
nnunetv2 and nnU-Net's own masks for every input, written by ``make_fixtures.py``; nnunetv2 is
not needed here. Model A: anisotropic CT, CTNormalization, plans that transpose the axes; its
inputs are stored RAS, LPS, oblique, with another anisotropic spacing, with a zero border (nnU-Net
crops it) and in another voxel order. Model B ("another plan"): MR, ZScore inside the non-zero
mask, another patch size and spacing, mirroring allowed on two axes only.

Each run goes through ``medseg segment CASES -o OUT -m FOLDER`` with the same settings as the
expected run (folds, checkpoint, mirroring); every mask must sit on its input's exact grid and
agree with nnU-Net's (voxels >= 99.5 %, Dice >= 0.98 per class).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.io import read_image
from medseg.models import describe_model, load_model
from tests.nnunet_fixture import EXPECTED, INPUTS, MODEL_A, MODEL_B

pytest.importorskip("dynamic_network_architectures")

MODELS = {"A": MODEL_A, "B": MODEL_B}


def _cases(key: str, names: tuple[str, ...] | None = None) -> list[Path]:
    found = sorted((INPUTS / key).glob("*_0000.nii.gz"))
    return [p for p in found if names is None or _case_name(p) in names]


def _case_name(path: Path) -> str:
    return path.name[: -len("_0000.nii.gz")]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def _run_name(key: str, run: str) -> str:
    """The expected/ run: ``nomirror``, ``mirror``, or ``best`` for the one-fold
    ``checkpoint_best`` run (named after its fold in the manifest)."""
    runs = json.loads((INPUTS.parent / "manifest.json").read_text())[key]["runs"]
    if run == "best":
        return next(name for name in runs if name.startswith("best"))
    return run


def _cli_settings(key: str, run: str) -> list[str]:
    """medseg CLI arguments giving the settings nnUNetPredictor ran with (from the manifest)."""
    r = json.loads((INPUTS.parent / "manifest.json").read_text())[key]["runs"][run]
    args = ["--folds", *[str(f) for f in r["folds"]],
            "--checkpoint", "best" if r["checkpoint"] == "checkpoint_best.pth" else "final"]
    return [*args, "--mirror"] if r["use_mirroring"] else args


def _run(tmp_path: Path, key: str, run: str, names: tuple[str, ...] | None = None,
         model: Path | None = None) -> Path:
    out = tmp_path / f"{key}_{run}"
    code = main(["segment", *[str(p) for p in _cases(key, names)], "-o", str(out), "-m",
                 str(model or MODELS[key]), "--quiet", *_cli_settings(key, run)])
    assert code == 0
    return out


def _check_against_nnunet(out: Path, key: str, run: str,
                          names: tuple[str, ...] | None = None) -> dict[str, float]:
    expected_dir = EXPECTED / MODELS[key].parent.name / run
    agreements = {}
    for image_path in _cases(key, names):
        case = _case_name(image_path)
        # medseg names the case after the file, dropping nnU-Net's channel suffix _0000
        masks = [p for p in (out / f"{case}.nii.gz", out / f"{case}_0000.nii.gz") if p.exists()]
        assert len(masks) == 1, sorted(p.name for p in out.iterdir())
        ours, image = nib.load(str(masks[0])), nib.load(str(image_path))
        ref = nib.load(str(expected_dir / f"{case}.nii.gz"))
        # the input's exact grid
        assert ours.shape == image.shape[:3]
        np.testing.assert_allclose(ours.affine, image.affine, atol=1e-5)
        a, b = np.asarray(ours.dataobj), np.asarray(ref.dataobj)
        assert a.shape == b.shape
        agreement = float((a == b).mean())
        agreements[case] = agreement
        assert agreement >= 0.995, (case, agreement)
        for value in np.union1d(np.unique(a), np.unique(b)):
            if value == 0:
                continue
            d = _dice(a == value, b == value)
            assert d >= 0.98, (case, int(value), d)
    return agreements


#: (model, run, inputs or None for all); CI runs every input once without mirroring and a few
#: for the other settings, the rest is marked slow
CI_RUNS = [("A", "nomirror", ("ct_ras", "ct_lps", "ct_oblique", "ct_zero_border")),
           ("B", "nomirror", None), ("A", "best", ("ct_aniso_other",))]
SLOW_RUNS = [("A", "nomirror", None), ("A", "best", None), ("A", "mirror", None),
             ("B", "mirror", None)]


@pytest.mark.parametrize(("key", "run", "names"), [
    *CI_RUNS, *[pytest.param(*r, marks=pytest.mark.slow) for r in SLOW_RUNS]])
def test_masks_equal_nnunet_predictor(tmp_path, key, run, names):
    run = _run_name(key, run)
    _check_against_nnunet(_run(tmp_path, key, run, names), key, run, names)


def test_mirroring_matches_on_one_case_quickly():
    """The CI share of the mirroring check: model B (mirroring on two axes) on one input.
    Where nnU-Net's mirrored and unmirrored masks differ, medseg's must side with the mirrored."""
    image_path = _cases("B")[0]
    seg = Segmenter(load_model(MODEL_B), InferenceSettings(mirror=True))(read_image(image_path))
    ours = seg.labels.data
    refs = {run: np.asarray(nib.load(str(EXPECTED / MODEL_B.parent.name / run
                                         / f"{_case_name(image_path)}.nii.gz")).dataobj)
            for run in ("mirror", "nomirror")}
    assert (ours == refs["mirror"]).mean() >= 0.995
    differs = refs["mirror"] != refs["nomirror"]
    assert differs.sum() >= 20  # mirroring changes this mask, so the check below means something
    assert (ours[differs] == refs["mirror"][differs]).mean() >= 0.8


def test_dataset_folder_and_probabilities(tmp_path):
    """``-m`` the dataset folder (3d_fullres is picked) with ``--probabilities``: the mask and
    nnU-Net's softmax on the input grid (background 1 outside the crop), as its
    ``save_probabilities`` npz holds it (axes reversed, SimpleITK order)."""
    npz = next(EXPECTED.glob("*/nomirror/*_probabilities.npz"))
    key = next(k for k, m in MODELS.items() if m.parent.name == npz.parents[1].name)
    case = npz.name[: -len("_probabilities.npz")]
    out = tmp_path / "out"
    code = main(["segment", str(INPUTS / key / f"{case}_0000.nii.gz"), "-o", str(out), "-m",
                 str(MODELS[key].parent), "--quiet", "--probabilities"])
    assert code == 0
    _check_against_nnunet(out, key, "nomirror", (case,))
    probs = nib.load(str(next(out.glob("*probabilities.nii.gz"))))
    ours = np.moveaxis(np.asarray(probs.dataobj, dtype=np.float32), -1, 0)  # K, x, y, z
    ref = np.load(npz)["probabilities"].transpose(0, 3, 2, 1)
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref)
    assert float(diff.mean()) < 2e-3 and float(np.quantile(diff, 0.999)) < 0.05
    np.testing.assert_allclose(ours.sum(0), 1.0, atol=1e-3)


def test_describe_reads_metadata_only(tmp_path):
    import shutil

    copy = tmp_path / MODEL_A.parent.name / MODEL_A.name
    shutil.copytree(MODEL_A, copy)
    for ck in copy.glob("fold_*/*.pth"):
        ck.write_bytes(b"not a checkpoint")  # describe must never open these
    info = describe_model(copy)
    plans = json.loads((MODEL_A / "plans.json").read_text())
    dataset = json.loads((MODEL_A / "dataset.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    assert info.format == "nnunet_v2"
    assert dict(info.labels) == dataset["labels"]
    assert info.folds == ("0", "1")
    assert info.modality == "CT" and info.in_channels == 1
    # the input's x, y, z order: nnU-Net axis a is the file's axis 2 - transpose_forward[a]
    tf = plans["transpose_forward"]
    for a, t in enumerate(tf):
        assert info.spacing[2 - t] == pytest.approx(config["spacing"][a])
        assert info.patch_size[2 - t] == config["patch_size"][a]
    assert info.source.startswith(MODEL_A.name + " at ")
    props = plans["foreground_intensity_properties_per_channel"]["0"]
    record = info.training_record["intensity"][0]
    assert record["p00_5"] == props["percentile_00_5"] and record["mean"] == props["mean"]
    assert info.details["normalization"] == ["CTNormalization"]
