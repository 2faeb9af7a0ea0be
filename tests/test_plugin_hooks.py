"""Every hook is documented in docs/plugins.md and exercised here through a dummy plugin
(tests/plugin_dummy.py implements all of them), in the manner of datasette's
``test_plugin_hooks_have_tests``; plus call-time failures of plugin components, which are
reported in one line naming the plugin."""

import ast
import json
import re
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg import hookspecs
from medseg.cli import main
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import MedsegError, PluginError
from medseg.evaluation.pairs import evaluate_pair
from medseg.io import read_image
from medseg.models.medseg_bundle.bundle import load_bundle
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.plugins import get_plugin_manager
from medseg.registry import build_registry
from medseg.training.train import TrainConfig, train
from medseg.volume import LabelMap, Volume
from tests import plugin_dummy

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("medseg_")
               and callable(getattr(hookspecs, n)))
PLUGIN = "tests.plugin_dummy"


def _test_function_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_hookspecs_are_found():
    assert "medseg_register_architectures" in HOOKS and len(HOOKS) >= 5


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook):
    text = DOCS.read_text()
    assert re.search(rf"^#+ `?{hook}`?", text, re.MULTILINE), f"{hook}: no section in {DOCS}"
    assert f"def {hook}(" in text, f"{hook}: no example implementation in {DOCS}"


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_tests(hook):
    """A test named after the hook exists and the dummy plugin implements it."""
    tests = _test_function_names()
    assert any(hook in name for name in tests), f"no test function mentions {hook}"
    assert callable(getattr(plugin_dummy, hook, None)), f"tests/plugin_dummy.py lacks {hook}"


@pytest.fixture
def dummy_registry():
    return build_registry(get_plugin_manager(plugins=[plugin_dummy]))


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """Three 24^3 volumes with one bright ball each (class 1) as an nnU-Net-style dataset."""
    root = tmp_path_factory.mktemp("blobs") / "Dataset099_Blobs"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    grid = np.indices((24, 24, 24)).astype(np.float32)
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    for i in range(3):
        centre = rng.uniform(8, 16, size=3)
        ball = ((grid - centre[:, None, None, None]) ** 2).sum(0) < 25
        image = ball * 100.0 + rng.normal(0, 10, ball.shape)
        nib.save(nib.Nifti1Image(image.astype(np.float32), affine),
                 str(root / "imagesTr" / f"b{i}_0000.nii.gz"))
        nib.save(nib.Nifti1Image(ball.astype(np.uint8), affine),
                 str(root / "labelsTr" / f"b{i}.nii.gz"))
    shutil.copy(root / "imagesTr" / "b0_0000.nii.gz", root / "imagesTs" / "t0_0000.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MR"}, "numTraining": 3, "file_ending": ".nii.gz",
        "labels": {"background": 0, "ball": 1}}))
    return root


def _config(**arch_params) -> TrainConfig:
    return TrainConfig(architecture="dummy_net", arch_params=arch_params, loss="dummy_mse",
                       iterations=2, val_every=2, patch_size=(16, 16, 16), batch_size=1,
                       samples_per_volume=1, augment=False)


@pytest.fixture(scope="module")
def dummy_bundle(blobs, tmp_path_factory):
    reg = build_registry(get_plugin_manager(plugins=[plugin_dummy]))
    return train(blobs, tmp_path_factory.mktemp("dummy") / "bundle", _config(), registry=reg,
                 progress=False)


def _broken_copy(bundle, tmp_path, fail):
    """A copy of ``bundle`` whose architecture is told to fail (same weights)."""
    out = tmp_path / f"broken_{fail}"
    shutil.copytree(bundle.path, out)
    config = json.loads((out / "config.json").read_text())
    config["architecture"]["params"]["fail"] = fail
    (out / "config.json").write_text(json.dumps(config))
    return out


# ---- one test per hook -------------------------------------------------------------------
def test_medseg_register_architectures(dummy_registry, dummy_bundle, blobs):
    assert dummy_registry.architectures.providers["dummy_net"] == PLUGIN
    net = dummy_registry.architectures.get("dummy_net").factory(
        spatial_dims=2, in_channels=2, out_channels=3)
    assert net(torch.zeros(1, 2, 8, 8)).shape == (1, 3, 8, 8)
    # trained like a built-in, and it segments on the input's grid
    assert dummy_bundle.config["architecture"] == {"name": "dummy_net", "params": {}}
    image = read_image(blobs / "imagesTs" / "t0_0000.nii.gz")
    labels = Segmenter(MedsegBundleModel(dummy_bundle, dummy_registry), InferenceSettings(),
                     dummy_registry)(image).labels
    assert labels.same_grid(image)


def test_medseg_register_losses(dummy_registry, dummy_bundle):
    assert dummy_registry.losses.providers["dummy_mse"] == PLUGIN
    loss = dummy_registry.losses.get("dummy_mse").factory(num_classes=3)
    value = loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long))
    assert value.ndim == 0 and float(value) == pytest.approx((2 * (1 / 3) ** 2 + (2 / 3) ** 2)
                                                             / 3)
    assert dummy_bundle.config["training"]["config"]["loss"] == "dummy_mse"


def test_medseg_register_postprocessors(dummy_registry, dummy_bundle, blobs):
    assert dummy_registry.postprocessors.providers["dummy_invert"] == PLUGIN
    image = read_image(blobs / "imagesTs" / "t0_0000.nii.gz")
    plain = Segmenter(MedsegBundleModel(dummy_bundle, dummy_registry), InferenceSettings(),
                     dummy_registry)(image).labels.data
    settings = InferenceSettings(postprocessors=[("dummy_invert", {"value": 1})])
    inverted = Segmenter(MedsegBundleModel(dummy_bundle, dummy_registry), settings,
                         dummy_registry)(image).labels.data
    np.testing.assert_array_equal(inverted, 1 - plain)


def test_medseg_register_readers(dummy_registry, tmp_path):
    assert dummy_registry.readers.providers["dummy"] == PLUGIN
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    path = tmp_path / "scan.bin"  # recognised by content, not by name
    plugin_dummy.write(path, data)
    volume = read_image(path, registry=dummy_registry)
    np.testing.assert_array_equal(volume.data, data)
    assert volume.spacing == (1.0, 1.0, 1.0)


def test_medseg_register_metrics(dummy_registry):
    assert dummy_registry.metrics.providers["dummy_volume_difference"] == PLUGIN
    ref = np.zeros((6, 6, 6), dtype=np.uint8)
    ref[1:3, 1:3, 1:3] = 1
    pred = ref.copy()
    pred[4, 4, 4] = 1
    affine = np.diag([2.0, 1.0, 0.5, 1.0])
    spec = dummy_registry.metrics.get("dummy_volume_difference")
    rows = evaluate_pair(LabelMap(pred[None], affine), LabelMap(ref[None], affine), [1],
                         extra_metrics=[spec])
    assert rows[0]["dummy_volume_difference"] == pytest.approx(1.0)


# ---- call-time failures name the plugin -------------------------------------------------
@pytest.mark.parametrize(("fail", "message"), [
    ("build", r"architecture 'dummy_net' of plugin 'tests.plugin_dummy' failed to build: "
              r"ValueError: dummy refuses to build"),
    ("forward", r"'dummy_net' of plugin 'tests.plugin_dummy' failed on input of shape "
                r"\(1, 1, 16, 16, 16\): RuntimeError: dummy forward exploded"),
    ("shape", r"'dummy_net' of plugin 'tests.plugin_dummy' returned logits of shape "
              r"\(1, 2, 8, 16, 16\) for input \(1, 1, 16, 16, 16\), expected "
              r"\(1, 2, 16, 16, 16\)"),
], ids=["build", "forward", "shape"])
def test_training_reports_a_failing_architecture_by_plugin(fail, message, blobs, tmp_path,
                                                          dummy_registry):
    with pytest.raises(PluginError, match=message) as info:
        train(blobs, tmp_path / "out", _config(fail=fail), registry=dummy_registry,
              progress=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("loss_params", "message"), [
    ({"fail": "call"}, "failed: RuntimeError: dummy loss exploded"),
    ({"no_such_param": 1}, "failed: TypeError: .*no_such_param"),
], ids=["raises", "bad-params"])
def test_training_reports_a_failing_loss_by_plugin(loss_params, message, blobs, tmp_path,
                                                   dummy_registry):
    config = _config()
    config.loss_params = loss_params
    with pytest.raises(PluginError, match=f"loss 'dummy_mse' of plugin 'tests.plugin_dummy' "
                                          f"{message}"):
        train(blobs, tmp_path / "out", config, registry=dummy_registry, progress=False)


@pytest.mark.parametrize(("fail", "message"), [
    ("build", "failed to build or load its weights: ValueError: dummy refuses to build"),
    ("forward", "failed on input of shape .*: RuntimeError: dummy forward exploded"),
    ("shape", r"returned logits of shape \(2, 2, 8, 16, 16\)"),
], ids=["build", "forward", "shape"])
def test_segmenter_reports_a_failing_architecture_by_plugin(fail, message, dummy_bundle, blobs,
                                                           tmp_path, dummy_registry):
    image = read_image(blobs / "imagesTs" / "t0_0000.nii.gz")
    bundle = load_bundle(_broken_copy(dummy_bundle, tmp_path, fail), dummy_registry)
    with pytest.raises(PluginError, match=f"architecture 'dummy_net' of plugin "
                                          f"'tests.plugin_dummy' {message}"):
        Segmenter(MedsegBundleModel(bundle, dummy_registry), InferenceSettings(),
                  dummy_registry)(image)


@pytest.mark.parametrize(("name", "message"), [
    ("dummy_raise", "failed: RuntimeError: dummy postprocessor exploded"),
    ("dummy_bad_shape", r"returned shape \(1, 24, 24\), expected \(24, 24, 24\)"),
], ids=["raises", "bad-shape"])
def test_failing_postprocessor_is_reported_by_plugin(name, message, dummy_bundle, blobs,
                                                     dummy_registry):
    image = read_image(blobs / "imagesTs" / "t0_0000.nii.gz")
    seg = Segmenter(MedsegBundleModel(dummy_bundle, dummy_registry),
                    InferenceSettings(postprocessors=[(name, {})]), dummy_registry)
    with pytest.raises(PluginError, match=f"postprocessor '{name}' of plugin "
                                          f"'tests.plugin_dummy' {message}"):
        seg(image)


def test_cli_reports_failing_plugin_architecture_in_one_line(dummy_bundle, blobs, tmp_path,
                                                            capsys):
    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(Path(plugin_dummy.__file__), folder / "plugin_dummy.py")
    image = str(blobs / "imagesTs" / "t0_0000.nii.gz")
    base = ["--plugins-dir", str(folder), "segment", image, "--quiet"]
    assert main([*base, "-o", str(tmp_path / "a"), "-m",
                 str(_broken_copy(dummy_bundle, tmp_path, "build"))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "architecture 'dummy_net' of plugin 'file:plugin_dummy' failed to build" in err
    # a failure at call time fails that case only, with the plugin named; the only case
    # failed, so nothing could be segmented: status 2
    assert main([*base, "-o", str(tmp_path / "b"), "-m",
                 str(_broken_copy(dummy_bundle, tmp_path, "shape"))]) == 2
    captured = capsys.readouterr()
    assert "medseg: error: architecture 'dummy_net' of plugin 'file:plugin_dummy' returned" \
        in captured.err
    assert "0 of 1 cases done, 1 failed" in captured.out


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)


def test_documented_hook_examples_are_working_plugins(tmp_path):
    """Every complete example in docs/plugins.md registers cleanly and its components work."""
    import types

    modules = []
    for i, code in enumerate(_python_blocks()):
        if "@hookimpl" not in code:
            continue
        module = types.ModuleType(f"docs_example_{i}")
        exec(compile(code, f"docs/plugins.md example {i}", "exec"), module.__dict__)
        modules.append(module)
    reg = build_registry(get_plugin_manager(plugins=modules, strict=True), strict=True)
    assert {"acme_tiny", "acme_dice", "acme_min_size", "acme", "acme_volume_difference"} <= {
        *reg.architectures, *reg.losses, *reg.postprocessors, *reg.readers, *reg.metrics}
    net = reg.architectures.get("acme_tiny").factory(spatial_dims=2, in_channels=1,
                                                     out_channels=3)
    logits = net(torch.zeros(1, 1, 8, 8))
    assert logits.shape == (1, 3, 8, 8)
    loss = reg.losses.get("acme_dice").factory(num_classes=3)
    assert loss(logits, torch.zeros(1, 1, 8, 8, dtype=torch.long)).ndim == 0
    labels = np.zeros((5, 5), dtype=np.uint8)
    labels[0, 0] = 1
    out = reg.postprocessors.get("acme_min_size").fn(labels, spacing=(1.0, 1.0), min_voxels=2)
    assert not out.any()
    path = tmp_path / "scan.acme"
    path.write_bytes(b"ACMEVOL1" + np.array([2, 3, 4], "<u2").tobytes()
                     + np.ones(24, "<f4").tobytes())
    assert read_image(path, registry=reg).spatial_shape == (2, 3, 4)
    metric = reg.metrics.get("acme_volume_difference").fn
    assert metric(labels > 0, labels < 0, (10.0, 10.0, 10.0)) == pytest.approx(1.0)


def test_app_stays_up_when_a_plugin_architecture_fails(tmp_path, monkeypatch):
    """The Segment page shows the one-line plugin error and keeps working."""
    pytest.importorskip("streamlit")
    import streamlit as st

    from medseg.models.medseg_bundle.bundle import save_bundle
    from tests.test_app import _app

    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(Path(plugin_dummy.__file__), folder / "plugin_dummy.py")
    net = plugin_dummy.dummy_net(spatial_dims=3, in_channels=1, out_channels=4)
    save_bundle(tmp_path / "models" / "broken", {
        "name": "Broken", "architecture": {"name": "dummy_net", "params": {"fail": "shape"}},
        "spatial_dims": 3, "in_channels": 1, "patch_size": [16, 16, 16],
        "labels": {"background": 0, "white_matter": 1, "grey_matter": 2, "csf": 3},
        "preprocessing": {"target_spacing": [4.0, 4.0, 4.0], "intensity": {"scheme": "zscore"},
                          "orientation": "RAS"},
        "inference": {"overlap": 0.0, "postprocessors": []},
    }, net.state_dict())
    monkeypatch.setenv("MEDSEG_PLUGINS_DIR", str(folder))
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path / "models"))
    st.cache_resource.clear()  # the app caches its registry and segmenters
    try:
        at = _app("1_Segment.py")
        at.radio(key="source").set_value("Bundled sample").run()
        at.selectbox(key="sample_pick").set_value("BrainTissue / brain_100")
        at.button(key="load_sample").click().run()
        at.button(key="run").click().run()
        assert not at.exception, [e.message for e in at.exception]
        errors = [e.value for e in at.error]
        assert len(errors) == 1
        sys.path.insert(0, str(ROOT / "app"))
        from medseg_ui.text import plain

        assert plain("architecture 'dummy_net' of plugin 'file:plugin_dummy' returned logits") \
            in errors[0]  # shown as text: every punctuation mark escaped
        at.radio(key="viewer_mode").set_value("Slices (static images)").run()  # not NiiVue's
        at.slider(key="slice_Axial").set_value(3).run()  # the viewer still works
        assert not at.exception
        assert len(at.get("image")) == 3
    finally:
        st.cache_resource.clear()


def _threshold_folder(root: Path, name: str, threshold: float, label: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / plugin_dummy.THRESHOLD_FILE).write_text(
        json.dumps({"threshold": threshold, "name": label}))
    return folder


def test_medseg_register_model_formats(dummy_registry, tmp_path):
    from medseg.models import describe_model, load_model

    assert dummy_registry.model_formats.providers["dummy_threshold"] == PLUGIN
    assert "medseg" in dummy_registry.model_formats  # the built-in format, same path
    bright = _threshold_folder(tmp_path, "bright", 5.0, "bright")
    info = describe_model(bright, dummy_registry)
    assert (info.format, info.label_names) == ("dummy_threshold", {0: "background", 1: "bright"})
    data = np.zeros((6, 5, 4), dtype=np.float32)
    data[1:3, 1:4, 2:] = 10.0
    data[4:, :2, :1] = 3.0
    affine = np.array([[0, -2.0, 0, 5], [1.5, 0, 0, -3], [0, 0, 3.0, 1], [0, 0, 0, 1]])
    volume = Volume.from_spatial(data, affine)
    seg = Segmenter(load_model(bright, dummy_registry), InferenceSettings(),
                    dummy_registry)(volume)
    np.testing.assert_array_equal(seg.labels.data, (data > 5).astype(np.uint8))
    np.testing.assert_allclose(seg.labels.affine, affine)
    # two models with disjoint labels merge into one map, values in model order
    dim = _threshold_folder(tmp_path, "dim", 1.0, "dim")
    merged = Segmenter([load_model(bright, dummy_registry), load_model(dim, dummy_registry)],
                       InferenceSettings(), dummy_registry)(volume)
    assert merged.label_names == {0: "background", 1: "bright", 2: "dim"}
    expected = np.where(data > 5, 1, np.where(data > 1, 2, 0))
    np.testing.assert_array_equal(merged.labels.data, expected)
    # the same class name from two models is refused; options a format does not take too
    with pytest.raises(MedsegError, match="both segment 'bright'"):
        Segmenter([load_model(bright, dummy_registry)] * 2, InferenceSettings(), dummy_registry)
    with pytest.raises(MedsegError, match="do not take --folds"):
        load_model(bright, dummy_registry, folds=[0])
