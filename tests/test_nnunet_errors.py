"""Broken nnU-Net v2 models: one-line errors naming the file, nothing run, nothing written.

Each broken model is a copy of the committed fixture A (made with the real nnunetv2) with one
thing wrong, built in ``tmp_path``; each goes through ``medseg segment ... -m FOLDER``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg.cli import main
from medseg.errors import InputError
from medseg.models import load_model
from medseg.models.nnunet.checkpoint import allowed_globals, read_checkpoint
from tests.nnunet_fixture import INPUTS, MODEL_A, copy_model

pytest.importorskip("dynamic_network_architectures")
CASE = INPUTS / "A" / "ct_ras_0000.nii.gz"


def _segment(capsys, model: Path, out: Path, case: Path = CASE) -> tuple[int, str]:
    """Exit code and stderr of ``medseg segment CASE -o OUT -m MODEL``."""
    code = main(["segment", str(case), "-o", str(out), "-m", str(model), "--quiet"])
    return code, capsys.readouterr().err.strip()


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


class Payload:
    """Unpickling this calls ``exec``, which would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _set_arch(d: dict) -> None:
    for config in d["configurations"].values():
        if "architecture" in config:
            config["architecture"]["network_class_name"] = "evil.module.Net"


def _regions(d: dict) -> None:
    d["labels"] = {"background": 0, "organs": [1, 2, 3], "liver": 1}
    d["regions_class_order"] = [1, 2]


def _two_channels(d: dict) -> None:
    d["channel_names"] = {"0": "CT", "1": "CT"}


BROKEN = {
    "missing plans.json": (lambda m: (m / "plans.json").unlink(), "plans.json",
                           "file not found"),
    "invalid plans.json": (lambda m: (m / "plans.json").write_text('{"configurations": {'),
                           "plans.json", "is not valid JSON"),
    "unknown architecture": (lambda m: _edit_json(m / "plans.json", _set_arch), "plans.json",
                             "'evil.module.Net' is not one medseg builds"),
    "region-based model": (lambda m: _edit_json(m / "dataset.json", _regions), "dataset.json",
                           "region-based model"),
    "plans and dataset disagree on channels": (
        lambda m: _edit_json(m / "dataset.json", _two_channels), "plans.json",
        "1 normalization schemes for 2 input channel(s)"),
    "truncated checkpoint": (
        lambda m: (m / "fold_0" / "checkpoint_final.pth").write_bytes(
            (m / "fold_0" / "checkpoint_final.pth").read_bytes()[:20000]),
        "checkpoint_final.pth", "truncated or corrupt"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_model_is_one_line_exit_2_no_output(tmp_path, capsys, case):
    breaker, where, message = BROKEN[case]
    model = copy_model(MODEL_A, tmp_path / "models")
    breaker(model)
    out = tmp_path / "out"
    code, err = _segment(capsys, model, out)
    assert code == 2, err
    assert err.startswith("medseg: error: ") and len(err.splitlines()) == 1, err
    assert where in err and message in err, err
    assert not out.exists() or not any(out.iterdir())


def test_checkpoint_pickling_a_function_never_runs_it(tmp_path, capsys):
    model = copy_model(MODEL_A, tmp_path / "models")
    ck = model / "fold_0" / "checkpoint_final.pth"
    marker = tmp_path / "payload_ran"
    with torch.serialization.safe_globals(allowed_globals()):
        data = torch.load(ck, map_location="cpu", weights_only=True)
    data["logging"] = {"note": Payload(marker)}
    torch.save(data, ck)
    # the payload is live: plain unpickling of a copy does run it
    control = tmp_path / "control.pth"
    control_marker = tmp_path / "control_ran"
    torch.save({"x": Payload(control_marker)}, control)
    torch.load(control, weights_only=False)
    assert control_marker.read_text() == "ran"
    # medseg refuses it and nothing runs
    with pytest.raises(InputError, match=r"checkpoint refused: it pickles exec,"):
        read_checkpoint(ck)
    out = tmp_path / "out"
    code, err = _segment(capsys, model, out)
    assert code == 2 and "checkpoint_final.pth" in err and "pickles exec" in err, err
    assert len(err.splitlines()) == 1
    assert not marker.exists()
    assert not out.exists() or not any(out.iterdir())


def test_checkpoint_holding_an_array_is_refused(tmp_path):
    """Only numpy scalars and dtypes are allowed, not arrays (their reconstructor)."""
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"w": torch.zeros(1)}, "logging": np.arange(3)}, path)
    with pytest.raises(InputError, match=r"refused: it pickles numpy\._core\.multiarray\._reco"):
        read_checkpoint(path)


def test_image_with_another_channel_count(tmp_path, capsys):
    image = nib.load(str(CASE))
    data = np.asarray(image.dataobj)
    two = tmp_path / "two_channels.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([data, data], axis=-1), image.affine), str(two))
    out = tmp_path / "out"
    code, err = _segment(capsys, MODEL_A, out, two)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith(f"medseg: error: {two}: "), err
    assert "expects 1 channel(s), the image has 2" in err
    assert not list(out.glob("*.nii.gz"))


@pytest.mark.parametrize(("options", "message"), [
    ({"folds": ["7"]}, "fold 7 has no checkpoint_final.pth"),
    ({"configuration": "2d"}, "holds configuration '3d_fullres', not '2d'"),
    ({"checkpoint": "latest"}, "checkpoint must be one of final, best"),
    ({"trust": True}, "do not take --trust"),
])
def test_bad_options(options, message):
    with pytest.raises(InputError, match=message):
        load_model(MODEL_A, **options)


def test_checkpoints_written_under_numpy_1_and_2_load(tmp_path):
    """nnU-Net checkpoints pickle numpy scalars (``_best_ema``, logging); numpy 1 names the
    reconstructor ``numpy.core.multiarray.scalar``, numpy 2 ``numpy._core...``: both load."""
    content = {"network_weights": {"w": torch.ones(2)}, "_best_ema": np.float64(0.25),
               "logging": {"ema_fg_dice": [np.float64(0.5), np.float32(0.75)]},
               "init_args": {"configuration": "3d_fullres"}, "trainer_name": "nnUNetTrainer",
               "inference_allowed_mirroring_axes": (0, 1, 2)}
    new = tmp_path / "numpy2.pth"
    torch.save(content, new)
    legacy = tmp_path / "legacy.pth"
    torch.save(content, legacy, _use_new_zipfile_serialization=False)
    raw = legacy.read_bytes()
    assert b"numpy._core.multiarray\nscalar" in raw
    old = tmp_path / "numpy1.pth"
    old.write_bytes(raw.replace(b"numpy._core.multiarray\nscalar",
                                b"numpy.core.multiarray\nscalar"))
    for path in (new, old):
        ck = read_checkpoint(path)
        assert torch.equal(ck.weights["w"], torch.ones(2))
        assert ck.configuration == "3d_fullres" and ck.mirroring_axes == (0, 1, 2)
