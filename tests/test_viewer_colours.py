"""The viewer's class colours are the DICOM SEG's (issue 25, point 7): the label table the
NiiVue component receives holds medseg's colour of each label value, and the SEG written for
the same mask recommends exactly that colour (as CIELab) for each segment; the viewer's
NIfTI payload keeps the mask's grid and values."""

from __future__ import annotations

import gzip
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

pytest.importorskip("streamlit")

from medseg.engine.segmenter import Segmentation
from medseg.io import read_image
from medseg.io.colours import label_colour
from medseg.io.dicom_seg import write_dicom_seg
from medseg.volume import LabelMap
from medseg_ui.niivue_viewer import label_table, nifti_bytes, voxel_of

SERIES = Path(__file__).resolve().parents[1] / "sample_data" / "dicom" / "ct_phantom_001"


def test_viewer_colours_are_the_seg_colours(tmp_path):
    image = read_image(SERIES)
    labels = np.zeros(image.spatial_shape, dtype=np.uint8)
    labels[2:8, 2:8, 1:4], labels[10:16, 10:16, 2:5], labels[20:24, 3:9, 4:7] = 1, 2, 9
    names = {0: "background", 1: "liver", 2: "spleen", 9: "aorta"}
    result = Segmentation(LabelMap.from_spatial(labels, image.affine), names)
    table = label_table(names)
    assert [row["value"] for row in table] == [1, 2, 9]  # background has no colour
    seg = pydicom.dcmread(write_dicom_seg(result, SERIES, tmp_path / "seg.dcm"))
    by_name = {s.SegmentLabel: list(s.RecommendedDisplayCIELabValue)
               for s in seg.SegmentSequence}
    for row in table:
        assert tuple(row["rgb"]) == label_colour(row["value"])
        assert by_name[row["name"]] == list(hd.color.CIELabColor.from_rgb(*row["rgb"]).value)


def test_viewer_payload_keeps_grid_and_values():
    image = read_image(SERIES)
    img = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_bytes(image)))
    np.testing.assert_allclose(img.affine, image.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(img.dataobj), image.array[0])
    centre = image.affine @ np.array([3, 4, 2, 1.0])
    assert voxel_of(image, centre[:3]) == (3, 4, 2)
