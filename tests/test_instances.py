"""Instance and panoptic output on label maps with known components and known world geometry."""

import contextlib
import csv
import json

import numpy as np
import pytest

from medseg.cli import main
from medseg.engine.instances import find_instances
from medseg.errors import MedsegError
from medseg.io import read_image, read_label_map
from medseg.volume import LabelMap, affine_from_geometry
from tests.conftest import oblique_affine

with contextlib.suppress(pytest.skip.Exception):  # skipped when streamlit is missing
    from tests.test_app import models_dir  # noqa: F401  (the app's bundle fixture)

BRAIN_TS = "sample_data/Dataset001_BrainTissue/imagesTs/brain_100_0000.nii.gz"


def _three_lesions_and_organ(affine):
    """Class 2 ("lesion"): a 3x3x3 cube, a 2x2x2 cube and a single voxel touching the small
    cube only diagonally; class 1 ("organ"): one slab that is not split."""
    data = np.zeros((20, 16, 12), dtype=np.uint8)
    data[2:5, 3:6, 4:7] = 2     # 27 voxels, centre index (3, 4, 5)
    data[10:12, 10:12, 1:3] = 2  # 8 voxels, centre (10.5, 10.5, 1.5)
    data[12, 12, 3] = 2          # 1 voxel, corner-touching the 2x2x2 cube
    data[15:18, 0:16, 0:12] = 1  # organ
    return LabelMap(data[None], affine)


@pytest.mark.parametrize("affine", [
    pytest.param(affine_from_geometry((1.0, 1.0, 1.0), (0, 0, 0)), id="identity"),
    pytest.param(oblique_affine(), id="oblique-anisotropic"),
    pytest.param(affine_from_geometry((0.8, 0.8, 3.0), (10, 20, -5), lps=True), id="lps"),
])
def test_instances_table_geometry(affine):
    labels = _three_lesions_and_organ(affine)
    found = find_instances(labels, [2], label_names={1: "organ", 2: "lesion"})
    assert [(i.instance_id, i.index, i.voxels) for i in found.table] == [(1, 1, 27), (2, 2, 8),
                                                                         (3, 3, 1)]
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000
    big, small, single = found.table
    assert big.volume_ml == pytest.approx(27 * voxel_ml)
    assert big.name == "lesion" and big.label == 2 and big.panoptic_id == 2001
    # centroids in world mm: the affine applied to the known index centres
    for inst, centre in ((big, (3, 4, 5)), (small, (10.5, 10.5, 1.5)), (single, (12, 12, 3))):
        expected = affine @ np.array([*centre, 1.0])
        np.testing.assert_allclose(inst.centroid_mm, expected[:3], atol=1e-9)
    assert big.bbox_min == (2, 3, 4) and big.bbox_max == (4, 5, 6)
    assert single.bbox_min == single.bbox_max == (12, 12, 3)
    assert found.counts() == {2: 3}

    inst = found.instance_map.data
    pan = found.panoptic_map.data
    assert found.instance_map.same_grid(labels) and found.panoptic_map.same_grid(labels)
    assert set(np.unique(inst)) == {0, 1, 2, 3}
    assert (inst[labels.data == 1] == 0).all()
    assert pan[3, 4, 5] == 2001 and pan[10, 10, 1] == 2002 and pan[12, 12, 3] == 2003
    assert (pan[labels.data == 1] == 1000).all()  # "stuff": class 1, instance 0
    assert (pan[labels.data == 0] == 0).all()
    np.testing.assert_array_equal(pan // 1000, labels.data)


def test_connectivity_and_min_voxels():
    labels = _three_lesions_and_organ(np.eye(4))
    full = find_instances(labels, [2], connectivity=3)
    assert [i.voxels for i in full.table] == [27, 9]  # the diagonal voxel joins the cube
    big_only = find_instances(labels, [2], min_voxels=5)
    assert [i.voxels for i in big_only.table] == [27, 8]
    assert big_only.instance_map.data[12, 12, 3] == 0
    assert big_only.panoptic_map.data[12, 12, 3] == 2000
    both = find_instances(labels, [1, 2])
    assert [(i.label, i.index) for i in both.table] == [(1, 1), (2, 1), (2, 2), (2, 3)]
    assert both.counts() == {1: 1, 2: 3}
    with pytest.raises(MedsegError, match="connectivity"):
        find_instances(labels, [2], connectivity=4)
    with pytest.raises(MedsegError, match="positive"):
        find_instances(labels, [0])


def test_2d_instances_use_pixel_area():
    data = np.zeros((10, 8), dtype=np.uint8)
    data[1:3, 1:3] = 1
    data[6:9, 5:7] = 1
    labels = LabelMap(data[None], affine_from_geometry((0.5, 2.0), (100.0, -4.0)))
    found = find_instances(labels, [1])
    assert [i.voxels for i in found.table] == [6, 4]
    assert found.table[0].volume_ml == pytest.approx(6 * 0.5 * 2.0 / 1000)
    np.testing.assert_allclose(found.table[0].centroid_mm, (100 + 7 * 0.5, -4 + 5.5 * 2, 0))
    assert found.table[0].bbox_min == (6, 5) and found.table[0].bbox_max == (8, 6)
    assert "bbox_k_min" not in found.table[0].to_row()


def test_segment_cli_writes_instances_and_panoptic(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", BRAIN_TS, "-o", str(out), "-m", "brain_tissue", "--quiet",
                 "--instances", "csf", "1", "--min-instance-voxels", "5",
                 "--panoptic-offset", "10000"]) == 0
    text = capsys.readouterr().out
    assert "brain_100: ok" in text and "instances" in text
    image = read_image(BRAIN_TS)
    mask = read_label_map(out / "brain_100.nii.gz")
    inst = read_label_map(out / "brain_100_instances.nii.gz")
    pan = read_label_map(out / "brain_100_panoptic.nii.gz")
    for vol in (inst, pan):
        assert vol.same_grid(image)
    np.testing.assert_array_equal(pan.data // 10000, mask.data)
    assert ((inst.data > 0) <= np.isin(mask.data, [1, 3])).all()
    table = json.loads((out / "brain_100_instances.json").read_text())
    assert table["classes"] == [1, 3] and table["panoptic_offset"] == 10000
    assert all(r["voxels"] >= 5 for r in table["instances"])
    rows = list(csv.DictReader((out / "brain_100_instances.csv").open()))
    assert len(rows) == len(table["instances"]) == int(inst.data.max())
    assert {r["name"] for r in rows} == {"white_matter", "csf"}
    assert sum(int(r["voxels"]) for r in rows) == int((inst.data > 0).sum())
    first = table["instances"][0]
    assert len(first["centroid_mm"]) == 3 and len(first["bbox_min"]) == 3
    # an unknown class is a one-line error naming the available ones, before any segmenting
    assert main(["segment", BRAIN_TS, "-o", str(tmp_path / "none"), "-m", "brain_tissue",
                 "--quiet", "--instances", "tumour"]) == 2
    assert "grey_matter (2)" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_viewer_colours_by_instance(models_dir):
    """The Segment page's "Colour by instance" option: instance colours, count and table."""
    pytest.importorskip("streamlit")
    from tests.test_app import _app, _classes, _ok, _segment_sample, plain

    at = _app("1_Segment.py")
    _segment_sample(at)
    at.radio(key="viewer_mode").set_value("Slices (static images)").run()  # not NiiVue's
    before = [img.value for img in at.get("image")]
    _classes(at).unselect(2).unselect(3).run()  # white matter only
    at.checkbox(key="by_instance").check().run()
    _ok(at)
    caption = next(c.value for c in at.caption if "instances (" in c.value)
    assert plain("white_matter:") in caption  # class names are markdown-escaped
    table = next(d.value for d in at.dataframe if "centroid_x_mm" in d.value.columns)
    assert set(table["name"]) <= {"white_matter"}
    assert f"{len(table)} instances" in caption
    assert len(at.get("image")) == 3 and [img.value for img in at.get("image")] != before
    at.checkbox(key="by_instance").uncheck().run()
    _ok(at)
    assert not [d for d in at.dataframe if "centroid_x_mm" in d.value.columns]
