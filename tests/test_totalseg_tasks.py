"""TotalSegmentator tasks as models: the task table, where weights are looked up, their state,
the errors for missing, partial and licensed weights, and the steps around nnU-Net checked with
small TotalSegmentator-layout folders whose networks answer one class everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.engine.batch import expand_inputs, segment_cases
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import InputError
from medseg.io import read_image, read_label_map
from medseg.io.nifti import nifti_label_names
from medseg.models import describe_model, load_model
from medseg.models.totalseg import tasks
from medseg.models.totalseg.status import task_state, task_status
from medseg.models.totalseg.tasks import TASKS, class_map, required_releases, weights_dir
from tests.totalseg_layout import write_release


@pytest.fixture(autouse=True)
def _no_user_weights(monkeypatch, tmp_path):
    """Every test looks for weights in its own folder, never in the user's home."""
    for name in ("TOTALSEG_WEIGHTS_PATH", "TOTALSEG_HOME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _part_labels(dataset_id: int) -> dict[int, str]:
    return {int(k): v for k, v in tasks.tables()["parts"][str(dataset_id)]["classes"].items()}


def _ct(path: Path, shape=(40, 36, 14), affine=None, seed=0) -> Path:
    if affine is None:
        affine = np.diag([-0.9, -0.9, 3.0, 1.0])  # LPS, thick slices
        affine[:3, 3] = [60.0, 40.0, -20.0]
    data = np.random.default_rng(seed).integers(-1000, 1500, shape).astype(np.int16)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


# ---- the table --------------------------------------------------------------------------------

def test_total_classes_are_the_union_of_its_five_parts_in_global_ids():
    total = TASKS["total"]
    assert [p.dataset_id for p in total.parts] == [291, 292, 293, 294, 295]
    assert sorted(total.classes) == list(range(1, 118))
    merged = {g for part in total.part_labels.values() for g in part.values()}
    assert merged == set(total.classes)
    # a part's local id maps to the global id of the same name
    for dataset_id, lut in total.part_labels.items():
        names = _part_labels(dataset_id)
        assert all(total.classes[g] == names[loc] for loc, g in lut.items())
    assert total.classes[5] == "liver" and total.classes[1] == "spleen"
    assert len(TASKS["total_mr"].classes) == 50


@pytest.mark.parametrize(("name", "folders"), [
    ("total", [291, 292, 293, 294, 295, 298]),
    ("total_fast", [297, 298]),
    ("total_fastest", [298]),
    ("total_mr", [850, 851, 852]),
    ("total_mr_fast", [852]),
    ("body", [299]),
    ("lung_vessels", [117, 297]),
    ("liver_vessels", [8, 298]),
])
def test_required_releases(name, folders):
    got = required_releases(name)
    assert [r.dataset_id for r in got] == folders
    assert all(r.url.startswith(tasks.RELEASE_BASE_URL + "/v2.") and r.url.endswith(".zip")
               for r in got)
    assert required_releases("totalseg:" + name) == got


def test_release_folder_names_and_trainers_are_totalsegmentators():
    fast = TASKS["total_fast"].parts[0]
    assert fast.folder == "Dataset297_TotalSegmentator_total_3mm_1559subj"
    assert fast.tag == "v2.0.0-weights"
    assert fast.trainer_folder == "nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres"
    assert TASKS["total_mr_fast"].parts[0].trainer == "nnUNetTrainer_2000epochs_NoMirroring"
    assert TASKS["total"].parts[0].trainer == "nnUNetTrainerNoMirroring"


def test_snomed_codes_come_from_totalsegmentators_table():
    codes = tasks.segment_codes({"liver", "kidney_left"})
    assert codes["liver"]["type"] == ["SCT", "10200004", "Liver"]
    assert codes["kidney_left"]["modifier"][2] == "Left"
    info = describe_model("totalseg:total_fast")
    assert info.details["segment_codes"]["aorta"]["type"][1] == "15825003"


def test_weights_dir_precedence(monkeypatch, tmp_path):
    assert weights_dir() == tmp_path / "home" / ".totalsegmentator" / "nnunet" / "results"
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "tshome"))
    assert weights_dir() == tmp_path / "tshome" / "nnunet" / "results"
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "weights"))
    assert weights_dir() == tmp_path / "weights"


# ---- state and errors -------------------------------------------------------------------------

def test_task_status_present_missing_partial(monkeypatch, tmp_path):
    root = tmp_path / "w"
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    assert task_state("total_fast") == "missing"
    write_release(root, TASKS["total_fast"].parts[0], class_map("total"), (3, 3, 3), 5)
    partial = root / TASKS["total"].roi_locator.folder
    partial.mkdir(parents=True)
    (partial / "half.zip.part").write_bytes(b"x" * 1000)
    states = {s.release.dataset_id: s for s in task_status("total_fast")}
    assert states[297].state == "present" and states[297].size_bytes > 1000
    assert states[298].state == "partial" and states[298].size_bytes == 1000
    assert states[298].lacking.endswith("dataset.json")
    assert task_state("total_fast") == "partial"


def test_missing_weights_is_one_line_naming_the_folder_and_the_pull(monkeypatch, tmp_path,
                                                                      capsys):
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "empty"))
    ct = _ct(tmp_path / "ct.nii.gz")
    assert main(["segment", str(ct), "-o", str(tmp_path / "out"), "-m",
                 "totalseg:total_fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Dataset297_TotalSegmentator_total_3mm_1559subj" in err
    assert "medseg models pull totalseg:total_fast" in err
    assert not (tmp_path / "out").exists()


def test_partial_weights_are_refused(monkeypatch, tmp_path):
    root = tmp_path / "w"
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    folder = write_release(root, TASKS["total_fast"].parts[0], class_map("total"), (3, 3, 3), 5)
    (folder / "fold_0" / "checkpoint_final.pth").unlink()
    with pytest.raises(InputError, match=r"incomplete \(no .*checkpoint_final\.pth\).*pull "
                                         r"totalseg:total_fast"):
        load_model("totalseg:total_fast")


def test_licensed_task_is_refused_with_the_licence_page(tmp_path, capsys):
    with pytest.raises(InputError, match=r"licence key.*license-academic"):
        load_model("totalseg:tissue_types")
    assert main(["segment", str(_ct(tmp_path / "ct.nii.gz")), "-o", str(tmp_path / "o"),
                 "-m", "totalseg:heartchambers_highres"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "never sends a key" in err


def test_roi_subset_checks(monkeypatch, tmp_path):
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path))
    with pytest.raises(InputError, match="not_an_organ is not a class"):
        load_model("totalseg:total_fast", roi_subset=["liver", "not_an_organ"])
    with pytest.raises(InputError, match="total and total_mr tasks only"):
        load_model("totalseg:body", roi_subset=["body_trunc"])
    with pytest.raises(InputError, match="do not take --roi-subset"):
        load_model(str(Path(__file__).parent / "fixtures" / "nnunet" / "Dataset501_PhantomCT"),
                   roi_subset=["liver"])


def test_info_and_models_show_classes_folders_and_licence(monkeypatch, tmp_path, capsys):
    root = tmp_path / "w"
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    write_release(root, TASKS["total"].roi_locator, class_map("total"), (6, 6, 6), 5)
    assert main(["info", "totalseg:total"]) == 0
    out = capsys.readouterr().out
    assert "Dataset291_TotalSegmentator_part1_organs_1559subj: missing" in out
    assert "Dataset298_TotalSegmentator_total_6mm_1559subj: present" in out
    assert "Apache-2.0" in out and "117  costal_cartilages" in out
    assert main(["info", "totalseg:total", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "totalseg" and len(info["labels"]) == 118


# ---- the pipeline with one-class networks ----------------------------------------------------

def _write_total(root: Path, locator_class: int = 5) -> None:
    for i, part in enumerate(TASKS["total"].parts):
        write_release(root, part, _part_labels(part.dataset_id), (1.5, 1.5, 1.5), constant=1 + i)
    write_release(root, TASKS["total"].roi_locator, class_map("total"), (6, 6, 6),
                  constant=locator_class)


def test_total_merges_parts_in_order_into_global_ids(monkeypatch, tmp_path):
    root = tmp_path / "w"
    _write_total(root)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    model = load_model("totalseg:total")
    # only the parts run (the locator is for --roi-subset)
    assert model.networks.loads == 5
    ct = read_image(_ct(tmp_path / "ct.nii.gz"))
    result = Segmenter(model, InferenceSettings(device="cpu"))(ct)
    # every part answers its local class 1+i everywhere; the last part (ribs, local 5) wins
    ribs_local_5 = TASKS["total"].part_labels[295][5]
    assert TASKS["total"].classes[ribs_local_5] == "rib_left_5"
    assert np.all(result.labels.data == ribs_local_5)
    assert result.labels.same_grid(ct) and result.labels.spatial_shape == ct.spatial_shape


def test_roi_subset_runs_the_locator_and_only_the_parts_holding_the_classes(monkeypatch,
                                                                              tmp_path):
    root = tmp_path / "w"
    _write_total(root, locator_class=5)  # the locator finds "liver" everywhere
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    model = load_model("totalseg:total", roi_subset=["liver", "spleen"])
    assert [Path(f).name[:10] for f in model.networks.loaded] == ["Dataset298", "Dataset291"]
    assert model.info.label_names == {0: "background", 1: "spleen", 5: "liver"}
    ct = read_image(_ct(tmp_path / "ct.nii.gz"))
    labels = Segmenter(model, InferenceSettings(device="cpu"))(ct).labels.data
    assert np.all(labels == 1)  # the organs part answers its local 1 = spleen everywhere


def test_roi_subset_with_nothing_located_gives_an_empty_mask(monkeypatch, tmp_path):
    root = tmp_path / "w"
    _write_total(root, locator_class=2)  # the locator finds only kidney_right
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    model = load_model("totalseg:total", roi_subset=["liver"])
    ct = read_image(_ct(tmp_path / "ct.nii.gz"))
    assert not Segmenter(model, InferenceSettings(device="cpu"))(ct).labels.data.any()


def test_a_batch_loads_each_network_once(monkeypatch, tmp_path):
    root = tmp_path / "w"
    write_release(root, TASKS["total_fast"].parts[0], class_map("total"), (3, 3, 3), 5)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    model = load_model("totalseg:total_fast")
    net = model.networks.get(TASKS["total_fast"].parts[0])
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        _ct(inputs / f"case{i}.nii.gz", seed=i)
    rows = segment_cases(expand_inputs([inputs]), tmp_path / "out",
                         Segmenter(model, InferenceSettings(device="cpu")), progress=False)
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert model.networks.loads == 1
    assert model.networks.get(TASKS["total_fast"].parts[0]) is net
    mask = read_label_map(tmp_path / "out" / "case1.nii.gz")
    assert np.all(mask.data == 5)
    header = nib.load(tmp_path / "out" / "case1.nii.gz")
    assert np.allclose(header.affine, nib.load(inputs / "case1.nii.gz").affine)
    volumes = json.loads((tmp_path / "out" / "case1_volumes.json").read_text())
    assert volumes["model"] == "totalseg:total_fast"
    assert any(v["name"] == "liver" and v["voxels"] == 40 * 36 * 14 for v in volumes["volumes"])
    assert nifti_label_names(tmp_path / "out" / "case1.nii.gz")[117] == "costal_cartilages"


def test_dicom_seg_carries_totalsegmentators_snomed_codes(monkeypatch, tmp_path):
    import pydicom

    root = tmp_path / "w"
    write_release(root, TASKS["total_fastest"].parts[0], class_map("total"), (6, 6, 6), 52)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    series = Path(__file__).resolve().parent.parent / "sample_data" / "dicom" / "ct_phantom_001"
    out = tmp_path / "out"
    assert main(["segment", str(series), "-o", str(out), "-m", "totalseg:total_fastest",
                 "--dicom-seg", "--quiet", "--device", "cpu"]) == 0
    seg = pydicom.dcmread(out / "ct_phantom_001_seg.dcm")
    segments = {s.SegmentLabel: s for s in seg.SegmentSequence}
    assert TASKS["total_fastest"].classes[52] == "aorta"
    code = segments["aorta"].SegmentedPropertyTypeCodeSequence[0]
    assert (code.CodingSchemeDesignator, code.CodeValue) == ("SCT", "15825003")
    category = segments["aorta"].SegmentedPropertyCategoryCodeSequence[0]
    assert category.CodeValue == "123037004"


def test_a_pulled_folder_changed_since_is_refused(monkeypatch, tmp_path):
    from medseg.io.checksum_record import write_record

    root = tmp_path / "w"
    release = TASKS["total_fastest"].parts[0]
    write_release(root, release, class_map("total"), (6, 6, 6), 5)
    write_record(release.path(root), source="test")
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(root))
    assert load_model("totalseg:total_fastest").networks.loads == 1
    plans = release.path(root) / release.trainer_folder / "plans.json"
    text = plans.read_text()
    plans.write_text(text.replace('"batch_size": 2', '"batch_size": 3'))
    with pytest.raises(InputError, match=r"plans\.json.*refused"):
        load_model("totalseg:total_fastest")
