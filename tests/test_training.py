"""Training: a tiny model learns, the bundle reloads to identical predictions, resume, DDP."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from medseg.cli import main
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.io import read_image
from medseg.models.medseg_bundle.bundle import load_bundle
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.training.train import CHECKPOINT_NAME, TrainConfig, checkpoint_path, train

BRAIN = "sample_data/Dataset001_BrainTissue"
TINY = {"channels": [8, 16, 32], "num_res_units": 1}


def tiny_config(**kw) -> TrainConfig:
    base = dict(iterations=30, val_every=15, patch_size=(32, 32, 32), arch_params=TINY,
                batch_size=2, samples_per_volume=1, lr=3e-3, seed=0, augment=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "bundle"
    return train(BRAIN, out, tiny_config(), progress=False)


def test_loss_decreases_and_bundle_is_complete(tiny_bundle):
    t = tiny_bundle.config["training"]
    history = t["loss_history_every_10"]
    assert t["iterations_done"] == 30
    assert history[-1] < history[0]
    assert set(t["val_dice"]) == {"white_matter", "grey_matter", "csf"}
    assert set(t["test_dice"]) == {"white_matter", "grey_matter", "csf"}
    assert tiny_bundle.config["preprocessing"]["intensity"]["scheme"] == "zscore"
    assert len(tiny_bundle.config["preprocessing"]["target_spacing"]) == 3
    # weights are a plain state dict loadable with weights_only=True
    state = torch.load(tiny_bundle.path / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_reloaded_bundle_gives_identical_predictions(tiny_bundle):
    image = read_image(f"{BRAIN}/imagesTs/brain_100_0000.nii.gz")
    first = Segmenter(MedsegBundleModel(tiny_bundle), InferenceSettings())(image).labels.data
    again = Segmenter(MedsegBundleModel(load_bundle(tiny_bundle.path)),
                      InferenceSettings())(image).labels.data
    np.testing.assert_array_equal(first, again)
    assert first.shape == image.spatial_shape


def test_resume_continues_from_checkpoint(tmp_path):
    out = tmp_path / "resumable"
    train(BRAIN, out, tiny_config(iterations=4, val_every=2), progress=False, keep_resume=True)
    assert checkpoint_path(out).is_file() and not (out / CHECKPOINT_NAME).exists()
    bundle = train(BRAIN, out, tiny_config(iterations=8, val_every=2), resume=True,
                   progress=False)
    assert bundle.config["training"]["iterations_done"] == 8


def test_fine_tune_from_bundle(tiny_bundle, tmp_path):
    bundle = train(BRAIN, tmp_path / "ft", tiny_config(iterations=2, val_every=2),
                   init_bundle=tiny_bundle.path, progress=False)
    assert bundle.config["training"]["iterations_done"] == 2


def _broken_dataset(tmp_path):
    ds = tmp_path / "broken"
    shutil.copytree(BRAIN, ds)
    (ds / "labelsTr" / "brain_003.nii.gz").unlink()
    return ds


def test_train_refuses_bad_dataset_before_training(tmp_path, capsys):
    ds = _broken_dataset(tmp_path)
    rc = main(["train", str(ds), "-o", str(tmp_path / "never"), "--iterations", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "brain_003" in err and "no label" in err
    assert not (tmp_path / "never").exists()


def test_ddp_two_gloo_processes_keep_weights_in_sync(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29517", "-m", "medseg.cli", "train", BRAIN, "-o", str(out),
           "--iterations", "3", "--val-every", "3", "--patch-size", "32", "32", "32",
           "--arch-params", json.dumps(TINY), "--batch-size", "1", "--samples-per-volume", "1",
           "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r0 = json.loads((out / "ddp_rank0.json").read_text())
    r1 = json.loads((out / "ddp_rank1.json").read_text())
    assert r0["numel"] == r1["numel"] > 0
    assert r0["sum"] == r1["sum"]
    assert r0["abs_sum"] == r1["abs_sum"]
    assert r0["first"] == r1["first"]
    assert load_bundle(out).config["training"]["iterations_done"] == 3
