"""The DICOM SEG is de-identified by PS3.15 Annex E's Basic Profile, recursively: a value is
planted in every attribute of the profile (top level and inside sequences, including the
ContributingEquipmentSequence that used to leak the institution) of a real series, the series
is segmented with --dicom-seg, and no planted value appears in any output byte."""

from __future__ import annotations

import copy

import highdicom as hd
import numpy as np
import pydicom
import pytest
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from medseg.cli import main
from medseg.io import read_label_map
from medseg.io.deid import PROFILE_EDITION, deidentify
from medseg.io.dicom_write import write_dicom_series
from medseg.volume import Volume
from tests.test_batch_resilience import write_tiny_bundle

PLANTABLE = {"LO", "SH", "PN", "LT", "ST", "UT", "CS", "DA", "TM", "DT", "AS", "AE", "UC"}
#: attributes the writer or reader interprets (planting nonsense there breaks the series)
SKIP = {"SpecificCharacterSet", "PatientSex", "Modality", "ImageType", "PhotometricInterpretation",
        "PatientOrientation", "FrameOfReferenceUID", "ConversionType", "BodyPartExamined"}


def _planted_value(vr: str, i: int) -> str:
    if vr == "DA":
        return f"1931{(i % 12) + 1:02d}{(i % 27) + 1:02d}"
    if vr == "TM":
        return f"07{i % 60:02d}{(i * 7) % 60:02d}"
    if vr == "DT":
        return f"1931010107{i % 60:02d}00"
    if vr == "AS":
        return f"{i % 900 + 100:03d}Y"
    if vr == "CS":
        return f"ZQ{i:04d}"
    if vr == "PN":
        return f"ZQPHI{i:04d}^ZQGIVEN"
    return f"ZQPHI{i:04d}"


def profile_attributes() -> list[tuple[int, str, str]]:
    tables = dicom_anonymization_database_selector(PROFILE_EDITION)
    out = []
    for tag in tables["ALL_TAGS"]:
        if len(tag) != 2:
            continue
        t = int(Tag(*tag))
        try:
            vr, keyword = dictionary_VR(t), keyword_for_tag(t)
        except KeyError:
            continue
        if vr in PLANTABLE and keyword and keyword not in SKIP:
            out.append((t, vr, keyword))
    return out


def plant(ds: Dataset, attributes, offset: int) -> dict[str, str]:
    planted = {}
    for i, (tag, vr, _keyword) in enumerate(attributes):
        if Tag(tag) in ds and int(tag) >> 16 in (0x0020,):  # keep UIDs/geometry groups intact
            continue
        value = _planted_value(vr, i + offset)
        ds.add_new(tag, vr, value)
        planted[f"{tag:08X}"] = value
    return planted


@pytest.fixture(scope="module")
def planted_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted") / "study"
    rng = np.random.default_rng(5)
    arr = rng.normal(0, 30, size=(20, 18, 5)).astype(np.int16)
    arr[5:12, 4:11, 1:4] += 400
    attributes = profile_attributes()
    assert len(attributes) > 150  # the profile, not a short list
    planted: dict[str, str] = {}
    for path in write_dicom_series(Volume.from_spatial(arr, np.diag([1.5, 1.5, 3.0, 1.0])),
                                   folder):
        ds = pydicom.dcmread(path)
        planted |= plant(ds, attributes, 0)
        nested = Dataset()
        planted |= plant(nested, attributes, 5000)
        nested.Manufacturer = "ACME"
        ds.ContributingEquipmentSequence = [nested]
        deeper = Dataset()
        planted |= plant(deeper, attributes, 9000)
        ds.ReferencedStudySequence = [Dataset()]
        ds.ReferencedStudySequence[0].ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID = "1.2.3.4.5"
        ds.ReferencedStudySequence[0].ContributingEquipmentSequence = [deeper]
        ds.save_as(path)
    return folder, planted


def test_no_planted_value_survives_in_any_output(planted_series, tmp_path):
    folder, planted = planted_series
    out = tmp_path / "out"
    bundle = write_tiny_bundle(tmp_path / "bundle")
    assert main(["segment", str(folder), "-m", str(bundle), "-o", str(out), "--dicom-seg",
                 "--quiet"]) == 0
    seg_path = out / "study_seg.dcm"
    assert seg_path.is_file()
    values = {v for v in planted.values() if v.startswith("ZQ")}
    for f in out.iterdir():
        data = f.read_bytes().decode("latin-1")
        leaked = sorted(v for v in values if v in data)
        assert not leaked, f"{f.name} leaks {leaked[:5]}"
    seg = pydicom.dcmread(seg_path)
    for elem in seg.iterall():  # dates planted in 1931 are gone too
        if elem.VR in ("DA", "DT"):
            assert "1931" not in str(elem.value), elem
    # still a usable SEG: references the source series, same voxels as the mask
    source = pydicom.dcmread(next(folder.iterdir()))
    refs = {s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence}
    assert source.SeriesInstanceUID in refs and seg.StudyInstanceUID == source.StudyInstanceUID
    decoded = hd.seg.segread(seg_path)
    mask = read_label_map(out / "study.nii.gz").data
    frames = decoded.get_volume(combine_segments=True, relabel=True).array
    assert int((frames > 0).sum()) == int((mask > 0).sum()) > 0


def test_options_keep_dates_and_institution_only_when_asked():
    ds = Dataset()
    ds.StudyDate = "20240102"
    ds.InstitutionName = "General Hospital"
    ds.PatientName = "DOE^JANE"
    ds.StudyDescription = "jane's scan"
    item = Dataset()
    item.InstitutionName = "General Hospital"
    item.InstitutionAddress = "1 Main St"
    ds.ContributingEquipmentSequence = [item]
    plain = deidentify(copy.deepcopy(ds))
    assert plain.StudyDate == "" and plain.PatientName == ""
    assert "InstitutionName" not in plain and "StudyDescription" not in plain
    assert "InstitutionName" not in plain.ContributingEquipmentSequence[0]
    assert "InstitutionAddress" not in plain.ContributingEquipmentSequence[0]
    kept = deidentify(copy.deepcopy(ds), keep_dates=True, keep_institution=True)
    assert kept.StudyDate == "20240102" and kept.InstitutionName == "General Hospital"
    assert kept.ContributingEquipmentSequence[0].InstitutionAddress == "1 Main St"
    assert kept.PatientName == "" and "StudyDescription" not in kept


def test_keep_dates_flag_keeps_only_dates(planted_series, tmp_path):
    folder, _planted = planted_series
    out = tmp_path / "out"
    bundle = write_tiny_bundle(tmp_path / "bundle")
    assert main(["segment", str(folder), "-m", str(bundle), "-o", str(out), "--dicom-seg",
                 "--keep-dates", "--quiet"]) == 0
    seg = pydicom.dcmread(out / "study_seg.dcm")
    source = pydicom.dcmread(next(folder.iterdir()))
    assert seg.StudyDate == source.StudyDate != ""
    assert seg.PatientName == "" and "InstitutionName" not in seg
