"""The synthetic head generator on a small real label map (a brain of the sample at 4 mm)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.errors import MedsegError
from medseg.io import read_label_map
from medseg.ops.preprocess import percentile_scheme
from medseg.synth import SynthPatches, SynthSettings, SynthSource, synthesize
from medseg.synth.classes import collapse, head_values, n_classes
from medseg.synth.deform import DeformRanges
from tests.brain_datasets import BRAIN

N_BRAIN = 3
HEAD = head_values(N_BRAIN)
SHELLS = ("extra_cerebral_csf", "skull", "scalp_muscle", "scalp_fat")


@pytest.fixture(scope="module")
def source() -> SynthSource:
    lab = read_label_map(BRAIN / "labelsTr" / "brain_000.nii.gz")
    small = lab.data[::2, ::2, ::2]  # 40 x 48 x 40 voxels of 4 mm
    affine = lab.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    spacing = tuple(float(s) * 2 for s in lab.spacing)
    return SynthSource.build(small, spacing, affine, N_BRAIN, pad_mm=24.0)


def draw(src, seed, **settings):
    return synthesize(src, torch.Generator().manual_seed(seed), SynthSettings(**settings))


def test_shapes_and_geometry(source):
    s = draw(source, 0)
    assert s.image.shape == s.label.shape == s.head_label.shape
    assert s.image.dtype == torch.float32
    lo = SynthSettings().fov_fraction[0]
    for n, m in zip(source.labels.shape, s.image.shape, strict=True):
        assert round(n * lo) <= m <= n
    # same voxel axes and spacing as the source; origin at the field of view's first voxel
    np.testing.assert_allclose(s.affine[:3, :3], source.affine[:3, :3])
    np.testing.assert_allclose(np.linalg.norm(s.affine[:3, :3], axis=0), source.spacing)
    first = np.array(s.draws["offset"], float) - np.array(source.pad, float)
    np.testing.assert_allclose(s.affine[:3, 3], (source.affine @ np.append(first, 1))[:3])
    assert set(np.unique(s.label.numpy())) <= {0, 1, 2, 3}
    assert int(s.head_label.max()) < n_classes(N_BRAIN)


def test_without_deformation_the_labels_are_the_source_labels(source):
    s = draw(source, 1, fov_fraction=(1.0, 1.0), deform=DeformRanges(0, 0, 0, 0, 0))
    np.testing.assert_array_equal(s.label.numpy(), source.labels.numpy())
    np.testing.assert_allclose(s.affine, source.affine @ _shift(-np.array(source.pad, float)))


def _shift(t):
    m = np.eye(4)
    m[:3, 3] = t
    return m


@pytest.mark.parametrize("change", [dict(noise_std=0.2), dict(bias_std=0.8),
                                    dict(gamma_std=0.6), dict(max_thickness_mm=12.0)])
def test_labels_unchanged_by_intensity_randomisation(source, change):
    a, b = draw(source, 3), draw(source, 3, **change)
    np.testing.assert_array_equal(a.label.numpy(), b.label.numpy())
    np.testing.assert_array_equal(a.head_label.numpy(), b.head_label.numpy())
    assert not torch.allclose(a.image, b.image)


def test_deterministic_under_a_seed(source):
    a, b, c = draw(source, 7), draw(source, 7), draw(source, 8)
    assert torch.equal(a.image, b.image) and torch.equal(a.label, b.label)
    assert a.draws == b.draws
    assert a.image.shape != c.image.shape or not torch.equal(a.image, c.image)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skull_stripping_gives_an_exactly_zero_background(source, seed):
    s = draw(source, seed, p_skull_strip=1.0)
    assert s.draws["skull_strip"]
    brain = s.label.numpy() > 0
    far = ~ndimage.binary_dilation(brain, np.ones((3, 3, 3)), iterations=3)  # beyond the mask
    img = s.image.numpy()
    assert far.any() and np.all(img[far] == 0.0)
    assert np.mean(img[brain] > 0) > 0.99


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_shells_surround_the_brain_when_not_stripped(source, seed):
    s = draw(source, seed, p_skull_strip=0.0, p_head=1.0)
    assert s.draws["head"] and not s.draws["skull_strip"]
    head = s.head_label.numpy()
    present = set(np.unique(head).tolist())
    assert {HEAD[n] for n in ("skull", "scalp_muscle", "scalp_fat")} <= present
    # shells are ordered outwards: mean distance to the brain grows from skull to fat
    dist = ndimage.distance_transform_edt(~(s.label.numpy() > 0))
    means = [dist[head == HEAD[n]].mean() for n in SHELLS if (head == HEAD[n]).any()]
    assert means == sorted(means)
    # the training target keeps only the brain classes
    np.testing.assert_array_equal(s.label.numpy(), np.where(head > N_BRAIN, 0, head))
    # the head is not background: its voxels are brighter than air on most draws' images
    assert float(s.image.numpy()[head == HEAD["scalp_muscle"]].mean()) > 0


def test_skull_marrow_lies_between_the_skulls_two_tables(source):
    from medseg.synth.head import add_head

    labels = source.labels
    with_marrow = add_head(labels, source.distance, N_BRAIN, torch.Generator().manual_seed(5),
                           p_marrow=1.0).numpy()
    without = add_head(labels, source.distance, N_BRAIN, torch.Generator().manual_seed(5),
                       p_marrow=0.0).numpy()
    marrow = with_marrow == HEAD["skull_marrow"]
    assert marrow.sum() > 0 and not (without == HEAD["skull_marrow"]).any()
    # marrow replaces only skull voxels, and skull remains on both sides of it
    assert (without[marrow] == HEAD["skull"]).all()
    np.testing.assert_array_equal(np.where(marrow, HEAD["skull"], with_marrow), without)
    dist = source.distance.numpy()
    skull = with_marrow == HEAD["skull"]
    assert dist[skull].min() < dist[marrow].min() and dist[marrow].max() < dist[skull].max()


def test_face_puts_eyes_in_front_of_and_below_the_brain_and_never_on_it(source):
    from medseg.synth.face import add_face
    from medseg.synth.head import add_head

    labels = source.labels
    head = add_head(labels, source.distance, N_BRAIN, torch.Generator().manual_seed(2))
    face = add_face(head, labels, source.spacing, N_BRAIN, torch.Generator().manual_seed(3))
    again = add_face(head, labels, source.spacing, N_BRAIN, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(face.numpy(), again.numpy())  # deterministic under a seed
    face, lab = face.numpy(), labels.numpy()
    brain = lab > 0
    np.testing.assert_array_equal(face[brain], lab[brain])
    eye = face == HEAD["eye"]
    assert eye.sum() > 0 and (face == HEAD["orbital_fat"]).sum() > eye.sum() / 4
    ex, ey, ez = np.nonzero(eye)
    bx, by, bz = np.nonzero(brain)
    # RAS grid: the eyes lie in the front (y) and lower (z) part of the brain's box, left and right
    assert ey.mean() > by.mean() + 0.3 * (by.max() - by.min())
    assert ez.mean() < bz.mean()
    mid = (bx.min() + bx.max()) / 2
    assert (ex < mid).any() and (ex > mid).any()
    # every face class is a head class, so the training target sees it as background
    assert int(face.max()) < n_classes(N_BRAIN)
    target = collapse(torch.from_numpy(face), N_BRAIN).numpy()
    np.testing.assert_array_equal(target, np.where(brain, lab, 0))


def test_no_head_draw_has_no_head_classes(source):
    s = draw(source, 4, p_skull_strip=0.0, p_head=0.0)
    assert not s.draws["head"]
    assert int(s.head_label.max()) <= N_BRAIN


def test_patches_are_normalised_and_patch_sized(source):
    stream = SynthPatches([source], (24, 24, 24), percentile_scheme(), samples=2, seed=5,
                          settings=replace(SynthSettings(), fov_fraction=(0.5, 0.6)))
    items = [item for _, item in zip(range(4), stream, strict=False)]
    for item in items:
        assert item["image"].shape == (1, 24, 24, 24) and item["label"].shape == (1, 24, 24, 24)
        assert item["label"].dtype == torch.uint8 and int(item["label"].max()) <= 3
        assert float(item["image"].min()) >= -0.5 and float(item["image"].max()) <= 2.0
    again = [item for _, item in zip(range(4), SynthPatches(
        [source], (24, 24, 24), percentile_scheme(), samples=2, seed=5,
        settings=replace(SynthSettings(), fov_fraction=(0.5, 0.6))), strict=False)]
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(items, again, strict=True))


def test_bad_sources_are_refused():
    with pytest.raises(MedsegError, match="empty"):
        SynthSource.build(np.zeros((8, 8, 8), np.uint8), (2, 2, 2), np.eye(4), 3)
    with pytest.raises(MedsegError, match="label values"):
        SynthSource.build(np.full((8, 8, 8), 5, np.uint8), (2, 2, 2), np.eye(4), 3)
    with pytest.raises(MedsegError, match="3D"):
        SynthSource.build(np.ones((8, 8), np.uint8), (2, 2), np.eye(4), 3)
