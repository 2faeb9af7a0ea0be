"""DICOM SEG segments carry real SNOMED CT codes (category, type, laterality) and the UI's
display colours, so a PACS or viewer can tell the liver from the aorta."""

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from medseg.cli import main
from medseg.io.colours import label_colour
from medseg.io.seg_codes import codes_for_name

ROOT = Path(__file__).resolve().parent.parent
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"


@pytest.mark.parametrize(("name", "category", "kind", "modifier"), [
    ("liver", "91723000", "10200004", None),
    ("kidney_left", "91723000", "64033007", "7771000"),
    ("Kidney Right", "91723000", "64033007", "24028007"),
    ("inferior_vena_cava", "91723000", "64131007", None),
    ("liver_lesion", "49755003", "52988006", None),
    ("grey_matter", "85756007", "389081007", None),
    ("white_matter", "85756007", "389080008", None),
    ("csf", "91720002", "65216001", None),
    ("adrenal_gland_right", "91723000", "23451007", "24028007"),
    ("something_unheard_of", "85756007", "85756007", None),
])
def test_class_names_map_to_dicom_snomed_codes(name, category, kind, modifier):
    codes = codes_for_name(name)
    assert codes.category[:2] == ("SCT", category)
    assert codes.type[:2] == ("SCT", kind)
    assert (codes.modifier[1] if codes.modifier else None) == modifier


@pytest.fixture(scope="module")
def seg_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg")
    assert main(["segment", str(SERIES), "-m", "abdomen_ct", "--dicom-seg", "-o", str(out),
                 "--quiet"]) == 0
    return out / "ct_phantom_001_seg.dcm"


def test_seg_segments_have_codes_and_ui_colours(seg_file):
    seg = hd.seg.segread(seg_file)
    by_label = {d.SegmentLabel: d for d in seg.SegmentSequence}
    assert {"liver", "aorta", "kidney_left", "kidney_right"} <= set(by_label)
    liver = by_label["liver"]
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert liver.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning == "Anatomical Structure"
    assert by_label["aorta"].SegmentedPropertyTypeCodeSequence[0].CodeValue == "15825003"
    left, right = (by_label[k].SegmentedPropertyTypeCodeSequence[0]
                   .SegmentedPropertyTypeModifierCodeSequence[0]
                   for k in ("kidney_left", "kidney_right"))
    assert (left.CodeValue, right.CodeValue) == ("7771000", "24028007")
    types = {d.SegmentedPropertyTypeCodeSequence[0].CodeValue for d in seg.SegmentSequence}
    assert len(types) >= len(by_label) - 1  # only the two kidneys share a type
    names = {n: v for v, n in {1: "liver", 2: "spleen", 3: "kidney_right", 4: "kidney_left",
                               5: "aorta", 6: "vertebra", 7: "liver_lesion"}.items()}
    for label, desc in by_label.items():
        rgb = hd.color.CIELabColor.from_dicom_value(
            list(desc.RecommendedDisplayCIELabValue)).to_rgb()
        assert np.abs(np.subtract(rgb, label_colour(names[label]))).max() <= 2


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian dicom3tools) not installed")
def test_dciodvfy_reports_no_errors(seg_file):
    run = subprocess.run(["dciodvfy", str(seg_file)], capture_output=True, text=True,
                         timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    assert [line for line in lines if line.startswith("Error")] == []
    assert not [line for line in lines if "not present in standard DICOM IOD" in line
                and "Modifier" in line]
