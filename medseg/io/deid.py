"""De-identification of derived DICOM objects by the Basic Application Level Confidentiality
Profile (DICOM PS3.15 Annex E), applied recursively through every sequence.

The profile's table (which attribute gets which action) comes from the ``dicom-anonymizer``
package (KitwareMedical), which ships it per edition of the standard; the actions are applied
here because that package only acts on top-level attributes. Options of the profile used:

* **Retain UIDs Option**: UIDs (action U) are kept, so a SEG still references its source
  series and study; the SEG's own UIDs are new anyway.
* **Retain Longitudinal Temporal Information with Full Dates Option** only with
  ``keep_dates=True``.
* Institution name, address and department only with ``keep_institution=True``.

Actions: X removes the attribute; Z empties it; D replaces it with a dummy value of its VR;
the combined ones (X/Z, X/D, X/Z/D, Z/D) remove it, or empty / replace it where the object
needs it present (:data:`REQUIRED`). Private attributes are removed. Curve and overlay groups
(50xx, 60xx) are removed. Attributes outside the profile (for example Manufacturer,
Modality, the segment descriptions, geometry) are kept.

The table is extended (:func:`extra_action`, action X at every depth) where the published
profile leaves identifying text behind (issue 24, item 16):

* every ``*IssuerOf*`` attribute (``IssuerOfAccessionNumberSequence``,
  ``IssuerOfPatientIDQualifiersSequence`` and their kin: institution identifiers) and the
  issuer macro's ``AssigningFacilitySequence``, ``AssigningJurisdictionCodeSequence``,
  ``AssigningAgencyOrDepartmentCodeSequence``, ``UniversalEntityID``,
  ``LocalNamespaceEntityID``;
* every code sequence of a procedure, protocol, reason, requesting service or diagnosis
  (``ProcedureCodeSequence``, ``ReasonForPerformedProcedureCodeSequence``,
  ``RequestingServiceCodeSequence``, ...), whose free-text ``CodeMeaning`` can name the
  patient ("CT for John Doe"), and ``PatientSizeCodeSequence``;
* ``PatientBreedDescription``, ``PatientBreedCodeSequence``, ``BreedRegistrationSequence``.
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset
from pydicom.tag import Tag

#: the edition of PS3.15 Annex E used (a module of ``dicom-anonymizer``)
PROFILE_EDITION = "dicomfields_2026c"

#: attributes a DICOM SEG must hold (type 1 or 2): emptied or replaced, never removed
REQUIRED = {"ContentDate", "ContentTime", "DeviceSerialNumber", "StudyDate", "StudyTime",
            "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
            "ReferringPhysicianName", "StudyID", "SeriesDate", "SeriesTime",
            "ContentCreatorName", "InstanceCreationDate", "InstanceCreationTime"}
#: attributes that must not be empty (type 1): replaced with a dummy value
TYPE1 = {"ContentDate", "ContentTime", "DeviceSerialNumber"}
INSTITUTION = {"InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
               "InstitutionalDepartmentTypeCodeSequence"}
#: removed although the profile's table does not list them (see the module's docstring)
EXTRA_REMOVED = frozenset({
    "AssigningFacilitySequence", "AssigningJurisdictionCodeSequence",
    "AssigningAgencyOrDepartmentCodeSequence", "UniversalEntityID", "LocalNamespaceEntityID",
    "RequestingServiceCodeSequence", "PatientSizeCodeSequence", "PatientBreedDescription",
    "PatientBreedCodeSequence", "BreedRegistrationSequence"})
#: code sequences whose meanings are free text about the patient's care
_CARE_CODES = re.compile(r".*(Procedure|Protocol|Reason|Requesting|Diagnos).*CodeSequence")
_DATE_VRS = {"DA", "DT", "TM"}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
             "UC", "UI", "UR", "UT"}
_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y",
          "PN": "ANONYMOUS", "UI": "2.25.0", "IS": "0", "DS": "0"}


def _actions() -> dict[int, str]:
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    tables = dicom_anonymization_database_selector(PROFILE_EDITION)
    out: dict[int, str] = {}
    for category, action in (("X_TAGS", "X"), ("Z_TAGS", "Z"), ("D_TAGS", "D"),
                             ("U_TAGS", "U"), ("Z_D_TAGS", "ZD"), ("X_Z_TAGS", "XZ"),
                             ("X_D_TAGS", "XD"), ("X_Z_D_TAGS", "XZD"),
                             ("X_Z_U_STAR_TAGS", "U")):
        for tag in tables[category]:
            if len(tag) == 2:
                out[int(Tag(tag[0], tag[1]))] = action
    return out


def extra_action(keyword: str) -> str | None:
    """"X" for an attribute this module removes beyond the profile's table, else None."""
    if "IssuerOf" in keyword or keyword in EXTRA_REMOVED or _CARE_CODES.fullmatch(keyword):
        return "X"
    return None


def _dummy(vr: str) -> object:
    if vr == "SQ":
        return []
    return _DUMMY.get(vr, "ANONYMOUS" if vr in ("LO", "SH", "ST", "LT", "UT", "CS") else None)


def deidentify(ds: Dataset, *, keep_dates: bool = False,
               keep_institution: bool = False) -> Dataset:
    """Apply the profile to ``ds`` in place (file meta left alone) and return it."""
    actions = _actions()
    keep: set[str] = set()
    if keep_institution:
        keep |= INSTITUTION

    def visit(dataset: Dataset) -> None:
        for elem in list(dataset):
            tag = int(elem.tag)
            group = tag >> 16
            if elem.tag.is_private or (group & 0xFF00) in (0x5000, 0x6000):
                del dataset[elem.tag]
                continue
            keyword = elem.keyword
            action = actions.get(tag) or extra_action(keyword)
            if action is not None and keyword not in keep and not (
                    keep_dates and elem.VR in _DATE_VRS):
                _apply(dataset, elem, action, keyword)
                if elem.tag not in dataset:
                    continue
            if elem.VR == "SQ" and elem.tag in dataset:
                for item in dataset[elem.tag].value:
                    visit(item)

    visit(ds)
    return ds


def _apply(dataset: Dataset, elem, action: str, keyword: str) -> None:
    """One attribute: ``action`` is U, X, Z, D or a combination such as XZD."""
    if action == "U":
        return  # Retain UIDs Option
    if "X" in action and keyword not in REQUIRED:
        del dataset[elem.tag]
    elif action == "D" or keyword in TYPE1:
        value = _dummy(elem.VR)
        if value is None:
            del dataset[elem.tag]
        else:
            elem.value = value
    else:  # Z, or an attribute the object needs present: emptied
        elem.value = [] if elem.VR == "SQ" else ("" if elem.VR in _TEXT_VRS else None)
