"""The SEG as stored into its source study (STOW-RS).

medseg's SEG file (:func:`medseg.io.dicom_seg.write_dicom_seg`) already references every
source instance and carries the source's StudyInstanceUID and FrameOfReferenceUID; by default
it blanks the patient's identity. A derived object stored into the same study must agree with
that study's Patient and General Study modules (PS3.3 C.7.1.1, C.7.2.1: the same patient,
the same study), so the copy sent to the server takes exactly :data:`SAME_STUDY` from the
source series; every other attribute of the Patient and Study information entities (patient
study, clinical trial, other names and IDs, comments, descriptions...) is removed from it. The
local file is left as written.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

from medseg.io.dicom import series_datasets
from medseg.pacs.client import Server, ServerError, server_errors

#: Patient module (type 2) and General Study module attributes a SEG in the source's study
#: carries, copied from the source (empty when the source has none)
SAME_STUDY: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName",
)


#: the modules of the Patient and Study information entities (as highdicom copies them)
_IE_MODULES = ("patient", "general-study", "patient-study", "clinical-trial-subject",
               "clinical-trial-study")
#: used when highdicom's module table cannot be read
_FALLBACK_IE = ("IssuerOfPatientID", "OtherPatientIDsSequence", "OtherPatientNames",
                "PatientBirthTime", "PatientComments", "EthnicGroupCodeSequence",
                "StudyDescription", "PatientAge", "PatientSize", "PatientWeight",
                "AdditionalPatientHistory", "AdmittingDiagnosesDescription", "Occupation",
                "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy", "ClinicalTrialSubjectID",
                "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialSiteID")


def patient_study_keywords() -> frozenset[str]:
    """Top-level keywords of the Patient and Study information entities."""
    try:
        from highdicom._standard_utils import get_module_attribute_map

        table = get_module_attribute_map()
        return frozenset(str(item["keyword"]) for module in _IE_MODULES
                         for item in table[module] if not item["path"])
    except (ImportError, KeyError, TypeError):
        return frozenset(_FALLBACK_IE + SAME_STUDY)


def same_study_seg(seg_file: str | Path, source_series: str | Path) -> pydicom.Dataset:
    """The SEG of ``seg_file`` with :data:`SAME_STUDY` taken from the source series folder and
    no other Patient/Study attribute."""
    seg = pydicom.dcmread(seg_file)
    source = series_datasets(source_series)[0]
    if str(seg.StudyInstanceUID) != str(source.StudyInstanceUID):
        raise ServerError(str(seg_file), "the SEG belongs to another study than its source")
    for keyword in patient_study_keywords() - set(SAME_STUDY):
        if keyword in seg:
            delattr(seg, keyword)
    for keyword in SAME_STUDY:
        value = source.get(keyword)
        setattr(seg, keyword, "" if value is None else value)
    return seg


def push_seg(client, server: Server, seg: pydicom.Dataset) -> str:
    """STOW-RS ``seg`` into its own study; return its SOPInstanceUID. One request: the server
    stores the instance whole or not at all, and a refusal is an error naming the server."""
    study, uid = str(seg.StudyInstanceUID), str(seg.SOPInstanceUID)
    with server_errors(server, f"storing the SEG into study {study}"):
        answer = client.store_instances(datasets=[seg], study_instance_uid=study)
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reason = failed[0].get("FailureReason", "?")
        raise ServerError(server.url, f"storing the SEG into study {study}: refused "
                                      f"(failure reason {reason})")
    stored = [str(item.get("ReferencedSOPInstanceUID", ""))
              for item in (answer.get("ReferencedSOPSequence") or [] if answer else [])]
    if uid not in stored:  # only a confirmed instance counts as stored
        raise ServerError(server.url, f"storing the SEG into study {study}: the server did "
                                      "not confirm the instance (no ReferencedSOPSequence "
                                      "naming it in its answer)")
    return uid
