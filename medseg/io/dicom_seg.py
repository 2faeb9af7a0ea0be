"""DICOM SEG output (highdicom) referencing the source series of a segmented DICOM input.

By default the SEG is de-identified by DICOM PS3.15 Annex E's Basic Application Level
Confidentiality Profile, recursively through sequences, keeping UIDs so it still references
its source (:mod:`medseg.io.deid`); ``keep_patient_data=True`` keeps what highdicom copies from
the source.
"""

from __future__ import annotations

from collections.abc import Mapping
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
        series_description="medseg segmentation",
    )
    if not keep_patient_data:
        deidentify(seg, keep_dates=keep_dates, keep_institution=keep_institution)
    with atomic_path(target) as tmp:
        seg.save_as(tmp)
    return Path(target)
