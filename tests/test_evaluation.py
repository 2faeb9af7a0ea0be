"""medseg.evaluation (pairs, folders, geometry, resampling) and the ``medseg evaluate`` CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from medseg.cli import main
from medseg.errors import GeometryError, InputError, MedsegError
from medseg.evaluation.metrics import class_metrics
from medseg.evaluation.options import EvaluationOptions
from medseg.evaluation.pairs import (
    case_name,
    evaluate_pair,
    normalize_labels,
    pair_cases,
    resample_nearest,
)
from medseg.evaluation.run import evaluate_folders
from medseg.io import write_image
from medseg.specs import MetricSpec
from medseg.volume import LabelMap, affine_from_geometry

SPACING = (0.8, 1.1, 2.0)
AFFINE = affine_from_geometry(SPACING, (10.0, -20.0, 5.0))


def label_pair(seed, shape=(24, 22, 12)):
    """Reference and prediction with classes 1 (large) and 2 (inside 1)."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), 2.5)
    s = field.std()
    ref = (field > 0.2 * s).astype(np.int16) + (field > 0.9 * s)
    noisy = ndi.gaussian_filter(field + 0.3 * s * rng.normal(size=shape), 1)
    pred = (noisy > 0.2 * s).astype(np.int16) + (noisy > 0.9 * s)
    return LabelMap(pred[None], AFFINE), LabelMap(ref[None], AFFINE)


# ---- one pair -------------------------------------------------------------------------------
def test_evaluate_pair_rows_match_class_metrics():
    pred, ref = label_pair(0)
    rows = evaluate_pair(pred, ref, {"liver": 1, "tumour": 2}, tolerance={"tumour": 2.0})
    assert [r["class"] for r in rows] == ["liver", "tumour", "all"]
    # liver has no tolerance given: the voxel size, the largest spacing (issue 25)
    for row, value, tol in ((rows[0], 1, max(SPACING)), (rows[1], 2, 2.0)):
        expected = class_metrics(pred.data == value, ref.data == value, SPACING, tolerance=tol)
        assert row["label"] == value
        for key, v in expected.items():
            assert row[key] == (pytest.approx(v) if isinstance(v, float) else v), key
    assert rows[2]["label"] is None
    assert rows[2]["pixel_accuracy"] == pytest.approx(np.mean(pred.data == ref.data))


def test_evaluate_pair_discovers_labels_and_keeps_absent_ones():
    pred, ref = label_pair(1)
    rows = evaluate_pair(pred, ref)
    assert [r["label"] for r in rows] == [1, 2, None]
    rows = evaluate_pair(pred, ref, [1, 2, 5], empty_score=1.0)
    absent = rows[2]
    assert absent["label"] == 5 and absent["status"] == "both_empty" and absent["dice"] == 1.0


def test_evaluate_pair_rejects_unknown_labels_and_other_grids():
    pred, ref = label_pair(2)
    with pytest.raises(MedsegError, match="reference holds label values 2 not in the labels"):
        evaluate_pair(LabelMap((ref.array > 0).astype(np.int16), AFFINE), ref, [1])
    bad = LabelMap(np.where(pred.array == 2, 7, pred.array), AFFINE)
    with pytest.raises(MedsegError, match="prediction holds label values 7"):
        evaluate_pair(bad, ref, [1, 2])
    shifted = LabelMap(pred.array, affine_from_geometry(SPACING, (11.0, -20.0, 5.0)))
    with pytest.raises(GeometryError, match=r"differs from the reference grid.*resample"):
        evaluate_pair(shifted, ref, [1, 2])
    negative = LabelMap(-pred.array, AFFINE)
    with pytest.raises(GeometryError, match="prediction holds negative label values"):
        evaluate_pair(negative, ref, [1, 2])


def test_resample_recovers_a_reoriented_prediction():
    """The same labels stored LPS-flipped and with permuted axes resample back exactly."""
    pred, ref = label_pair(3)
    flipped = pred.data[::-1, :, ::-1].transpose(1, 0, 2)
    # voxel (i, j, k) of the new array is voxel (j, n0-1-i... ) of the old one: build the affine
    n0, _, n2 = pred.spatial_shape
    index_map = np.array([[0, -1, 0, n0 - 1], [1, 0, 0, 0], [0, 0, -1, n2 - 1], [0, 0, 0, 1.0]])
    moved = LabelMap(np.ascontiguousarray(flipped)[None], pred.affine @ index_map)
    assert not moved.same_grid(ref)
    back = resample_nearest(moved, ref)
    assert back.same_grid(ref)
    assert np.array_equal(back.data, pred.data)
    rows = evaluate_pair(moved, ref, [1, 2], resample=True)
    direct = evaluate_pair(pred, ref, [1, 2])
    assert [r["dice"] for r in rows[:2]] == [r["dice"] for r in direct[:2]]


def test_resample_matches_simpleitk_nearest_neighbour():
    """Independent implementation: SimpleITK's ResampleImageFilter on a shifted, coarser grid."""
    import SimpleITK as sitk

    pred, ref = label_pair(4)
    coarse = LabelMap(pred.array[:, ::2, ::2, :],
                      affine_from_geometry((1.6, 2.2, 2.0), (10.37, -19.21, 5.6)))
    ours = resample_nearest(coarse, ref).data

    def to_itk(vol):
        img = sitk.GetImageFromArray(np.ascontiguousarray(vol.data.transpose(2, 1, 0)))
        lps = np.diag([-1, -1, 1]) @ vol.affine[:3, :3]
        img.SetSpacing(vol.spacing)
        img.SetDirection((lps / np.linalg.norm(lps, axis=0)).ravel().tolist())
        img.SetOrigin((np.diag([-1, -1, 1]) @ vol.affine[:3, 3]).tolist())
        return img

    res = sitk.Resample(to_itk(coarse), to_itk(ref), sitk.Transform(), sitk.sitkNearestNeighbor,
                        0, sitk.sitkInt16)
    theirs = sitk.GetArrayFromImage(res).transpose(2, 1, 0)
    # ties at exactly half a voxel may round differently; the grids here have none
    assert np.array_equal(ours, theirs)


# ---- labels and pairing -----------------------------------------------------------------------
def test_normalize_labels():
    assert normalize_labels([2, 1]) == {1: "1", 2: "2"}
    assert normalize_labels({"liver": 1, "spleen": 2}) == {1: "liver", 2: "spleen"}
    assert normalize_labels({3: "kidney"}) == {3: "kidney"}
    assert normalize_labels(None) is None
    with pytest.raises(MedsegError, match="background"):
        normalize_labels([0, 1])
    with pytest.raises(MedsegError, match="twice"):
        normalize_labels({"a": 1, "b": 1})


@pytest.mark.parametrize(("name", "case"), [
    ("case01.nii.gz", "case01"), ("a.b.nii", "a.b"), ("x.NRRD", "x"), ("y.mha", "y"),
    ("notes.txt", None), (".nii.gz", None),
])
def test_case_name(name, case):
    assert case_name(name) == case


def test_pair_cases(tmp_path):
    p, r = tmp_path / "p", tmp_path / "r"
    p.mkdir()
    r.mkdir()
    for name in ("a.nii.gz", "b.nrrd", "c.nii.gz", "d.nii", "d.nii.gz", "readme.txt"):
        (p / name).write_bytes(b"")
    for name in ("a.nii", "b.mha", "e.nii.gz", "d.mha"):
        (r / name).write_bytes(b"")
    out = pair_cases(p, r)
    assert [c for c, _, _ in out.pairs] == ["a", "b"]
    assert out.pred_only == [str(p / "c.nii.gz")]
    assert out.ref_only == [str(r / "e.nii.gz")]
    assert out.ignored == [str(p / "readme.txt")]
    assert "several files" in out.ambiguous["d"]


def test_pair_cases_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.nii.gz").write_bytes(b"")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "b.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="prediction folder not found"):
        pair_cases(tmp_path / "missing", tmp_path / "x")
    with pytest.raises(InputError, match="reference folder holds no images"):
        pair_cases(tmp_path / "x", tmp_path / "empty")
    with pytest.raises(MedsegError, match="no case names match"):
        pair_cases(tmp_path / "x", tmp_path / "y")


# ---- cohorts ----------------------------------------------------------------------------------
@pytest.fixture
def cohort(tmp_path):
    """Three good cases (NIfTI, NRRD, MHA), one unreadable, one off-grid, one unknown label,
    one prediction without reference."""
    p, r = tmp_path / "pred", tmp_path / "ref"
    for i, ext in enumerate((".nii.gz", ".nrrd", ".mha")):
        pred, ref = label_pair(10 + i)
        write_image(pred, p / f"case{i}{ext}")
        write_image(ref, r / f"case{i}{ext}")
    pred, ref = label_pair(20)
    (p / "broken.nii.gz").parent.mkdir(exist_ok=True)
    (p / "broken.nii.gz").write_bytes(b"not a nifti file at all")
    write_image(ref, r / "broken.nii.gz")
    write_image(LabelMap(pred.array[:, :-2], AFFINE), p / "offgrid.nii.gz")
    write_image(ref, r / "offgrid.nii.gz")
    write_image(LabelMap(np.where(pred.array == 2, 9, pred.array), AFFINE),
                p / "badlabel.nii.gz")
    write_image(ref, r / "badlabel.nii.gz")
    write_image(pred, p / "orphan.nii.gz")
    return p, r


def test_evaluate_folders_scores_good_cases_and_records_bad_ones(cohort, tmp_path):
    p, r = cohort
    out = tmp_path / "report"
    result = evaluate_folders(p, r, out, EvaluationOptions(labels={"organ": 1, "lesion": 2},
                                                           workers=1, metrics=[], progress=False))
    errors = result.errors
    assert set(errors) == {"broken", "offgrid", "badlabel"}
    assert errors["broken"].startswith(str(p / "broken.nii.gz"))
    assert "resample" in errors["offgrid"]
    assert "label values 9" in errors["badlabel"]
    assert result.pairing.pred_only == [str(p / "orphan.nii.gz")]
    with open(out / "per_case.csv") as fh:
        rows = list(csv.DictReader(fh))
    cases = {row["case"] for row in rows}
    assert cases == {"case0", "case1", "case2", "broken", "offgrid", "badlabel"}
    good = next(row for row in rows if row["case"] == "case1" and row["class"] == "organ")
    pred, ref = label_pair(11)
    assert float(good["dice"]) == pytest.approx(
        class_metrics(pred.data == 1, ref.data == 1, SPACING)["dice"])
    failed = [row for row in rows if row["case"] == "offgrid"]
    assert [row["class"] for row in failed] == ["organ", "lesion"]
    assert all(row["status"] == "error" and row["dice"] == "" for row in failed)
    summary = json.loads((out / "summary.json").read_text())
    organ = summary["classes"]["organ"]
    assert organ["metrics"]["dice"]["n"] == 3 and organ["metrics"]["dice"]["n_errors"] == 3
    assert organ["status"]["error"] == 3
    assert summary["unpaired"]["pred_only"] == [str(p / "orphan.nii.gz")]
    html = (out / "report.html").read_text()
    assert "orphan.nii.gz" in html and "offgrid" in html and "<svg" in html
    # resampling rescues the off-grid case
    again = evaluate_folders(p, r, tmp_path / "r2", EvaluationOptions(
        labels=[1, 2], resample=True, workers=1, metrics=[], progress=False))
    assert "offgrid" not in again.errors


def test_evaluate_folders_in_parallel_with_discovered_labels(tmp_path):
    p, r = tmp_path / "p", tmp_path / "r"
    for i in range(3):
        pred, ref = label_pair(30 + i)
        if i == 0:  # class 2 absent from both maps of this case
            pred = LabelMap(np.where(pred.array == 2, 1, pred.array), AFFINE)
            ref = LabelMap(np.where(ref.array == 2, 1, ref.array), AFFINE)
        write_image(pred, p / f"c{i}.nii.gz")
        write_image(ref, r / f"c{i}.nii.gz")
    parallel = evaluate_folders(p, r, tmp_path / "out2",
                                EvaluationOptions(workers=2, metrics=[], progress=False))
    serial = evaluate_folders(p, r, tmp_path / "out1",
                              EvaluationOptions(workers=1, metrics=[], progress=False))
    assert not parallel.errors
    key = [(row["case"], row["class"]) for row in parallel.rows]
    assert key == [(row["case"], row["class"]) for row in serial.rows]
    absent = next(row for row in parallel.rows if row["case"] == "c0" and row["label"] == 2)
    assert absent["status"] == "both_empty" and math.isnan(absent["dice"])
    stats = parallel.summary["2"]["metrics"]["dice"]
    assert (stats["n"], stats["n_nan"]) == (2, 1)
    assert parallel.summary["2"]["status"]["both_empty"] == 1


def _volume_ratio(pred, ref, spacing):
    return float(pred.sum()) / max(float(ref.sum()), 1.0)


def test_extra_plugin_metrics_become_columns(tmp_path):
    p, r = tmp_path / "p", tmp_path / "r"
    pred, ref = label_pair(40)
    write_image(pred, p / "a.nii.gz")
    write_image(ref, r / "a.nii.gz")
    spec = MetricSpec("volume_ratio", _volume_ratio, "pred / ref voxels", unit="")
    result = evaluate_folders(p, r, tmp_path / "o", EvaluationOptions(
        labels=[1, 2], metrics=[spec], workers=1, progress=False))
    row = result.rows[0]
    assert row["volume_ratio"] == pytest.approx((pred.data == 1).sum() / (ref.data == 1).sum())
    assert "volume_ratio" in (tmp_path / "o" / "per_case.csv").read_text().splitlines()[0]
    assert result.summary["1"]["metrics"]["volume_ratio"]["n"] == 1
    with pytest.raises(MedsegError, match="clashes"):
        evaluate_folders(p, r, tmp_path / "o2", EvaluationOptions(
            metrics=[MetricSpec("dice", _volume_ratio)], workers=1, progress=False))


# ---- CLI --------------------------------------------------------------------------------------
def test_cli_evaluate(cohort, tmp_path, capsys):
    p, r = cohort
    out = tmp_path / "cli"
    code = main(["evaluate", "--pred", str(p), "--ref", str(r), "--labels", "organ=1",
                 "lesion=2", "--tolerance", "2", "lesion=1", "--workers", "1", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 1  # report written, but some cases failed and one file is unpaired
    assert "scored 3 of 6 cases" in captured.out
    assert "unpaired prediction (no reference): " in captured.err
    assert "case offgrid:" in captured.err and "Traceback" not in captured.err
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["nsd_tolerance_mm"] == {"organ": 2.0, "lesion": 1.0}
    assert settings["empty_score"] is None


def test_cli_evaluate_clean_run_exits_zero(tmp_path, capsys):
    p, r = tmp_path / "p", tmp_path / "r"
    pred, ref = label_pair(50)
    write_image(pred, p / "a.nii.gz")
    write_image(ref, r / "a.nii.gz")
    code = main(["evaluate", "--pred", str(p), "--ref", str(r), "--empty-score", "1",
                 "-o", str(tmp_path / "o")])
    assert code == 0
    assert "scored 1 of 1 cases" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "message"), [
    (["--pred", "{missing}"], "prediction folder not found"),
    (["--labels", "liver=x"], "--labels: 'liver=x' is not a value"),
    (["--tolerance", "wide"], "--tolerance: 'wide' is not MM"),
    (["--labels", "0"], "0 is background"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, extra, message):
    p, r = tmp_path / "p", tmp_path / "r"
    pred, ref = label_pair(60)
    write_image(pred, p / "a.nii.gz")
    write_image(ref, r / "a.nii.gz")
    args = ["evaluate", "--pred", str(p), "--ref", str(r), "-o", str(tmp_path / "o")]
    args += [a.format(missing=tmp_path / "nope") for a in extra]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("medseg: error: ") and message in err


# ---- a single slice stored as 3D (X x Y x 1) ----------------------------------------------
def test_single_slice_volume_is_scored_in_2d_with_a_warning():
    """In 3D every voxel of an X x Y x 1 mask is border; scored in 2D the surface metrics are
    the in-plane ones and the volumes keep the slice thickness."""
    ref2d = np.zeros((30, 28), np.int16)
    ref2d[5:20, 6:22] = 1
    pred2d = np.roll(ref2d, 3, axis=0)
    spacing = (0.8, 1.1, 2.0)
    affine = affine_from_geometry(spacing, (0.0, 0.0, 0.0))
    with pytest.warns(UserWarning, match=r"single-slice image \(30x28x1\) is scored as 2D"):
        (row, _all) = evaluate_pair(LabelMap(pred2d[:, :, None][None], affine),
                                    LabelMap(ref2d[:, :, None][None], affine), [1])
    # NSD's default tolerance: the in-plane voxel size (1.1 mm), not the slice thickness
    assert row["nsd_tolerance_mm"] == pytest.approx(1.1)
    in_plane = class_metrics(pred2d == 1, ref2d == 1, spacing[:2], tolerance=1.1)
    assert row["hd95"] == pytest.approx(in_plane["hd95"]) and row["hd"] == pytest.approx(2.4)
    assert row["nsd"] == pytest.approx(in_plane["nsd"])
    as_3d = class_metrics(pred2d[:, :, None] == 1, ref2d[:, :, None] == 1, spacing)
    assert row["assd"] != pytest.approx(as_3d["assd"])  # 3D would count every voxel as border
    assert row["ref_volume_ml"] == pytest.approx(15 * 16 * 0.8 * 1.1 * 2.0 / 1000)


def test_mismatched_reference_is_said_before_scores(tmp_path, capsys):
    """A reference on another grid, or with no label in common, is scored with a plain note in
    the case's row and a warning from ``medseg evaluate`` (no silent Dice 0.03)."""
    from medseg.cli import main
    from medseg.evaluation.pairs import evaluate_pair
    from medseg.io import write_image
    from medseg.volume import LabelMap

    pred = np.zeros((20, 20, 10), dtype=np.uint8)
    pred[5:15, 5:15, 2:8] = 1
    ref_same = LabelMap(pred[None].copy(), np.diag([2.0, 2.0, 3.0, 1.0]))
    rows = evaluate_pair(LabelMap(pred[None], ref_same.affine), ref_same)
    assert "note" not in rows[-1]
    other_labels = LabelMap((pred * 3)[None], ref_same.affine)
    rows = evaluate_pair(LabelMap(pred[None], ref_same.affine), other_labels)
    assert rows[-1]["status"] == "ok"  # scored, with the note beside it
    assert rows[-1]["note"] == "no label in common (prediction 1; reference 3)"
    coarse = LabelMap(pred[::2, ::2, ::2][None].copy(), np.diag([4.0, 4.0, 6.0, 1.0]))
    rows = evaluate_pair(LabelMap(pred[None], ref_same.affine), coarse, resample=True)
    assert rows[-1]["note"].startswith(
        "reference grid differs: 10x10x5 at 4x4x6 mm vs 20x20x10 at 2x2x3 mm (prediction)")
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    write_image(LabelMap(pred[None], ref_same.affine), tmp_path / "pred" / "c1.nii.gz")
    write_image(other_labels, tmp_path / "ref" / "c1.nii.gz")
    main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
          "-o", str(tmp_path / "report")])
    assert "medseg: warning: case c1: no label in common" in capsys.readouterr().err
    per_case = (tmp_path / "report" / "per_case.csv").read_text()
    assert "no label in common (prediction 1; reference 3)" in per_case
