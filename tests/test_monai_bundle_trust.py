"""MONAI bundles hold code: they run only when trusted, and bad bundles are refused with one
line naming the file, before anything of them runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.cli import main as cli_main
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import InputError
from medseg.io import read_image
from medseg.models import describe_model, load_model
from medseg.models.monai_bundle.trust import TRUST_ENV, first_code
from medseg.registry import load_registry

FIXTURE = Path(__file__).parent / "fixtures" / "monai_bundle"
BUNDLE = FIXTURE / "bundle"
CASE = FIXTURE / "inputs" / "case_ras.nii.gz"


@pytest.fixture(scope="module")
def registry():
    return load_registry(fresh=True)


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A fresh copy of the fixture bundle to spoil."""
    dst = tmp_path / "bundle"
    shutil.copytree(BUNDLE, dst)
    return dst


def _config(bundle: Path) -> dict:
    return json.loads((bundle / "configs" / "inference.json").read_text())


def _write_config(bundle: Path, config: dict) -> None:
    (bundle / "configs" / "inference.json").write_text(json.dumps(config, indent=1))


def _with_marker(bundle: Path, marker: Path) -> None:
    """Put first in the config an expression that creates ``marker``, required by
    ``network_def`` (so it runs whenever the network is built)."""
    config = _config(bundle)
    config["network_def"]["_requires_"] = "@marker"
    expr = f"$__import__('pathlib').Path({str(marker)!r}).touch()"
    _write_config(bundle, {"marker": expr, **config})


def test_untrusted_bundle_refused_naming_the_first_expression(bundle, registry, tmp_path,
                                                              monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / "marker"
    _with_marker(bundle, marker)
    with pytest.raises(InputError) as err:
        load_model(bundle, registry, "cpu")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(str(bundle / "configs" / "inference.json"))
    assert "untrusted bundle runs Python" in msg and "__import__('pathlib')" in msg
    assert "--trust-bundle" in msg and TRUST_ENV in msg
    assert not marker.exists()
    # the same bundle, trusted, does run the expression: the refusal is what kept it from running
    load_model(bundle, registry, "cpu", trust=True)
    assert marker.exists()


def test_describe_never_runs_the_config(bundle, registry, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / "marker"
    _with_marker(bundle, marker)
    info = describe_model(bundle, registry)
    assert info.details["runs_code"].startswith("$__import__('pathlib')")
    assert info.labels["liver"] == 1 and info.patch_size == (48, 48, 48)
    assert not marker.exists()


def test_cli_refuses_untrusted_bundle_with_exit_2_and_no_output(bundle, tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / "marker"
    _with_marker(bundle, marker)
    out = tmp_path / "out"
    code = cli_main(["segment", str(CASE), "-o", str(out), "-m", str(bundle),
                     "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "untrusted bundle runs Python" in err
    assert not marker.exists()
    assert not out.exists() or not any(out.rglob("*.nii*"))


def test_trust_from_env_var_lists_folders(bundle, registry, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv(TRUST_ENV, str(elsewhere))
    with pytest.raises(InputError, match="untrusted bundle"):
        load_model(bundle, registry, "cpu")
    # a listed parent folder trusts the bundles under it; entries are os.pathsep-separated
    monkeypatch.setenv(TRUST_ENV, os.pathsep.join([str(elsewhere), str(bundle.parent)]))
    model = load_model(bundle, registry, "cpu")
    assert model.info.details["trust"] == "trusted"
    monkeypatch.setenv(TRUST_ENV, str(bundle))
    assert load_model(bundle, registry, "cpu").info.format == "monai_bundle"


def _code_free(bundle: Path) -> None:
    """The fixture's config reduced to what medseg runs, with no expression left."""
    config = _config(bundle)
    post = [t for t in config["postprocessing"]["transforms"]
            if t["_target_"] != "SaveImaged"]
    _write_config(bundle, {
        "network_def": config["network_def"],
        "preprocessing": config["preprocessing"],
        "inferer": config["inferer"],
        "postprocessing": {"_target_": "Compose", "transforms": post},
    })


def test_code_free_bundle_runs_untrusted_with_the_same_masks(bundle, registry, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    _code_free(bundle)
    untrusted = load_model(bundle, registry, "cpu")
    assert untrusted.info.details["runs_code"] is None
    trusted = load_model(BUNDLE, registry, "cpu", trust=True)
    volume = read_image(CASE)
    settings = InferenceSettings(device="cpu")
    a = Segmenter(untrusted, settings, registry)(volume).labels.data
    b = Segmenter(trusted, settings, registry)(volume).labels.data
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("item", "shown"), [
    ({"_target_": "os.system", "command": "true"}, "_target_: os.system"),
    ({"_target_": "monai.utils.run_cmd", "cmd_list": ["true"]}, "_target_: monai.utils.run_cmd"),
    ({"_target_": "run_cmd", "cmd_list": ["true"]}, "_target_: run_cmd"),  # found in monai.utils
    ({"_target_": "UNet", "_mode_": "callable"}, "_mode_: callable"),
    ({"_target_": "LoadImaged", "keys": "image", "reader": "subprocess.getoutput"},
     "subprocess.getoutput"),
    ({"_target_": "LoadImaged", "keys": "image", "reader": "open"}, "open"),
    ({"net": "%/somewhere/else.json#net"}, "%/somewhere/else.json#net"),
    ({"x": "$1 + 1"}, "$1 + 1"),
    ({"dtype": "torch.load"}, "torch.load"),
    ({"dtype": "numpy.load"}, "numpy.load"),
    ({"_target_": "DenseNet121", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
      "pretrained": True}, "pretrained: True (downloads weights)"),
])
def test_what_counts_as_code(item, shown):
    code = first_code({"bundle_root": ".", "preprocessing": {"transforms": [item]}})
    assert code is not None and code.text == shown


def test_code_free_items_are_not_code():
    config = {"bundle_root": ".", "net": {"_target_": "UNet", "spatial_dims": 3},
              "t": {"_target_": "monai.transforms.Spacingd", "keys": "image",
                    "pixdim": [1, 1, 1], "mode": "bilinear"},
              "x": {"_target_": "torch.nn.Identity"}, "ref": "@net", "local": "%#net",
              "file": "model.pt", "reader": "NibabelReader", "dtype": "torch.float32",
              "output_dtype": "numpy.uint8"}
    assert first_code(config) is None


def test_pickled_object_is_refused_and_never_runs(bundle, registry, tmp_path):
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    torch.save({"weight": Payload()}, bundle / "models" / "model.pt")
    with pytest.raises(InputError, match=r"model\.pt: not a plain state dict"):
        load_model(bundle, registry, "cpu", trust=True)
    assert not marker.exists()


def test_whole_module_checkpoint_is_refused(bundle, registry):
    torch.save(torch.nn.Conv3d(1, 8, 1), bundle / "models" / "model.pt")
    with pytest.raises(InputError, match=r"model\.pt: not a plain state dict"):
        load_model(bundle, registry, "cpu", trust=True)


def test_state_dict_with_other_objects_is_refused(bundle, registry):
    state = torch.load(BUNDLE / "models" / "model.pt", weights_only=True)
    torch.save({**state, "epoch": 3}, bundle / "models" / "model.pt")
    with pytest.raises(InputError, match=r"model\.pt: not a plain state dict"):
        load_model(bundle, registry, "cpu", trust=True)


def test_corrupt_model_pt(bundle, registry):
    weights = bundle / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(InputError, match=r"model\.pt: corrupt weights file"):
        load_model(bundle, registry, "cpu", trust=True)


def test_weights_that_do_not_fit_network_def(bundle, registry):
    config = _config(bundle)
    config["network_def"]["channels"] = [4, 8, 16, 32]
    _write_config(bundle, config)
    with pytest.raises(InputError, match=r"model\.pt: weights do not fit network_def"):
        load_model(bundle, registry, "cpu", trust=True)


@pytest.mark.parametrize(("missing", "named"), [
    ("configs/metadata.json", "configs/metadata.json: MONAI bundle metadata is missing"),
    ("configs/inference.json", "configs/inference.json: MONAI bundle inference config"),
    ("models/model.pt", "models/model.pt: MONAI bundle weights are missing"),
])
def test_missing_files_are_named(bundle, registry, tmp_path, capsys, missing, named):
    (bundle / missing).unlink()
    with pytest.raises(InputError, match=named):
        load_model(bundle, registry, "cpu", trust=True)
    out = tmp_path / "out"
    code = cli_main(["segment", str(CASE), "-o", str(out), "-m", str(bundle),
                     "--trust-bundle", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and named in err
    assert not out.exists() or not any(out.rglob("*.nii*"))


def test_corrupt_config_is_one_line(bundle, registry):
    (bundle / "configs" / "inference.json").write_text('{"network_def": ')
    with pytest.raises(InputError, match=r"inference\.json: corrupt config"):
        load_model(bundle, registry, "cpu", trust=True)


def _torchscript(bundle: Path) -> None:
    """The fixture's network exported as ``models/model.ts`` (TorchScript), no ``model.pt``."""
    from monai.networks.nets import UNet

    args = {k: v for k, v in _config(bundle)["network_def"].items() if not k.startswith("_")}
    net = UNet(**args)
    net.load_state_dict(torch.load(BUNDLE / "models" / "model.pt", weights_only=True))
    torch.jit.save(torch.jit.script(net.eval()), bundle / "models" / "model.ts")
    (bundle / "models" / "model.pt").unlink()


def test_torchscript_model_needs_trust_and_gives_the_same_masks(bundle, registry, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    _code_free(bundle)
    _torchscript(bundle)
    with pytest.raises(InputError, match=r"model\.ts: untrusted bundle runs a TorchScript"):
        load_model(bundle, registry, "cpu")
    scripted = load_model(bundle, registry, "cpu", trust=True)
    assert scripted.info.details["weights"] == "models/model.ts"
    volume = read_image(CASE)
    settings = InferenceSettings(device="cpu")
    a = Segmenter(scripted, settings, registry)(volume).labels.data
    b = Segmenter(load_model(BUNDLE, registry, "cpu", trust=True), settings,
                  registry)(volume).labels.data
    assert (a == b).mean() > 0.999


def test_yaml_inference_config(bundle, registry):
    yaml = pytest.importorskip("yaml")

    config = _config(bundle)
    (bundle / "configs" / "inference.json").unlink()
    (bundle / "configs" / "inference.yaml").write_text(yaml.safe_dump(config))
    model = load_model(bundle, registry, "cpu", trust=True)
    assert model.info.details["config"] == "configs/inference.yaml"
    assert model.info.patch_size == (48, 48, 48)
    labels = Segmenter(model, InferenceSettings(device="cpu"), registry)(read_image(CASE))
    assert len(np.unique(labels.labels.data)) >= 5


def test_bundle_without_invertd_lands_on_the_input_grid(bundle, registry):
    """No Invertd: the bundle's output (on its 6 mm RAS grid) is resampled onto the input's
    grid from its own affine; it then agrees with monai.bundle run's inverted masks up to the
    interpolation difference (nearest on labels instead of bilinear on probabilities)."""
    import nibabel as nib

    config = _config(bundle)
    config["postprocessing"]["transforms"] = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
    ]
    _write_config(bundle, config)
    model = load_model(bundle, registry, "cpu", trust=True)
    case = FIXTURE / "inputs" / "case_oblique.nii.gz"
    volume = read_image(case)
    out = Segmenter(model, InferenceSettings(device="cpu"), registry)(volume).labels
    ref = np.asarray(nib.load(FIXTURE / "expected" / "case_oblique_seg.nii.gz").dataobj)
    assert out.data.shape == ref.shape
    np.testing.assert_allclose(out.affine, volume.affine)
    assert (out.data == ref).mean() >= 0.98


def test_multilabel_sigmoid_bundle_is_refused(bundle, registry):
    config = _config(bundle)
    config["postprocessing"]["transforms"][0] = {"_target_": "Activationsd", "keys": "pred",
                                                 "sigmoid": True}
    _write_config(bundle, config)
    with pytest.raises(InputError, match=r"inference\.json: multi-label bundle"):
        load_model(bundle, registry, "cpu", trust=True)
