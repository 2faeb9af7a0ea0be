"""Quality flags with the shipped models: ``ok`` on the bundled test cases and DICOM series,
``warn`` on a real CT (the phantom-trained CT model, the brain model), and the flag in every
output of ``medseg segment``; training writes the record into the bundle."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medseg.cli import main
from medseg.engine.segmenter import Segmenter
from medseg.io import read_image
from medseg.models import load_model
from medseg.models.medseg_bundle.bundle import load_bundle
from medseg.training.record import dataset_training_record

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
REAL_CT = ROOT / "real_ct" / "lung2_upper_abdomen.nii.gz"
BUNDLED = [(model, path) for model, ds in (("abdomen_ct", "Dataset002_AbdomenCT"),
                                           ("brain_tissue", "Dataset001_BrainTissue"))
           for path in sorted((ROOT / ds / "imagesTs").glob("*.nii.gz"))]
BUNDLED.append(("abdomen_ct", ROOT / "dicom" / "ct_phantom_001"))


@pytest.fixture(scope="module")
def segmenters(registry_module):
    return {name: Segmenter(load_model(name, registry_module, "cpu"), registry=registry_module)
            for name in ("abdomen_ct", "brain_tissue")}


@pytest.fixture(scope="module")
def registry_module():
    from medseg.plugins import get_plugin_manager
    from medseg.registry import build_registry

    return build_registry(get_plugin_manager())


@pytest.mark.parametrize(("model", "path"), BUNDLED, ids=lambda v: getattr(v, "name", v))
def test_bundled_cases_pass_qc_with_the_shipped_models(segmenters, model, path):
    result = segmenters[model](read_image(path))
    assert result.qc is not None
    assert {"volume", "extent", "border"} <= set(result.qc.checked)
    assert result.qc.status == "ok", result.qc.reasons


def test_phantom_ct_model_on_a_real_ct_warns(segmenters):
    result = segmenters["abdomen_ct"](read_image(REAL_CT))
    assert result.qc.status == "warn"
    liver = next(r for r in result.volumes() if r["name"] == "liver")["volume_ml"]
    assert liver < 50  # the phantom model does not find the real liver ...
    assert any(r.startswith("liver ") and "trained range" in r for r in result.qc.reasons)


def test_brain_model_on_a_ct_warns(segmenters):
    result = segmenters["brain_tissue"](read_image(REAL_CT))
    assert result.qc.status == "warn", [(r["name"], r["volume_ml"]) for r in result.volumes()]


def test_shipped_bundles_carry_a_record_of_their_classes_with_valid_weights():
    for name in ("abdomen_ct", "brain_tissue"):
        bundle = load_bundle(name)
        record = bundle.config["training_record"]
        assert set(record["classes"]) == set(bundle.labels) - {"background"}
        assert record["cases"] >= 1 and len(record["extent_mm"]["min"]) == 3
        bundle.load_weights()  # checksum still matches: the record did not touch the weights
    assert load_bundle("abdomen_ct").config["training_record"] == \
        dataset_training_record(ROOT / "Dataset002_AbdomenCT")


def test_segment_cli_reports_qc_everywhere_and_keeps_it_on_rerun(tmp_path, capsys):
    out = tmp_path / "out"
    test_case = ROOT / "Dataset002_AbdomenCT" / "imagesTs" / "abdomen_101_0000.nii.gz"
    args = ["segment", str(REAL_CT), str(test_case), "-o", str(out), "-m", "abdomen_ct",
            "--quiet", "--device", "cpu"]
    assert main(args) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert " qc=warn: liver " in lines["lung2_upper_abdomen"]
    assert lines["abdomen_101"].endswith(" qc=ok")
    rows = {r["case"]: r for r in json.loads((out / "summary.json").read_text())}
    assert rows["lung2_upper_abdomen"]["qc"] == "warn"
    reasons = rows["lung2_upper_abdomen"]["qc_reasons"]
    assert any(r.startswith("liver ") for r in reasons)
    assert rows["abdomen_101"]["qc"] == "ok" and rows["abdomen_101"]["qc_reasons"] == []
    volumes = json.loads((out / "lung2_upper_abdomen_volumes.json").read_text())
    assert volumes["qc"]["status"] == "warn" and volumes["qc"]["reasons"] == reasons
    with open(out / "lung2_upper_abdomen_volumes.csv", newline="") as fh:
        table = {r["name"]: r for r in csv.DictReader(fh)}
    assert all(r["qc"] == "warn" for r in table.values())
    assert table["liver"]["qc_reasons"].startswith("liver ")
    with open(out / "abdomen_101_volumes.csv", newline="") as fh:
        assert {(r["qc"], r["qc_reasons"]) for r in csv.DictReader(fh)} == {("ok", "")}

    assert main(args) == 0  # rerun: both skipped, their QC read back from the volumes JSON
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "skipped" in lines["lung2_upper_abdomen"] and " qc=warn: liver " in \
        lines["lung2_upper_abdomen"]
    rerun = {r["case"]: r for r in json.loads((out / "summary.json").read_text())}
    assert rerun["lung2_upper_abdomen"]["status"] == "skipped"
    assert rerun["lung2_upper_abdomen"]["qc_reasons"] == reasons
    assert rerun["abdomen_101"]["qc"] == "ok"


def test_training_writes_the_record_into_the_bundle(tmp_path):
    from medseg.training.train import TrainConfig, train
    from tests.brain_datasets import cropped_brains

    ds = cropped_brains(tmp_path / "ds", 3, half=16)
    bundle = train(ds, tmp_path / "bundle", TrainConfig(
        iterations=2, val_every=2, patch_size=(32, 32, 32), batch_size=1,
        samples_per_volume=1, arch_params={"channels": [4, 8], "num_res_units": 0},
        augment=False), progress=False)
    assert bundle.config["training_record"] == dataset_training_record(ds)
    assert bundle.config["training_record"]["cases"] == 3
