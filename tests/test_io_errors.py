"""Bad input: one-line errors naming the file; the CLI exits non-zero without a traceback."""

import zipfile

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.errors import InputError, MultipleSeriesError
from medseg.io import read_image
from medseg.io.archive import safe_extract_zip
from medseg.io.dicom_write import write_dicom_series
from tests.conftest import random_volume


def _assert_cli_one_line_error(capsys, args, must_contain):
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for text in must_contain:
        assert text in err
    return err


def _truncated_nifti(tmp_path):
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(40, 40, 40)).astype(
        np.float32), np.eye(4)), str(good))
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


def _text_as_nifti(tmp_path):
    p = tmp_path / "notes.nii"
    p.write_text("this is not an image\n" * 50)
    return p


def _empty_folder(tmp_path):
    p = tmp_path / "empty"
    p.mkdir()
    return p


def _two_series(tmp_path):
    folder = tmp_path / "two_series"
    write_dicom_series(random_volume(shape=(4, 4, 3), dtype=np.int16), folder,
                       series_description="AX T1", file_names=[f"a{k}.dcm" for k in range(3)])
    write_dicom_series(random_volume(shape=(4, 4, 2), dtype=np.int16), folder,
                       series_description="COR T2", file_names=[f"b{k}.dcm" for k in range(2)])
    return folder


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: tmp / "missing.nii.gz", "file not found"),
        (_truncated_nifti, "truncated or corrupt"),
        (_text_as_nifti, "not valid nifti"),
        (_empty_folder, "folder is empty"),
        (_two_series, "2 DICOM series"),
    ],
    ids=["missing", "truncated", "text-renamed", "empty-folder", "two-series"],
)
def test_bad_input_one_line_error(tmp_path, registry, capsys, make, problem):
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        read_image(path, registry=registry)
    assert str(path) in str(info.value)
    assert problem in str(info.value)
    assert "\n" not in str(info.value)
    _assert_cli_one_line_error(capsys, ["info", str(path)], [str(path), problem])


def test_two_series_error_lists_them_and_series_option_picks_one(tmp_path, registry, capsys):
    folder = _two_series(tmp_path)
    with pytest.raises(MultipleSeriesError) as info:
        read_image(folder, registry=registry)
    series = {s["description"]: s for s in info.value.series}
    assert series["AX T1"]["count"] == 3 and series["COR T2"]["count"] == 2
    assert "AX T1" in str(info.value) and series["AX T1"]["uid"] in str(info.value)
    vol = read_image(folder, registry=registry, series=series["COR T2"]["uid"])
    assert vol.spatial_shape == (4, 4, 2)
    assert main(["info", str(folder), "--series", series["AX T1"]["uid"]]) == 0
    assert "4 x 4 x 3" in capsys.readouterr().out


def test_zip_with_parent_member_is_refused_and_writes_nothing_outside(tmp_path, registry, capsys):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("series/ok.dcm", b"harmless")
        zf.writestr("../../escaped.txt", b"owned")
    dest = tmp_path / "sandbox" / "extract"
    with pytest.raises(InputError, match=r"escapes the archive"):
        safe_extract_zip(archive, dest)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "sandbox" / "escaped.txt").exists()
    assert not any(p.is_file() for p in (tmp_path / "sandbox").rglob("*"))
    with pytest.raises(InputError, match=r"evil\.zip"):
        read_image(archive, registry=registry)
    _assert_cli_one_line_error(capsys, ["info", str(archive)], ["evil.zip", "refused"])


def test_zip_with_absolute_member_and_size_bomb_are_refused(tmp_path):
    archive = tmp_path / "abs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("/etc/passwd_copy", b"x")
    with pytest.raises(InputError, match="absolute path"):
        safe_extract_zip(archive, tmp_path / "out")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 5_000_000)
    with pytest.raises(InputError, match="limit"):
        safe_extract_zip(bomb, tmp_path / "out2", max_bytes=1_000_000)
    assert not (tmp_path / "out2" / "zeros.bin").exists()


def test_nan_image_is_refused(tmp_path, registry):
    data = np.ones((4, 4, 4), np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    with pytest.raises(InputError, match="NaN"):
        read_image(tmp_path / "nan.nii.gz", registry=registry)


def test_unknown_format_lists_supported(tmp_path, registry):
    p = tmp_path / "data.xyz"
    p.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match=r"unrecognised image format; supported: .*\.nii\.gz"):
        read_image(p, registry=registry)


def test_corrupt_dicom_slice_is_named(tmp_path, registry):
    files = write_dicom_series(random_volume(shape=(4, 4, 3), dtype=np.int16), tmp_path / "s")
    files[1].write_bytes(files[1].read_bytes()[:300])
    with pytest.raises(InputError) as info:
        read_image(tmp_path / "s", registry=registry)
    assert files[1].name in str(info.value)


def test_convert_to_unsupported_format_writes_nothing(tmp_path, capsys):
    src = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4)), str(src))
    _assert_cli_one_line_error(capsys, ["convert", str(src), str(tmp_path / "out.xyz")],
                               ["out.xyz", "unsupported output format"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz"]
