"""What the published Annex E table leaves in a SEG (issue 24, item 16): institution
identifiers in the issuer sequences (``IssuerOfAccessionNumberSequence``,
``IssuerOfPatientIDQualifiersSequence`` with its ``AssigningFacilitySequence``), free-text
``CodeMeaning`` of procedure, reason, requesting-service and patient-size codes ("CT for John
Doe"), and ``PatientBreedDescription``. They are planted at every depth, and no output byte
holds one: the local SEG, the copy that --push sends, and a dataset de-identified directly."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from medseg.engine.segmenter import Segmentation
from medseg.io.deid import deidentify
from medseg.io.dicom import read_dicom
from medseg.io.dicom_seg import write_dicom_seg
from medseg.io.dicom_write import write_dicom_series
from medseg.pacs.store import same_study_seg
from medseg.volume import LabelMap, Volume


def _code(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "99ZQ", "99LOCAL", meaning
    return item


def plant(ds: Dataset, depth: str) -> set[str]:
    """Item 16's attributes in ``ds``, each value naming ``depth``; returns the values."""
    mark = f"ZQ16{depth}"
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = f"{mark}-HOSPITAL-A"
    issuer.UniversalEntityID = f"{mark}.OID.1"
    issuer.UniversalEntityIDType = "ISO"
    ds.IssuerOfAccessionNumberSequence = [issuer]
    facility = Dataset()
    facility.LocalNamespaceEntityID = f"{mark}-FACILITY"
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = f"{mark}-ENTITY"
    qualifiers.IdentifierTypeCode = "MR"
    qualifiers.AssigningFacilitySequence = [facility]
    qualifiers.AssigningJurisdictionCodeSequence = [_code(f"{mark}-JURISDICTION")]
    ds.IssuerOfPatientIDQualifiersSequence = [qualifiers]
    ds.ProcedureCodeSequence = [_code(f"CT abdomen for John Doe {mark}-PROCEDURE")]
    ds.ReasonForPerformedProcedureCodeSequence = [_code(f"fall at home of J. Doe {mark}-REASON")]
    ds.RequestingServiceCodeSequence = [_code(f"ward 7 bed 3 {mark}-SERVICE")]
    ds.PatientSizeCodeSequence = [_code(f"small for John Doe {mark}-SIZE")]
    ds.PatientBreedDescription = f"{mark}-BREED"
    return {f"{mark}-HOSPITAL-A", f"{mark}.OID.1", f"{mark}-FACILITY", f"{mark}-ENTITY",
            f"{mark}-JURISDICTION", f"{mark}-PROCEDURE", f"{mark}-REASON", f"{mark}-SERVICE",
            f"{mark}-SIZE", f"{mark}-BREED", "John Doe", "J. Doe"}


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


def test_item_16_attributes_are_removed_at_every_depth():
    ds = Dataset()
    planted = plant(ds, "D0")
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3"
    planted |= plant(ref, "D1")
    step = Dataset()
    planted |= plant(step, "D2")
    ref.ReferencedPerformedProcedureStepSequence = [step]
    deeper = Dataset()
    planted |= plant(deeper, "D3")
    step.ContributingEquipmentSequence = [deeper]
    ds.ReferencedSeriesSequence = [ref]
    before = _bytes(ds).decode("latin-1")
    assert all(value in before for value in planted)
    deidentify(ds)
    after = _bytes(ds).decode("latin-1")
    assert not [value for value in planted if value in after]
    # what carries no identity stays: the reference to the source
    assert ds.ReferencedSeriesSequence[0].ReferencedSOPInstanceUID == "1.2.3"


@pytest.fixture(scope="module")
def planted_seg(tmp_path_factory):
    """A real series with item 16's attributes at top level and inside a sequence, and its
    SEG as medseg writes it."""
    root = tmp_path_factory.mktemp("deid16")
    arr = np.random.default_rng(16).normal(0, 20, size=(16, 14, 4)).astype(np.int16)
    paths = write_dicom_series(Volume.from_spatial(arr, np.diag([1.2, 1.2, 2.5, 1.0])),
                               root / "series", patient_name="DOE^JOHN")
    planted: set[str] = set()
    for path in paths:
        ds = pydicom.dcmread(path)
        planted |= plant(ds, "S0")
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        ref.ReferencedSOPInstanceUID = "1.2.3.4"
        planted |= plant(ref, "S1")
        ds.ReferencedStudySequence = [ref]
        ds.save_as(path)
    volume = read_dicom(root / "series")
    labels = np.zeros(volume.spatial_shape, np.uint8)
    labels[4:10, 3:9, 1:3] = 1
    result = Segmentation(LabelMap(labels[None], volume.affine), {0: "background", 1: "liver"})
    seg = write_dicom_seg(result, root / "series", root / "seg.dcm")
    return root, seg, planted


def test_no_item_16_value_survives_in_the_local_seg_or_the_pushed_copy(planted_seg):
    root, seg, planted = planted_seg
    source = b"".join(p.read_bytes() for p in sorted((root / "series").iterdir()))
    assert any(value.encode() in source for value in planted)  # the source does hold them
    data = seg.read_bytes().decode("latin-1")
    assert not [value for value in planted if value in data]
    pushed = _bytes(same_study_seg(seg, root / "series")).decode("latin-1")
    assert not [value for value in planted if value in pushed]
    decoded = hd.seg.segread(seg)  # still a valid SEG of its source
    assert decoded.SegmentSequence[0].SegmentLabel == "liver"
