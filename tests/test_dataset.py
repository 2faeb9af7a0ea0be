"""Dataset folders: the bundled nnU-Net v2 datasets, the MSD dialect, and every rejection."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import InputError
from medseg.training.dataset import Case, Dataset, load_dataset, validate_dataset

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
AFFINE = np.array([[-2.0, 0, 0, 10], [0, -2.0, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def nnunet_folder(root: Path, n_cases: int = 2, n_channels: int = 1,
                  labels: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n_cases):
        for c in range(n_channels):
            save(root / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz",
                 rng.normal(size=(6, 5, 4)).astype(np.float32))
        lab = np.zeros((6, 5, 4), np.uint8)
        lab[2:4, 1:3, 1:3] = 1
        save(root / "labelsTr" / f"case_{i:03d}.nii.gz", lab)
    meta = {"name": "Toy", "channel_names": {str(c): f"M{c}" for c in range(n_channels)},
            "labels": labels or {"background": 0, "organ": 1},
            "numTraining": n_cases, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def rejected(root: Path) -> InputError:
    with pytest.raises(InputError) as info:
        validate_dataset(load_dataset(root))
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(("folder", "channels", "labels", "n_train"), [
    ("Dataset001_BrainTissue", {0: "T1"},
     {"background": 0, "white_matter": 1, "grey_matter": 2, "csf": 3}, 10),
    ("Dataset002_AbdomenCT", {0: "CT"},
     {"background": 0, "liver": 1, "spleen": 2, "kidney_right": 3, "kidney_left": 4,
      "aorta": 5, "vertebra": 6, "liver_lesion": 7}, 12),
])
def test_bundled_datasets_load_and_validate(folder, channels, labels, n_train):
    ds = load_dataset(SAMPLE / folder)
    assert isinstance(ds, Dataset) and ds.layout == "nnunetv2"
    assert ds.channel_names == channels and ds.labels == labels
    assert ds.file_ending == ".nii.gz" and ds.num_training == n_train
    assert len(ds.training) == n_train and len(ds.test) == 3
    assert all(c.label is not None and c.label.is_file() for c in ds.training + ds.test)
    assert all(len(c.images) == 1 for c in ds.training)
    validate_dataset(ds)


def test_toy_multichannel_dataset_pairs_files(tmp_path):
    ds = load_dataset(nnunet_folder(tmp_path, n_cases=3, n_channels=2))
    assert [c.case_id for c in ds.training] == ["case_000", "case_001", "case_002"]
    assert ds.training[1] == Case("case_001", (tmp_path / "imagesTr/case_001_0000.nii.gz",
                                               tmp_path / "imagesTr/case_001_0001.nii.gz"),
                                  tmp_path / "labelsTr/case_001.nii.gz")
    assert ds.test == ()
    validate_dataset(ds)
    assert load_dataset(tmp_path / "dataset.json").root == tmp_path


def test_missing_dataset_json(tmp_path):
    with pytest.raises(InputError, match=r"dataset\.json: missing"):
        load_dataset(tmp_path)


def test_malformed_dataset_json(tmp_path):
    nnunet_folder(tmp_path)
    (tmp_path / "dataset.json").write_text('{"name": "x", "labels": {')
    with pytest.raises(InputError, match=r"dataset\.json: malformed JSON \(line 1"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(("meta_patch", "message"), [
    ({"channel_names": {}}, "channel_names"),
    ({"labels": {"background": 0, "a": 1, "b": 1}}, "one value to several names"),
    ({"labels": {"organ": 1}}, "background 0"),
    ({"labels": {"background": 0, "tumour": [1, 2]}}, "region"),
    ({"file_ending": None}, "file_ending"),
])
def test_bad_dataset_json_fields(tmp_path, meta_patch, message):
    nnunet_folder(tmp_path)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    meta.update(meta_patch)
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=message) as info:
        load_dataset(tmp_path)
    assert info.value.path.endswith("dataset.json")


def test_training_image_without_label(tmp_path):
    nnunet_folder(tmp_path)
    (tmp_path / "labelsTr" / "case_001.nii.gz").unlink()
    err = rejected(tmp_path)
    assert err.path.endswith("imagesTr/case_001_0000.nii.gz")
    assert "no label" in err.problem and "labelsTr/case_001.nii.gz" in err.problem


def test_label_without_image(tmp_path):
    nnunet_folder(tmp_path)
    (tmp_path / "imagesTr" / "case_000_0000.nii.gz").unlink()
    with pytest.raises(InputError, match="label has no image") as info:
        load_dataset(tmp_path)
    assert info.value.path.endswith("labelsTr/case_000.nii.gz")


def test_missing_channel_file(tmp_path):
    nnunet_folder(tmp_path, n_channels=2)
    (tmp_path / "imagesTr" / "case_001_0001.nii.gz").unlink()
    with pytest.raises(InputError, match="missing channel 1") as info:
        load_dataset(tmp_path)
    assert info.value.path.endswith("imagesTr/case_001_0001.nii.gz")


def test_undeclared_channel_file(tmp_path):
    nnunet_folder(tmp_path, n_channels=1)
    save(tmp_path / "imagesTr" / "case_000_0001.nii.gz", np.zeros((6, 5, 4), np.float32))
    with pytest.raises(InputError, match="channel 1 is not declared"):
        load_dataset(tmp_path)


def test_num_training_mismatch(tmp_path):
    nnunet_folder(tmp_path)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    meta["numTraining"] = 5
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    err = rejected(tmp_path)
    assert err.path.endswith("dataset.json") and "numTraining is 5" in err.problem


def test_label_value_not_declared(tmp_path):
    nnunet_folder(tmp_path)
    lab = np.zeros((6, 5, 4), np.uint8)
    lab[1, 1, 1] = 4
    save(tmp_path / "labelsTr" / "case_001.nii.gz", lab)
    err = rejected(tmp_path)
    assert err.path.endswith("labelsTr/case_001.nii.gz")
    assert "[4]" in err.problem and "not declared" in err.problem


def test_label_shape_mismatch(tmp_path):
    nnunet_folder(tmp_path)
    save(tmp_path / "labelsTr" / "case_000.nii.gz", np.zeros((6, 5, 3), np.uint8))
    err = rejected(tmp_path)
    assert err.path.endswith("labelsTr/case_000.nii.gz") and "shape (6, 5, 3)" in err.problem


def test_label_geometry_mismatch(tmp_path):
    nnunet_folder(tmp_path)
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.01  # 0.01 mm is ten times the tolerance
    save(tmp_path / "labelsTr" / "case_001.nii.gz", np.zeros((6, 5, 4), np.uint8), shifted)
    err = rejected(tmp_path)
    assert err.path.endswith("labelsTr/case_001.nii.gz") and "geometry differs" in err.problem
    # geometry checks can be switched off; label values are still checked
    validate_dataset(load_dataset(tmp_path), check_geometry=False)


def test_wrong_channel_count_in_a_channel_file(tmp_path):
    nnunet_folder(tmp_path)
    save(tmp_path / "imagesTr" / "case_000_0000.nii.gz", np.zeros((6, 5, 4, 2), np.float32))
    err = rejected(tmp_path)
    assert err.path.endswith("imagesTr/case_000_0000.nii.gz") and "2 channel" in err.problem


def test_corrupt_image_named(tmp_path):
    nnunet_folder(tmp_path)
    (tmp_path / "imagesTr" / "case_001_0000.nii.gz").write_bytes(b"not a nifti")
    assert rejected(tmp_path).path.endswith("imagesTr/case_001_0000.nii.gz")


def msd_folder(root: Path, n_channels: int = 2) -> Path:
    rng = np.random.default_rng(1)
    training = []
    for i in (2, 7):
        img = rng.normal(size=(6, 5, 4, n_channels)).astype(np.float32)
        save(root / "imagesTr" / f"prostate_{i:02d}.nii.gz", img)
        lab = np.zeros((6, 5, 4), np.uint8)
        lab[1:3, 1:3, 1:3] = 2
        save(root / "labelsTr" / f"prostate_{i:02d}.nii.gz", lab)
        training.append({"image": f"./imagesTr/prostate_{i:02d}.nii.gz",
                         "label": f"./labelsTr/prostate_{i:02d}.nii.gz"})
    save(root / "imagesTs" / "prostate_03.nii.gz",
         rng.normal(size=(6, 5, 4, n_channels)).astype(np.float32))
    # macOS resource-fork junk, as in the real Decathlon archives: ignored
    (root / "imagesTr" / "._prostate_02.nii.gz").write_bytes(b"\0\5\26\7")
    meta = {"name": "Prostate", "description": "toy MSD task", "tensorImageSize": "4D",
            "modality": {"0": "T2", "1": "ADC"},
            "labels": {"0": "background", "1": "PZ", "2": "TZ"},
            "numTraining": 2, "numTest": 1, "training": training,
            "test": ["./imagesTs/prostate_03.nii.gz"]}
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return root


def test_msd_variant_loads_without_conversion(tmp_path):
    ds = load_dataset(msd_folder(tmp_path))
    assert ds.layout == "msd" and ds.name == "Prostate"
    assert ds.channel_names == {0: "T2", 1: "ADC"}
    assert ds.labels == {"background": 0, "PZ": 1, "TZ": 2}
    assert [c.case_id for c in ds.training] == ["prostate_02", "prostate_07"]
    assert ds.training[0].images == ((tmp_path / "imagesTr/prostate_02.nii.gz").resolve(),)
    assert ds.test[0].label is None and ds.test[0].case_id == "prostate_03"
    assert ds.extra["tensorImageSize"] == "4D"
    validate_dataset(ds)


def test_msd_variant_wrong_channel_count(tmp_path):
    msd_folder(tmp_path, n_channels=1)
    err = rejected(tmp_path)
    assert err.path.endswith("imagesTr/prostate_02.nii.gz")
    assert "1 channel(s) but dataset.json declares 2" in err.problem


def test_msd_variant_missing_label_file(tmp_path):
    msd_folder(tmp_path)
    (tmp_path / "labelsTr" / "prostate_07.nii.gz").unlink()
    err = rejected(tmp_path)
    assert err.path.endswith("labelsTr/prostate_07.nii.gz") and "not found" in err.problem


def test_msd_variant_path_outside_folder(tmp_path):
    msd_folder(tmp_path / "task")
    meta = json.loads((tmp_path / "task" / "dataset.json").read_text())
    meta["training"][0]["image"] = "../../etc/passwd"
    (tmp_path / "task" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="outside the dataset folder"):
        load_dataset(tmp_path / "task")
