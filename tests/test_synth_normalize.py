"""The ``percentile`` intensity scheme: the same meaning across scanner scalings and with or
without skull stripping (a real test image of the brain sample)."""

import numpy as np
import pytest
import torch

from medseg.errors import MedsegError
from medseg.io import read_image, read_label_map
from medseg.models.medseg_bundle.bundle import Bundle
from medseg.ops.preprocess import Preprocessing, normalize, percentile_scheme, prepare
from tests.brain_datasets import BRAIN


@pytest.fixture(scope="module")
def case():
    image = read_image(BRAIN / "imagesTs" / "brain_100_0000.nii.gz")
    labels = read_label_map(BRAIN / "labelsTs" / "brain_100.nii.gz").data
    return torch.from_numpy(image.array.astype(np.float32)), labels > 0


@pytest.mark.parametrize(("scale", "offset"), [(10.0, 1000.0), (0.01, -3.0), (3.7, 0.0)])
def test_invariant_to_scaling_and_offset(case, scale, offset):
    x, _ = case
    scheme = percentile_scheme()
    np.testing.assert_allclose(normalize(x * scale + offset, scheme).numpy(),
                               normalize(x, scheme).numpy(), atol=2e-4)


def test_skull_stripping_keeps_the_meaning_of_intensities(case):
    x, brain = case
    scheme = percentile_scheme()
    full = normalize(x, scheme)[0].numpy()
    stripped = normalize(torch.where(torch.from_numpy(brain)[None], x, 0.0), scheme)[0].numpy()
    assert np.all(stripped[~brain] == 0.0)  # the zero background stays exactly 0
    assert abs(float(np.median(full[~brain]))) < 0.05  # as dark as the air of the full scan
    diff = np.abs(full[brain] - stripped[brain])
    assert float(np.median(diff)) < 0.03 and float(np.percentile(diff, 99)) < 0.06
    # the non-zero z-score puts the stripped background at the tissue mean (0) while the
    # unstripped air lies far below it: the same background means two different things
    z = normalize(x, {"scheme": "zscore", "nonzero": True})[0].numpy()
    assert float(np.median(z[~brain])) < -0.5


def test_scheme_is_recorded_and_read_back():
    pre = Preprocessing((2.0, 2.0, 2.0), percentile_scheme(1, 99, (-1, 3)))
    back = Bundle("x", {"preprocessing": pre.to_dict()}).preprocessing
    assert back.intensity == {"scheme": "percentile", "lower": 1.0, "upper": 99.0,
                              "clip": [-1.0, 3.0]}


def test_inference_preparation_uses_it(case):
    image = read_image(BRAIN / "imagesTs" / "brain_100_0000.nii.gz")
    pre = Preprocessing((4.0, 4.0, 4.0), percentile_scheme())
    a = prepare(image, pre).image
    b = prepare(image.with_array(image.array.astype(np.float32) * 10 + 1000), pre).image
    torch.testing.assert_close(a, b, atol=2e-4, rtol=0)
    assert float(a.max()) <= 2.0 and float(a.min()) >= -0.5


def test_unknown_scheme_is_an_error(case):
    with pytest.raises(MedsegError, match="unknown intensity scheme"):
        normalize(case[0], {"scheme": "whitening"})
