"""Geometry round trips: world coordinates of voxel corners agree within 1e-4 mm."""

import pathlib
import random

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medseg.cli import main
from medseg.io import read_image, read_label_map, write_image
from medseg.io.atomic import atomic_path
from medseg.io.dicom_write import write_dicom_series
from medseg.volume import LabelMap, Volume, affine_from_geometry
from tests.conftest import assert_same_world, oblique_affine, random_volume


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_oblique_anisotropic_round_trip(tmp_path, registry, suffix):
    vol = random_volume(shape=(9, 8, 7), affine=oblique_affine(spacing=(0.6, 0.85, 3.3)))
    out = write_image(vol, tmp_path / f"img{suffix}")
    back = read_image(out, registry=registry)
    assert_same_world(vol, back)
    np.testing.assert_allclose(back.data, vol.data, rtol=1e-6)
    assert back.spacing == pytest.approx((0.6, 0.85, 3.3), abs=1e-5)


def test_lps_file_and_ras_file_describe_the_same_world(tmp_path, registry):
    """An ITK image (LPS+ on disk) and a NIfTI (RAS+) of the same data and world grid."""
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    img = sitk.GetImageFromArray(arr.T.copy())
    img.SetSpacing((0.8, 1.1, 2.0))
    img.SetOrigin((10.0, -5.0, 3.0))  # LPS
    img.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteImage(img, str(tmp_path / "lps.mha"))
    from_itk = read_image(tmp_path / "lps.mha", registry=registry)
    # the same image as NIfTI written independently with nibabel in RAS+
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.array(
        [[-0.8, 0, 0, 10.0], [0, 1.1, 0, -5.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]]
    )
    nib.save(nib.Nifti1Image(arr, ras), str(tmp_path / "ras.nii.gz"))
    from_nifti = read_image(tmp_path / "ras.nii.gz", registry=registry)
    assert from_itk.orientation == from_nifti.orientation == "RPS"
    assert_same_world(from_itk, from_nifti)
    np.testing.assert_array_equal(from_itk.data, from_nifti.data)
    # and a NIfTI stored with LPS-ordered axes keeps its flips
    lps_affine = affine_from_geometry([1, 1, 1], [0, 0, 0], np.diag([-1, -1, 1]))
    vol = Volume.from_spatial(arr, lps_affine)
    back = read_image(write_image(vol, tmp_path / "lps_axes.nii.gz"), registry=registry)
    assert back.orientation == "LPS"
    assert_same_world(vol, back)


def test_2d_nifti_and_png_round_trip(tmp_path, registry):
    arr = np.arange(12, dtype=np.uint8).reshape(4, 3)
    vol = Volume.from_spatial(arr, affine_from_geometry([0.3, 0.45], [5.0, 7.0]))
    back = read_image(write_image(vol, tmp_path / "slice.nii.gz"), registry=registry)
    assert back.spatial_ndim == 2
    assert_same_world(vol, back)
    np.testing.assert_array_equal(back.data, arr)
    png = read_image(write_image(LabelMap.from_volume(vol), tmp_path / "slice.png"),
                     registry=registry)
    assert png.spatial_ndim == 2
    np.testing.assert_array_equal(png.data, arr)  # x = column, y = row


def test_png_rgb_reads_as_three_channels(tmp_path, registry):
    from PIL import Image

    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[1, 2] = (10, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    vol = read_image(tmp_path / "rgb.png", registry=registry)
    assert vol.n_channels == 3 and vol.spatial_shape == (7, 5)
    assert tuple(vol.array[:, 2, 1]) == (10, 20, 30)


def test_4d_nifti_channels_round_trip(tmp_path, registry):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(6, 5, 4, 2)).astype(np.float32)
    aff = oblique_affine()
    nib.save(nib.Nifti1Image(data, aff), str(tmp_path / "multi.nii.gz"))
    vol = read_image(tmp_path / "multi.nii.gz", registry=registry)
    assert vol.n_channels == 2 and vol.spatial_shape == (6, 5, 4)
    np.testing.assert_array_equal(vol.array[1], data[..., 1])
    back = read_image(write_image(vol, tmp_path / "again.nii.gz"), registry=registry)
    assert_same_world(vol, back)
    np.testing.assert_array_equal(back.array, vol.array)


def test_dicom_series_with_shuffled_names_equals_its_nifti(tmp_path, registry):
    arr = np.random.default_rng(2).integers(-1000, 2000, size=(12, 10, 8)).astype(np.int16)
    vol = Volume.from_spatial(arr, oblique_affine(spacing=(0.7, 0.7, 2.5)))
    nifti = read_image(write_image(vol, tmp_path / "ct.nii.gz"), registry=registry)
    names = [f"{random.Random(k).getrandbits(32):08x}.dcm" for k in range(arr.shape[2])]
    assert names != sorted(names)
    write_dicom_series(nifti, tmp_path / "series", file_names=names)
    dicom = read_image(tmp_path / "series", registry=registry)
    assert_same_world(dicom, nifti)
    np.testing.assert_array_equal(dicom.data, nifti.data)
    # the CLI converts the series back to a NIfTI with the same geometry
    assert main(["convert", str(tmp_path / "series"), str(tmp_path / "from_dicom.nii.gz")]) == 0
    converted = read_image(tmp_path / "from_dicom.nii.gz", registry=registry)
    assert_same_world(converted, nifti)
    np.testing.assert_array_equal(converted.data, arr)


def test_zipped_dicom_series(tmp_path, registry):
    import zipfile

    vol = random_volume(shape=(6, 5, 4), dtype=np.int16)
    files = write_dicom_series(vol, tmp_path / "s")
    with zipfile.ZipFile(tmp_path / "series.zip", "w") as zf:
        for f in reversed(files):
            zf.write(f, f"nested/{f.name}")
    back = read_image(tmp_path / "series.zip", registry=registry)
    assert_same_world(back, vol)
    np.testing.assert_array_equal(back.data, vol.data)


def test_label_map_written_in_reference_geometry(tmp_path, registry):
    ref = random_volume(shape=(5, 6, 7))
    labels = LabelMap.from_spatial(np.ones((5, 6, 7), np.int64), np.eye(4))
    out = write_image(labels, tmp_path / "mask.nii.gz", reference=ref)
    back = read_label_map(out, registry=registry)
    assert back.array.dtype == np.uint8
    assert_same_world(back, ref)
    assert nib.load(str(out)).header.get_intent()[0] == "label"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.nii.gz"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_real_pydicom_ct_series(registry):
    folder = pathlib.Path(pydicom.__file__).parent / "data/test_files/dicomdirtests/98892001/CT5N"
    vol = read_image(folder, registry=registry)
    assert vol.spatial_shape == (16, 16, 5)
    assert vol.spacing == pytest.approx((0.488281, 0.488281, 2.5), abs=1e-5)
    # SimpleITK's GDCM series reader agrees on the world position of every corner
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    ref = reader.Execute()
    sitk_corner = np.array(ref.TransformIndexToPhysicalPoint((15, 15, 4)))
    lps = np.diag([-1, -1, 1]) @ vol.world_coordinates([[15, 15, 4]])[0]
    np.testing.assert_allclose(lps, sitk_corner, atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ref).T, vol.data)
