"""What ``medseg train`` says (issue 25, point 9): ``--help`` shows the defaults; before the
first iteration a summary of cases, split, spacing, patch and device; the bar's Dice is the
best validation Dice, "pending" (not 0.000) before the first validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medseg.cli import main

BRAIN = Path(__file__).resolve().parents[1] / "sample_data" / "Dataset001_BrainTissue"


def test_train_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("training iterations", "1000"), ("patches per iteration", "2"),
                            ("iterations between validations", "50"),
                            ("random seed (split, sampling, init)", "0"),
                            ("registered loss name", "dice_focal")):
        assert f"{option} (default: {default})" in text, option


@pytest.mark.slow  # a real (tiny) training run: minutes on a busy 2-core machine
def test_train_prints_a_summary_first_and_no_zero_dice(tmp_path, capsys):
    out = tmp_path / "bundle"
    arch = json.dumps({"channels": [4, 8], "strides": [2], "num_res_units": 0})
    assert main(["train", str(BRAIN), "-o", str(out), "--iterations", "4", "--val-every", "2",
                 "--patch-size", "32", "32", "32", "--arch-params", arch, "--batch-size", "1",
                 "--samples-per-volume", "1", "--no-augment", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    summary = re.search(r"training BrainTissue: (\d+) training and (\d+) validation cases, "
                        r"spacing [0-9.]+ x [0-9.]+ x [0-9.]+ mm, patch 32 x 32 x 32, unet, "
                        r"loss dice_focal, device cpu, 4 iterations", err)
    assert summary, err[:500]
    n_train, n_val = int(summary.group(1)), int(summary.group(2))
    assert n_train + n_val == len(list((BRAIN / "imagesTr").glob("*.nii.gz")))
    assert err.index("training BrainTissue") < err.index("train:")  # before the bar
    assert "dice=0.000" not in err and "val_dice=pending" in err
