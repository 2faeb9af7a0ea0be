"""Bundles change as a whole: a training run killed while writing its bundle leaves the old
bundle usable (never new weights with an old config), and ``--resume`` verifies the bundle and
repairs it from the checkpoint's best weights; a checkpoint of another architecture is one
line."""

from __future__ import annotations

import json

import pytest
import torch

from medseg.errors import MedsegError
from medseg.models.medseg_bundle.bundle import BUILDING, load_bundle, save_bundle
from medseg.training.train import checkpoint_path, train
from tests.pause_kill import kill_at
from tests.test_training import BRAIN, tiny_config

TIMEOUT = 300


@pytest.mark.parametrize("point", ["bundle-weights-written", "bundle-before-swap"])
def test_killed_while_saving_leaves_the_old_bundle_usable(tmp_path, point):
    bundle = tmp_path / "bundle"
    state = {"w": torch.zeros(3)}
    save_bundle(bundle, {"architecture": {"name": "unet"}, "labels": {"bg": 0, "a": 1},
                         "spatial_dims": 3, "in_channels": 1, "patch_size": [16, 16, 16],
                         "preprocessing": {}}, state)
    (bundle / "notes.txt").write_text("kept")
    old_sha = json.loads((bundle / "config.json").read_text())["weights"]["sha256"]
    code = ("import torch, json; from medseg.models.medseg_bundle.bundle import save_bundle; "
            f"cfg = json.load(open({str(bundle / 'config.json')!r})); cfg.pop('weights'); "
            f"save_bundle({str(bundle)!r}, cfg, {{'w': torch.ones(3)}})")
    kill_at(point, ["-c", code], tmp_path)
    config = json.loads((bundle / "config.json").read_text())
    assert config["weights"]["sha256"] == old_sha  # the old bundle, whole
    assert torch.equal(load_bundle(bundle).load_weights()["w"], torch.zeros(3))
    assert (bundle / "notes.txt").read_text() == "kept"
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]
    assert leftovers and all((p / BUILDING).is_file() for p in leftovers)  # says incomplete
    save_bundle(bundle, {k: v for k, v in config.items() if k != "weights"}, {"w": torch.ones(3)})
    assert torch.equal(load_bundle(bundle).load_weights()["w"], torch.ones(3))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]  # swept


def test_resume_repairs_an_inconsistent_bundle(tmp_path):
    out = tmp_path / "run"
    train(BRAIN, out, tiny_config(iterations=4, val_every=2), progress=False, keep_resume=True)
    good = load_bundle(out).load_weights()
    # what the old non-atomic writer could leave: new weights beside an old config
    torch.save({k: v + 1 for k, v in good.items()}, out / "weights.pt")
    with pytest.raises(MedsegError, match="checksum does not match"):
        load_bundle(out).load_weights()
    with pytest.warns(UserWarning, match="bundle repaired from the checkpoint's best weights"):
        bundle = train(BRAIN, out, tiny_config(iterations=4, val_every=2), resume=True,
                       progress=False)  # nothing left to train: only the repair
    weights = load_bundle(out).load_weights()
    assert all(torch.equal(weights[k], good[k]) for k in good)
    assert bundle.config["training"]["iterations_done"] == 4


def test_resume_with_another_architecture_is_one_line(tmp_path):
    out = tmp_path / "run"
    train(BRAIN, out, tiny_config(iterations=2, val_every=2), progress=False, keep_resume=True)
    with pytest.raises(MedsegError) as info:
        train(BRAIN, out, tiny_config(iterations=4, val_every=2,
                                      arch_params={"channels": [4, 8], "num_res_units": 0}),
              resume=True, progress=False)
    text = str(info.value)
    assert "\n" not in text and str(checkpoint_path(out)) in text
    assert "does not fit this architecture" in text
