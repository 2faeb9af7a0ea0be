"""``medseg train --synth``: a few iterations on tiny brain crops give a loadable bundle that
records the synthesis settings and the percentile normalisation, and segments a real image."""

import json

import numpy as np
import pytest

from medseg.cli import main
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.io import read_image
from medseg.models.medseg_bundle.bundle import load_bundle
from medseg.models.medseg_bundle.model import MedsegBundleModel
from tests.brain_datasets import cropped_brains


@pytest.fixture(scope="module")
def synth_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    data = cropped_brains(root / "data", 3, half=16)
    out = root / "bundle"
    code = main(["train", str(data), "-o", str(out), "--synth", "--iterations", "3",
                 "--val-every", "3", "--patch-size", "32", "32", "32", "--batch-size", "1",
                 "--samples-per-volume", "1", "--arch-params",
                 json.dumps({"channels": [8, 16, 32], "num_res_units": 1}), "--quiet",
                 "--device", "cpu"])
    assert code == 0
    return load_bundle(out), data


def test_bundle_records_synthesis_and_normalisation(synth_bundle):
    bundle, _ = synth_bundle
    cfg = bundle.config
    assert cfg["preprocessing"]["intensity"]["scheme"] == "percentile"
    assert cfg["training"]["config"]["synth"] is True
    assert cfg["training"]["iterations_done"] == 3
    synth = cfg["training"]["synth"]
    assert 0 < synth["p_skull_strip"] < 1 and synth["deform"]["elastic_mm"] > 0
    assert bundle.labels == {"background": 0, "white_matter": 1, "grey_matter": 2, "csf": 3}


def test_bundle_segments_a_real_image(synth_bundle):
    bundle, data = synth_bundle
    image = read_image(data / "imagesTr" / "b0_0000.nii.gz")
    result = Segmenter(MedsegBundleModel(load_bundle(bundle.path)),
                       InferenceSettings(device="cpu"))(image)
    assert result.labels.data.shape == image.spatial_shape
    np.testing.assert_allclose(result.labels.affine, image.affine)
    assert set(np.unique(result.labels.data).tolist()) <= {0, 1, 2, 3}


def test_synth_on_a_2d_dataset_is_a_clear_error(tmp_path, capsys):
    from tests.brain_datasets import axial_slices

    data = axial_slices(tmp_path / "d2", 2)
    code = main(["train", str(data), "-o", str(tmp_path / "b"), "--synth", "--iterations", "1",
                 "--quiet", "--device", "cpu"])
    assert code != 0
    assert "--synth needs 3D label maps" in capsys.readouterr().err
