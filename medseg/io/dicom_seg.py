"""DICOM SEG output (highdicom) referencing the source series of a segmented DICOM input.

By default the SEG is de-identified by DICOM PS3.15 Annex E's Basic Application Level
Confidentiality Profile, recursively through sequences, keeping UIDs so it still references
its source (:mod:`medseg.io.deid`); ``keep_patient_data=True`` keeps what highdicom copies from
the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.errors import GeometryError, InputError
from medseg.io.atomic import atomic_path
from medseg.io.colours import label_colour
from medseg.io.deid import deidentify
from medseg.io.dicom import series_datasets
from medseg.io.seg_codes import SegmentCodes, codes_for_name

#: type-2 attributes highdicom copies from the source; empty when the source lacks them
_TYPE2 = ("AccessionNumber", "PatientBirthDate", "PatientSex", "ReferringPhysicianName",
          "StudyID", "StudyDate", "StudyTime", "PatientName", "PatientID")


#: the SEG's own series description (docs/pacs.md); not a patient attribute, so it is kept
SERIES_DESCRIPTION = "medseg segmentation"
#: PS3.16 CID 7050 codes of the profile and options applied (DeidentificationMethodCodeSequence)
BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")
RETAIN_UIDS = ("113110", "DCM", "Retain UIDs Option")
RETAIN_DATES = ("113106", "DCM", "Retain Longitudinal Temporal Information Full Dates Option")
RETAIN_INSTITUTION = ("113112", "DCM", "Retain Institution Identity Option")


def mark_deidentified(seg, *, created: datetime, keep_dates: bool = False,
                      keep_institution: bool = False):
    """After :func:`medseg.io.deid.deidentify`: say so as PS3.15 E.1.1 asks
    (PatientIdentityRemoved YES, DeidentificationMethod and its code sequence naming the
    profile and options), restore the SEG's own SeriesDescription, and give its ContentDate /
    ContentTime the time it was made (the SEG's creation, not the patient's exam)."""
    from pydicom.dataset import Dataset

    options = [RETAIN_UIDS] + ([RETAIN_DATES] if keep_dates else []) + (
        [RETAIN_INSTITUTION] if keep_institution else [])
    seg.PatientIdentityRemoved = "YES"
    # LO, one value per profile/option (64 characters each at most)
    seg.DeidentificationMethod = [f"medseg PS3.15 {BASIC_PROFILE[2]}"[:64]] + [
        o[2][:64] for o in options]
    items = []
    for code, scheme, meaning in [BASIC_PROFILE, *options]:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, scheme, meaning
        items.append(item)
    seg.DeidentificationMethodCodeSequence = items
    seg.SeriesDescription = SERIES_DESCRIPTION
    seg.ContentDate = created.strftime("%Y%m%d")
    seg.ContentTime = created.strftime("%H%M%S")
    return seg


def _with_type2_defaults(ds):
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def segment_description(number: int, value: int, name: str, codes: SegmentCodes):
    """One segment: label, SNOMED CT category/type (+ laterality), the UI's colour."""
    import highdicom as hd
    from pydicom.sr.codedict import codes as dicom_codes

    desc = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=hd.sr.CodedConcept(
            codes.category[1], codes.category[0], codes.category[2]),
        segmented_property_type=hd.sr.CodedConcept(codes.type[1], codes.type[0], codes.type[2]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="medseg", version=__version__,
            family=dicom_codes.cid7162.ArtificialIntelligence),
        display_color=hd.color.CIELabColor.from_rgb(*label_colour(value)),
    )
    if codes.modifier is not None:
        scheme, code, meaning = codes.modifier
        # laterality lives inside the type's code item (Segment Description macro)
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            hd.sr.CodedConcept(code, scheme, meaning)]
    return desc


def write_dicom_seg(result, source: str | Path, target: str | Path, *,
                    series: str | None = None, keep_patient_data: bool = False,
                    segment_codes: Mapping[str, SegmentCodes] | None = None,
                    keep_dates: bool = False, keep_institution: bool = False) -> Path:
    """Write ``result.labels`` (on the source series' grid) as a binary DICOM SEG.

    Each segment is coded from its class name (:mod:`medseg.io.seg_codes`) unless
    ``segment_codes`` gives the model's own codes, and carries the UI's display colour.
    Unless ``keep_patient_data``, the SEG is de-identified by the Basic Application Level
    Confidentiality Profile with the Retain UIDs option (:mod:`medseg.io.deid`)."""
    import highdicom as hd

    source = Path(source)
    datasets = [_with_type2_defaults(ds) for ds in series_datasets(source, series)]
    labels = result.labels.data
    if labels.ndim != 3 or labels.shape[2] != len(datasets):
        raise GeometryError(f"{source}: mask has {labels.shape} voxels but the series has "
                            f"{len(datasets)} slices")
    present = [int(v) for v in np.unique(labels) if v != 0]
    if not present:
        raise InputError(target, "the mask is empty; a DICOM SEG needs at least one segment")
    # (X, Y, Z) -> frames (Z, rows=Y, cols=X), each an integer label image
    frames = np.transpose(labels, (2, 1, 0))
    remap = np.zeros(int(labels.max()) + 1, dtype=np.uint8)
    descriptions = []
    for number, value in enumerate(present, start=1):
        remap[value] = number
        name = result.label_names.get(value, f"label_{value}")
        codes = (segment_codes or {}).get(name) or codes_for_name(name)
        descriptions.append(segment_description(number, value, name, codes))
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=remap[frames],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name="medseg",
        software_versions=__version__,
        device_serial_number="0",
        series_description=SERIES_DESCRIPTION,
    )
    if not keep_patient_data:
        deidentify(seg, keep_dates=keep_dates, keep_institution=keep_institution)
        mark_deidentified(seg, created=datetime.now(), keep_dates=keep_dates,
                          keep_institution=keep_institution)
    with atomic_path(target) as tmp:
        seg.save_as(tmp)
    return Path(target)
