"""MONAI bundles run by medseg reproduce ``monai.bundle run`` on the committed fixture
(tests/fixtures/monai_bundle: a bundle trained with plain MONAI, four inputs with different
geometry, a second inference config for the same weights, and the masks MONAI's own CLI wrote
for them), on the input's exact grid."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main as cli_main
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import InputError, MedsegError
from medseg.io import read_image
from medseg.models import describe_model, load_model
from medseg.registry import load_registry
from medseg.volume import Volume

FIXTURE = Path(__file__).parent / "fixtures" / "monai_bundle"
BUNDLE = FIXTURE / "bundle"
CASES = ("case_ras", "case_lps", "case_oblique", "case_aniso")


@pytest.fixture(scope="module")
def registry():
    return load_registry(fresh=True)


@pytest.fixture(scope="module")
def segmenter(registry):
    model = load_model(BUNDLE, registry, "cpu", trust=True)
    return Segmenter(model, InferenceSettings(device="cpu"), registry)


@pytest.fixture(scope="module")
def variant_segmenter(registry, tmp_path_factory):
    """The same weights under ``variant/inference.json``: another spacing, a foreground crop,
    another window/overlap/blending, argmax before Invertd with nearest interpolation."""
    bundle = tmp_path_factory.mktemp("variant") / "bundle"
    shutil.copytree(BUNDLE, bundle)
    shutil.copy(FIXTURE / "variant" / "inference.json", bundle / "configs" / "inference.json")
    model = load_model(bundle, registry, "cpu", trust=True)
    return Segmenter(model, InferenceSettings(device="cpu"), registry)


def expected(case: str, folder: str = "expected") -> nib.Nifti1Image:
    return nib.load(FIXTURE / folder / f"{case}_seg.nii.gz")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def test_describe_reads_metadata_and_stated_geometry(registry):
    info = describe_model(BUNDLE, registry)
    assert info.format == "monai_bundle"
    assert info.labels == {"background": 0, "liver": 1, "spleen": 2, "kidney_right": 3,
                           "kidney_left": 4, "aorta": 5, "vertebra": 6, "liver_lesion": 7}
    assert info.spacing == (6.0, 6.0, 6.0)  # Spacingd pixdim
    assert info.patch_size == (48, 48, 48)  # inferer roi_size
    assert info.modality == "CT" and info.in_channels == 1 and info.spatial_dims == 3
    assert info.details["version"] == "0.1.0"
    assert info.details["runs_code"] == "$import glob"


@pytest.mark.parametrize("config", ["bundle", "variant"])
@pytest.mark.parametrize("case", CASES)
def test_reproduces_monai_bundle_run_on_the_input_grid(request, case, config):
    segmenter = request.getfixturevalue("segmenter" if config == "bundle"
                                        else "variant_segmenter")
    path = FIXTURE / "inputs" / f"{case}.nii.gz"
    volume = read_image(path)
    seg = segmenter(volume, str(path))
    ref_img = expected(case, "expected" if config == "bundle" else "expected_variant")
    ref = np.asarray(ref_img.dataobj).astype(np.int64)
    ours = seg.labels.data.astype(np.int64)
    # the grid of the input, which is also the grid monai.bundle run saved on
    assert ours.shape == volume.spatial_shape == ref.shape
    np.testing.assert_allclose(seg.labels.affine, volume.affine, atol=1e-6)
    np.testing.assert_allclose(ref_img.affine, volume.affine, atol=1e-3)
    present = [c for c in range(1, 8) if (ref == c).any()]
    assert len(present) >= 4, f"the fixture's mask is too trivial: classes {present}"
    agreement = float((ours == ref).mean())
    assert agreement >= 0.995, f"{case}: voxel agreement {agreement:.4f}"
    for c in present:
        d = dice(ours == c, ref == c)
        assert d >= 0.98, f"{case}: class {c} Dice {d:.4f}"


def test_probabilities_on_the_input_grid(registry):
    model = load_model(BUNDLE, registry, "cpu", trust=True)
    seg = Segmenter(model, InferenceSettings(device="cpu", probabilities=True), registry)
    volume = read_image(FIXTURE / "inputs" / "case_oblique.nii.gz")
    out = seg(volume)
    probs = out.probabilities
    assert probs is not None and probs.array.shape == (8, *volume.spatial_shape)
    np.testing.assert_allclose(probs.affine, volume.affine)
    np.testing.assert_allclose(probs.array.sum(0), 1.0, atol=1e-4)
    # the mask is the argmax of the (inverted) probabilities, as the bundle's AsDiscreted
    assert (probs.array.argmax(0) == out.labels.data).mean() > 0.999


def test_cli_segment_with_trust_bundle(tmp_path, capsys):
    case = FIXTURE / "inputs" / "case_lps.nii.gz"
    code = cli_main(["segment", str(case), "-o", str(tmp_path), "-m", str(BUNDLE),
                     "--trust-bundle", "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr()
    written = [p for p in tmp_path.rglob("*.nii.gz")]
    assert written, list(tmp_path.rglob("*"))
    out = nib.load(written[0])
    ref = expected("case_lps")
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-3)
    agreement = (np.asarray(out.dataobj) == np.asarray(ref.dataobj)).mean()
    assert agreement >= 0.995


def test_channels_that_do_not_match_the_image(segmenter):
    base = read_image(FIXTURE / "inputs" / "case_ras.nii.gz")
    two = Volume(np.stack([base.array[0], base.array[0]]), base.affine)
    with pytest.raises(InputError, match=r"case\.nii\.gz: .*expects 1 channel"):
        segmenter(two, "case.nii.gz")


def test_settings_the_bundle_inferer_decides_are_refused(segmenter, registry):
    volume = read_image(FIXTURE / "inputs" / "case_ras.nii.gz")
    model = segmenter.models[0]
    with pytest.raises(MedsegError, match="runs its own inferer: --mirror does not apply"):
        Segmenter(model, InferenceSettings(device="cpu", mirror=True), registry)(volume)


def test_cli_channel_mismatch_names_the_input_and_writes_no_mask(tmp_path, capsys):
    img = nib.load(FIXTURE / "inputs" / "case_ras.nii.gz")
    two = np.stack([np.asarray(img.dataobj)] * 2, axis=-1)
    case = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti1Image(two, img.affine), case)
    out = tmp_path / "out"
    code = cli_main(["segment", str(case), "-o", str(out), "-m", str(BUNDLE),
                     "--trust-bundle", "--device", "cpu", "--quiet"])
    printed = capsys.readouterr()
    assert code != 0
    line = [x for x in (printed.out + printed.err).splitlines() if "expects 1 channel" in x]
    assert len(line) == 1 and str(case) in line[0] and "the image has 2" in line[0]
    assert not list(out.rglob("*.nii*"))
