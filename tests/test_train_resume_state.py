"""Issue 25: no ``checkpoint.pt`` is left in a finished bundle, and ``--resume`` still continues
an interrupted run.

Before, the 19 MB training state stayed in the bundle folder (and was copied into every new
build of it). Now it lives beside the bundle in ``.<name>.resume/`` while the run trains and is
removed when it finishes, unless ``--keep-resume``.
"""

from __future__ import annotations

import json

import pytest
import torch

from medseg.cli import main
from medseg.errors import MedsegError
from medseg.training.train import CHECKPOINT_NAME, checkpoint_path, resume_dir, train
from tests.pause_kill import kill_at
from tests.test_training import BRAIN, tiny_config

TINY_ARGS = ["--patch-size", "32", "32", "32", "--arch-params",
             '{"channels": [8, 16, 32], "num_res_units": 1}', "--batch-size", "2",
             "--samples-per-volume", "1", "--no-augment", "--quiet", "--val-every", "2",
             "--device", "cpu"]


def test_finished_bundle_holds_no_checkpoint(tmp_path):
    out = tmp_path / "bundle"
    bundle = train(BRAIN, out, tiny_config(iterations=4, val_every=2), progress=False)
    assert bundle.config["training"]["iterations_done"] == 4
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "weights.pt"]
    assert not resume_dir(out).exists()  # the training state is gone too
    # a finished run cannot be resumed: said in one line, with the way to keep it
    with pytest.raises(MedsegError, match="--keep-resume") as info:
        train(BRAIN, out, tiny_config(iterations=6, val_every=2), resume=True, progress=False)
    assert "\n" not in str(info.value)


def test_keep_resume_keeps_the_state_outside_the_bundle(tmp_path):
    out = tmp_path / "bundle"
    train(BRAIN, out, tiny_config(iterations=2, val_every=2), progress=False, keep_resume=True)
    assert not (out / CHECKPOINT_NAME).exists()
    assert checkpoint_path(out).is_file()
    assert checkpoint_path(out).parent == tmp_path / ".bundle.resume"
    bundle = train(BRAIN, out, tiny_config(iterations=4, val_every=2), resume=True,
                   progress=False)  # extended, and now finished: state removed
    assert bundle.config["training"]["iterations_done"] == 4
    assert not resume_dir(out).exists() and not (out / CHECKPOINT_NAME).exists()


def test_interrupted_run_resumes_from_the_state_beside_the_bundle(tmp_path):
    out = tmp_path / "bundle"
    args = ["train", BRAIN, "-o", str(out), "--iterations", "6", *TINY_ARGS]
    # killed right after its first checkpoint (iteration 2 of 6)
    kill_at("training-checkpoint-written", ["-m", "medseg.cli", *args], tmp_path, timeout=300)
    assert (out / "weights.pt").is_file() and not (out / CHECKPOINT_NAME).exists()
    state = json.loads(torch.load(checkpoint_path(out), weights_only=True)["state_json"])
    assert state["iteration"] == 2
    assert main([*args, "--resume"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["iterations_done"] == 6
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "weights.pt"]
    assert not resume_dir(out).exists()


def test_a_checkpoint_left_in_an_old_bundle_is_resumed_and_removed(tmp_path):
    out = tmp_path / "bundle"
    train(BRAIN, out, tiny_config(iterations=2, val_every=2), progress=False, keep_resume=True)
    checkpoint_path(out).rename(out / CHECKPOINT_NAME)  # where medseg kept it before
    resume_dir(out).rmdir()
    bundle = train(BRAIN, out, tiny_config(iterations=4, val_every=2), resume=True,
                   progress=False)
    assert bundle.config["training"]["iterations_done"] == 4
    assert not (out / CHECKPOINT_NAME).exists()

