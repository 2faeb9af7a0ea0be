"""Models of any format by path or by name: a plugin's model format appears in `medseg models`,
`medseg info` and `medseg segment` with no core change; MEDSEG_MODELS_DIR and TotalSegmentator's
folder are searched; several models merge into one label map."""

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main
from medseg.io import read_label_map, write_image
from medseg.io.nifti import nifti_label_names
from medseg.volume import Volume
from tests import plugin_dummy

AFFINE = np.array([[0.0, 0.0, -2.5, 40.0], [-0.8, 0.0, 0.0, 12.0], [0.0, 0.7, 0.0, -30.0],
                   [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture
def setup(tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    # a single-file plugin that only re-exports the dummy plugin's model-format hook
    (plugins / "threshold_format.py").write_text(
        "from tests.plugin_dummy import medseg_register_model_formats  # noqa: F401\n")
    models = tmp_path / "models"
    models.mkdir()
    for name, threshold, label in (("bright", 5.0, "bright"), ("dim", 1.0, "dim")):
        (models / name).mkdir()
        (models / name / plugin_dummy.THRESHOLD_FILE).write_text(
            json.dumps({"threshold": threshold, "name": label}))
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(models))
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "totalseg_home"))
    data = np.zeros((7, 6, 5), dtype=np.float32)
    data[1:4, 2:5, 1:3] = 10.0
    data[5:, :3, 3:] = 3.0
    image = tmp_path / "scan.nii.gz"
    write_image(Volume.from_spatial(data, AFFINE), image)
    return {"plugins": str(plugins), "models": models, "image": image, "data": data,
            "tmp": tmp_path}


def test_plugin_format_listed_described_and_segmented_by_name(setup, capsys):
    args = ["--plugins-dir", setup["plugins"]]
    assert main([*args, "models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["bright"]["format"] == "dummy_threshold"
    assert rows["bright"]["labels"] == ["bright"] and rows["bright"]["origin"] == "models dir"
    assert main([*args, "info", "dim"]) == 0
    assert "format       dummy_threshold" in capsys.readouterr().out

    out = setup["tmp"] / "out"
    assert main([*args, "segment", str(setup["image"]), "-o", str(out), "-m", "bright",
                 "--quiet"]) == 0
    mask = read_label_map(out / "scan.nii.gz")
    np.testing.assert_allclose(mask.affine, AFFINE, atol=1e-6)
    np.testing.assert_array_equal(mask.data, (setup["data"] > 5).astype(np.uint8))
    assert nifti_label_names(out / "scan.nii.gz") == {0: "background", 1: "bright"}


def test_two_models_merge_into_one_label_map(setup, capsys):
    out = setup["tmp"] / "merged"
    assert main(["--plugins-dir", setup["plugins"], "segment", str(setup["image"]), "-o",
                 str(out), "-m", "bright", "-m", "dim", "--quiet"]) == 0
    data = setup["data"]
    mask = read_label_map(out / "scan.nii.gz")
    np.testing.assert_array_equal(mask.data, np.where(data > 5, 1, np.where(data > 1, 2, 0)))
    assert nifti_label_names(out / "scan.nii.gz") == {0: "background", 1: "bright", 2: "dim"}
    volumes = json.loads((out / "scan_volumes.json").read_text())["volumes"]
    voxel_ml = 0.8 * 0.7 * 2.5 / 1000
    assert [(v["label"], v["name"]) for v in volumes] == [(1, "bright"), (2, "dim")]
    assert volumes[1]["volume_ml"] == pytest.approx(int((data == 3).sum()) * voxel_ml, abs=1e-4)
    csv_rows = (out / "scan_volumes.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:2] for r in csv_rows] == [["1", "bright"], ["2", "dim"]]


def test_totalsegmentator_folder_offered_by_task_name(setup, capsys):
    results = setup["tmp"] / "totalseg_home" / "nnunet" / "results"
    task = results / "Dataset291_TotalSegmentator_part1_organs_1559subj"
    task.mkdir(parents=True)
    (task / plugin_dummy.THRESHOLD_FILE).write_text(json.dumps({"threshold": 2.0}))
    (results / "not_a_dataset").mkdir()
    args = ["--plugins-dir", setup["plugins"]]
    assert main([*args, "models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    name = "totalseg:TotalSegmentator_part1_organs_1559subj"
    assert rows[name]["origin"] == "TotalSegmentator"
    assert not any("not_a_dataset" in n for n in rows)
    out = setup["tmp"] / "ts"
    assert main([*args, "segment", str(setup["image"]), "-o", str(out), "-m", name,
                 "--quiet"]) == 0
    assert read_label_map(out / "scan.nii.gz").data.sum() == int((setup["data"] > 2).sum())


@pytest.mark.parametrize(("extra", "message"), [
    (["-m", "bright", "--folds", "0"], "--folds does not apply to the given model format"),
    (["-m", "bright", "--trust-bundle"], "--trust-bundle does not apply"),
    (["-m", "nowhere"], "model not found (a model folder, or one of: bright, dim"),
    (["-m", "bright", "-m", "bright"], "both segment 'bright'"),
])
def test_model_errors_are_one_line_and_write_nothing(setup, capsys, extra, message):
    out = setup["tmp"] / "bad"
    code = main(["--plugins-dir", setup["plugins"], "segment", str(setup["image"]), "-o",
                 str(out), *extra, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and err.startswith("medseg: error:")
    assert not out.exists()


def test_a_file_is_not_a_model(setup, capsys):
    code = main(["segment", str(setup["image"]), "-o", str(setup["tmp"] / "x"), "-m",
                 str(setup["image"])])
    assert code == 2
    assert "a model is a folder, not a file" in capsys.readouterr().err


def test_bundled_models_listed_with_their_format(monkeypatch, capsys):
    monkeypatch.delenv("MEDSEG_MODELS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(Path("/nonexistent-home")))
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["abdomen_ct"]["format"] == "medseg" and rows["abdomen_ct"]["origin"] == "bundled"
    assert "liver" in rows["abdomen_ct"]["labels"]


def test_a_models_own_postprocessors_touch_only_its_own_classes(setup):
    """A model that declares keep_largest_foreground (as the brain bundle does) drops its own
    islands, not the disjoint classes of a model merged after it."""
    from medseg.engine.segmenter import Segmenter
    from medseg.plugins import get_plugin_manager
    from medseg.registry import build_registry

    data = setup["data"].copy()
    data[6, 5, 0] = 10.0  # a one-voxel island of "bright", apart from its box
    infos = [plugin_dummy.describe_threshold_model(setup["models"] / n) for n in ("bright", "dim")]
    bright, dim = (plugin_dummy.ThresholdModel(i) for i in infos)
    bright.postprocessors = ["keep_largest_foreground"]
    registry = build_registry(get_plugin_manager())
    labels = Segmenter([bright, dim], registry=registry)(
        Volume.from_spatial(data, AFFINE)).labels.data
    expected = np.where(data > 5, 1, np.where(data > 1, 2, 0))
    expected[6, 5, 0] = 2  # bright's island is gone; "dim" (above 1) claims the voxel
    np.testing.assert_array_equal(labels, expected)
    assert (labels == 2).sum() == int((data == 3).sum()) + 1  # dim's own box untouched
