"""Subgroups from a metadata CSV (n, means, no CI below min n) and DICOM tags as metadata."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.cli import main
from medseg.errors import InputError
from medseg.evaluation.study.subgroups import (
    DICOM_TAGS,
    dicom_metadata,
    dicom_metadata_table,
    read_metadata,
    subgroup_summary,
)
from tests.study_cohorts import shifted_cohort

SIDES = [8, 10, 12, 8, 10, 12, 8]
SITES = ["A", "A", "A", "B", "B", "B", ""]  # case06 has an empty site cell
DICE = [(s - 1) / s for s in SIDES]
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _metadata(tmp_path, rows, header=("case", "site", "scanner")):
    path = tmp_path / "cases.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_subgroup_n_and_means(tmp_path):
    rows = [{"case": f"case{i:02d}", "class": "liver", "label": 1, "status": "ok", "dice": d}
            for i, d in enumerate(DICE)]
    rows.append({"case": "case07", "class": "liver", "label": 1, "status": "ok", "dice": 0.5})
    meta = read_metadata(_metadata(tmp_path, [(f"case{i:02d}", s, "X") for i, s in
                                              enumerate(SITES)]), ["site"])
    out = {r["group"]: r for r in subgroup_summary(rows, meta, ["site"], ["dice"], min_n=3)}
    assert set(out) == {"A", "B", "(blank)", "(missing)"}
    assert (out["A"]["n"], out["B"]["n"]) == (3, 3)
    assert out["A"]["mean"] == pytest.approx(np.mean(DICE[:3]))
    assert out["B"]["mean"] == pytest.approx(np.mean(DICE[3:6]))
    assert out["A"]["ci_low"] <= out["A"]["mean"] <= out["A"]["ci_high"]
    assert out["(blank)"]["n"] == 1 and out["(blank)"]["ci_low"] is None
    assert out["(missing)"]["mean"] == 0.5 and out["(missing)"]["ci_note"] == "n < 3: no CI"


def test_metadata_errors(tmp_path):
    with pytest.raises(InputError, match="no 'case' column"):
        read_metadata(_metadata(tmp_path, [("a", "b")], header=("id", "site")))
    with pytest.raises(InputError, match="--by sex: no such column"):
        read_metadata(_metadata(tmp_path, [("a", "A", "X")]), ["sex"])
    with pytest.raises(InputError, match="listed twice"):
        read_metadata(_metadata(tmp_path, [("a", "A", "X"), ("a", "B", "Y")]))


def test_evaluate_by_site_and_scanner(tmp_path):
    folders = shifted_cohort(tmp_path, SIDES, {"pred": [1] * len(SIDES)})
    meta = _metadata(tmp_path, [(f"case{i:02d}", s, "S1" if i % 2 else "S2")
                                for i, s in enumerate(SITES)])
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(folders["pred"]), "--ref", str(folders["ref"]),
                 "-o", str(out), "--metadata", str(meta), "--by", "site", "--by", "scanner",
                 "--min-n", "3", "--workers", "1"]) == 0
    with open(out / "subgroups.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "dice"]
    site_b = next(r for r in rows if (r["by"], r["group"]) == ("site", "B"))
    assert site_b["n"] == "3" and float(site_b["mean"]) == pytest.approx(np.mean(DICE[3:6]))
    s1 = next(r for r in rows if (r["by"], r["group"]) == ("scanner", "S1"))
    assert s1["n"] == "3" and float(s1["mean"]) == pytest.approx(np.mean(DICE[1::2]))
    blank = next(r for r in rows if r["group"] == "(blank)")
    assert blank["n"] == "1" and blank["ci_low"] == "" and blank["ci_note"]
    html = (out / "report.html").read_text()
    assert "<h3>by site</h3>" in html and "<h3>by scanner</h3>" in html and "[no CI]" in html
    doc = json.loads((out / "summary.json").read_text())
    assert doc["subgroups"]["by"] == ["site", "scanner"]


def test_dicom_tags_as_metadata_without_identifiers(tmp_path):
    folder = tmp_path / "dicom"
    (folder / "case00").mkdir(parents=True)
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "case00" / "1.dcm")
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", folder / "case01.dcm")
    table = dicom_metadata_table(folder)
    assert table["case00"] == {"case": "case00", "Manufacturer": "GE MEDICAL SYSTEMS",
                               "ManufacturerModelName": "RHAPSODE", "SliceThickness": "5",
                               "PatientSex": "O"}
    assert table["case01"]["Manufacturer"] == "TOSHIBA_MEC"
    assert set(dicom_metadata(folder / "case01.dcm")) == set(DICOM_TAGS)
    text = json.dumps(table)
    assert "CompressedSamples" not in text  # the files' PatientName never leaves the header
    with pytest.raises(InputError, match="no DICOM file"):
        (tmp_path / "empty").mkdir()
        dicom_metadata(tmp_path / "empty")


def test_evaluate_by_dicom_manufacturer(tmp_path):
    folders = shifted_cohort(tmp_path, [8, 10], {"pred": [1, 1]})
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", dicom / "case00.dcm")
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", dicom / "case01.dcm")
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(folders["pred"]), "--ref", str(folders["ref"]),
                 "-o", str(out), "--dicom-metadata", str(dicom), "--by", "Manufacturer",
                 "--workers", "1"]) == 0
    with open(out / "subgroups.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "dice"]
    assert {r["group"]: float(r["mean"]) for r in rows} == pytest.approx(
        {"GE MEDICAL SYSTEMS": 7 / 8, "TOSHIBA_MEC": 9 / 10})
    assert "CompressedSamples" not in (out / "report.html").read_text()
