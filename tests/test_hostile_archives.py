"""Hostile archives, decompression bombs and hostile model bundles.

Zips with ``..``, absolute paths, drive letters, symbolic links, thousands of members, lying
or encrypted headers; tiny files whose headers claim gigabytes (refused from the header, before
any voxel is allocated: checked in a child process whose address space is capped a little above
what it already uses); bundles whose config is not an object, whose weights are not a state
dict, or whose config is huge or deeply nested.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

from medseg.errors import InputError, MedsegError
from medseg.io import read_image
from medseg.io.archive import safe_extract_zip

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Route ``tempfile`` into the test's folder, to see what extraction leaves behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _zip(path: Path, members: dict[str, bytes], *, symlinks: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return path


def _series_members(prefix: str = "series/") -> dict[str, bytes]:
    return {prefix + p.name: p.read_bytes() for p in sorted(SERIES.iterdir())[:3]}


def _everything(root: Path) -> set[Path]:
    return set(root.rglob("*"))


# ---- zips -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("member", "problem"), [
    ("../evil.dcm", "escapes the archive"),
    ("series/../../evil.dcm", "escapes the archive"),
    ("/tmp/evil.dcm", "absolute path"),
    ("C:/evil.dcm", "absolute path"),
    ("C:\\evil.dcm", "absolute path"),
    ("..\\..\\evil.dcm", "escapes the archive"),
])
def test_zip_member_escaping_the_folder_is_refused(tmp_path, private_tmp, member, problem):
    archive = _zip(tmp_path / "up.zip", {**_series_members(), member: b"x" * 10})
    before = _everything(tmp_path)
    with pytest.raises(InputError, match=problem) as err:
        read_image(archive)
    assert str(err.value).startswith(str(archive)) and "\n" not in str(err.value)
    assert _everything(tmp_path) == before  # nothing written anywhere, temp folder removed
    assert not list(private_tmp.iterdir())


def test_zip_symlink_member_is_refused(tmp_path, private_tmp):
    archive = _zip(tmp_path / "link.zip", {**_series_members(), "series/passwd": b"/etc/passwd"},
                   symlinks=("series/passwd",))
    with pytest.raises(InputError, match="symbolic link"):
        read_image(archive)
    dest = tmp_path / "out"
    with pytest.raises(InputError, match="symbolic link"):
        safe_extract_zip(archive, dest)
    assert not dest.exists() or not any(dest.rglob("*"))
    assert not list(private_tmp.iterdir())


def test_zip_with_too_many_members_is_refused_from_the_directory(tmp_path, monkeypatch):
    members = {f"m/{i:05d}.txt": b"" for i in range(300)}
    archive = _zip(tmp_path / "many.zip", members)
    monkeypatch.setenv("MEDSEG_MAX_ZIP_MEMBERS", "200")  # read when checked, not at import
    dest = tmp_path / "out"
    with pytest.raises(InputError, match="300 members, more than the limit 200"):
        safe_extract_zip(archive, dest)
    assert not dest.exists()


def test_zip_with_thousands_of_members_is_extracted_then_cleaned(tmp_path, private_tmp):
    """3000 small non-DICOM members under the limit: a clear error, the temp folder goes."""
    archive = _zip(tmp_path / "junk.zip", {f"d{i % 30}/f{i}.txt": b"junk" for i in range(3000)})
    with pytest.raises(InputError, match="no DICOM image files found"):
        read_image(archive)
    assert not list(private_tmp.iterdir())


def test_zip_default_member_limit_refuses_25000_members(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(25000):
            zf.writestr(f"{i}", b"")
    archive = tmp_path / "huge_directory.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="25000 members, more than the limit 20000"):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_bomb_is_stopped_while_streaming(tmp_path, monkeypatch):
    """Declared sizes over the limit are refused up front; a header that under-declares is
    caught while streaming (bounded output) or by zipfile's CRC/size check."""
    archive = _zip(tmp_path / "bomb.zip", {"a.bin": b"\0" * (8 << 20), "b.bin": b"\0" * (8 << 20)})
    monkeypatch.setenv("MEDSEG_MAX_UNZIPPED_BYTES", str(4 << 20))
    with pytest.raises(InputError, match="expands to 16777216 bytes, more than the limit"):
        safe_extract_zip(archive, tmp_path / "out")
    # make the headers lie: every member claims 1 kB
    data = bytearray(archive.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            struct.pack_into("<I", data, i + offset, 1024)
            start = i + 4
    liar = tmp_path / "liar.zip"
    liar.write_bytes(bytes(data))
    out = tmp_path / "out2"
    with pytest.raises(InputError, match=r"corrupt zip archive|expands past the limit"):
        safe_extract_zip(liar, out)
    assert not out.exists() or sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) == 0


def _patch_headers(data: bytes, *, flag: int | None = None, method: int | None = None) -> bytes:
    out = bytearray(data)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = 0
        while (i := out.find(sig, start)) >= 0:
            if flag is not None:
                struct.pack_into("<H", out, i + flag_at, flag)
            if method is not None:
                struct.pack_into("<H", out, i + method_at, method)
            start = i + 4
    return bytes(out)


@pytest.mark.parametrize(("patch", "problem"), [
    ({"flag": 1}, "encrypted"),
    ({"method": 99}, "compression"),
])
def test_encrypted_or_unsupported_zip_member_is_one_line_error(tmp_path, private_tmp, patch,
                                                               problem):
    good = _zip(tmp_path / "good.zip", _series_members())
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_patch_headers(good.read_bytes(), **patch))
    with pytest.raises(InputError, match=problem) as err:
        read_image(bad)
    assert str(err.value).startswith(str(bad)) and "\n" not in str(err.value)
    assert not list(private_tmp.iterdir())


@pytest.mark.parametrize("members", [
    {"a": b"file", "a/b.dcm": b"under a file"},          # a member clashes with a folder
    {"x" * 300 + ".dcm": b"name too long"},              # the file system refuses the name
    {"s/1.dcm": b"one", "s/1.dcm ": b"two", "s/./2.dcm": b"three"},
])
def test_odd_member_names_end_in_a_clear_error(tmp_path, private_tmp, members):
    archive = tmp_path / "odd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(InputError) as err:
        read_image(archive)
    assert str(err.value).startswith(str(archive)) and "\n" not in str(err.value)
    assert not list(private_tmp.iterdir())


def test_valid_zip_still_reads(tmp_path, private_tmp):
    archive = _zip(tmp_path / "ok.zip", {f"series/{p.name}": p.read_bytes()
                                        for p in sorted(SERIES.iterdir())})
    assert read_image(archive).spatial_shape == read_image(SERIES).spatial_shape
    assert not list(private_tmp.iterdir())


# ---- special files ------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_special_files_and_symlink_loops_end_quickly(tmp_path):
    """A FIFO named like an image must not block; device files are not images; a DICOM
    folder with symlinks to itself and its parent is not walked forever."""
    import time

    fifo = tmp_path / "pipe.nii.gz"
    os.mkfifo(fifo)
    series = tmp_path / "series"
    series.mkdir()
    for p in sorted(SERIES.iterdir())[:2]:
        (series / p.name).write_bytes(p.read_bytes())
    (series / "self").symlink_to(".")
    (series / "up").symlink_to("..")
    (series / "evil.dcm").symlink_to("/etc/passwd")
    start = time.monotonic()
    for path in (fifo, Path("/dev/zero"), Path("/dev/null")):
        with pytest.raises(InputError) as err:
            read_image(path)
        assert str(err.value).startswith(str(path))
    assert read_image(series).spatial_shape[2] == 2  # symlinks are skipped, not followed
    assert time.monotonic() - start < 30


# ---- decompression bombs, in a child with a capped address space -----------------------------
_CHILD = textwrap.dedent("""
    import json, resource, sys
    from medseg.errors import MedsegError
    from medseg.io import read_image
    from medseg.registry import load_registry
    registry = load_registry()
    import SimpleITK, pydicom, PIL.Image, nibabel  # imported before the cap
    with open("/proc/self/status") as fh:
        vm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + (768 << 20), resource.RLIM_INFINITY))
    import os
    out = {}
    for item in sys.argv[1:]:
        limit, path = item.split("=", 1)  # LIMIT=PATH, LIMIT "default" for the default
        os.environ.pop("MEDSEG_MAX_IMAGE_BYTES", None)
        if limit != "default":
            os.environ["MEDSEG_MAX_IMAGE_BYTES"] = limit
        try:
            read_image(path, registry=registry)
            out[path] = "read"
        except MedsegError as exc:
            out[path] = str(exc)
    print(json.dumps(out))
""")


def _nifti_header(shape: tuple[int, ...], dtype=np.int16) -> bytes:
    img = nib.Nifti1Image(np.zeros((1,) * len(shape), dtype), np.eye(4))
    img.header.set_data_shape(shape)
    return img.header.binaryblock + b"\0" * 4  # 348-byte header + empty extension flag


def test_bombs_are_refused_before_allocation(tmp_path):
    files = {}
    # 16 GiB declared (over the default 4 GiB limit) in 100 bytes
    files["nifti_over_limit"] = tmp_path / "over.nii.gz"
    files["nifti_over_limit"].write_bytes(gzip.compress(_nifti_header((2048, 2048, 2048))))
    # 2 GiB declared, under the default limit, but 100 bytes cannot inflate to it
    files["nifti_tiny"] = tmp_path / "tiny.nii.gz"
    files["nifti_tiny"].write_bytes(gzip.compress(_nifti_header((1024, 1024, 1024))))
    # the same for an uncompressed file: 2 GiB declared, 352 bytes present
    files["nifti_raw"] = tmp_path / "raw.nii"
    files["nifti_raw"].write_bytes(_nifti_header((1024, 1024, 1024)))
    # a genuine bomb: 256 MiB of real zeros in ~250 kB, refused with MEDSEG_MAX_IMAGE_BYTES
    # set to 128 MiB (the child's address space could not hold it either)
    real = tmp_path / "real_bomb.nii.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(real, "wb") as fh:
        fh.write(comp.compress(_nifti_header((1024, 1024, 128))))
        block = b"\0" * (16 << 20)
        for _ in range(16):
            fh.write(comp.compress(block))
        fh.write(comp.flush())
    files["nifti_real_bomb"] = real
    files["mha"] = tmp_path / "bomb.mha"
    files["mha"].write_bytes(  # 2 GiB declared in 4 kB: more than DEFLATE can expand
        b"ObjectType = Image\nNDims = 3\nBinaryData = True\nCompressedData = True\n"
        b"DimSize = 1024 1024 1024\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
        + zlib.compress(b"\0" * 4096))
    files["nrrd"] = tmp_path / "bomb.nrrd"
    files["nrrd"].write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 1024 1024 1024\n"
                              b"encoding: gzip\nendian: little\n\n" + gzip.compress(b"\0" * 4096))
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1000
    files["dicom"] = tmp_path / "bomb.dcm"
    ds.save_as(files["dicom"])
    png = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png, "PNG")
    data = bytearray(png.getvalue())
    struct.pack_into(">II", data, 16, 100000, 100000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    files["png"] = tmp_path / "bomb.png"
    files["png"].write_bytes(bytes(data))

    limits = {kind: "default" for kind in files}
    limits["nifti_real_bomb"] = str(128 << 20)
    proc = subprocess.run([sys.executable, "-c", _CHILD,
                           *(f"{limits[k]}={p}" for k, p in files.items())],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for kind, path in files.items():
        message = results[str(path)]
        assert message.startswith(str(path)), (kind, message)
        # refused from the header (Pillow's own bomb check stops the PNG at open)
        assert "declares" in message or "DecompressionBombError" in message, (kind, message)
        assert "memory" not in message, (kind, message)


def test_default_limit_applies_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSEG_MAX_IMAGE_BYTES", raising=False)
    path = tmp_path / "over.nii.gz"
    path.write_bytes(gzip.compress(_nifti_header((2048, 2048, 1100))))
    with pytest.raises(InputError, match="more than the limit of 8589934592 bytes"):
        read_image(path)
    monkeypatch.setenv("MEDSEG_MAX_IMAGE_BYTES", "not a number")  # falls back to the default
    with pytest.raises(InputError, match="more than the limit of 8589934592 bytes"):
        read_image(path)


# ---- hostile bundles ---------------------------------------------------------------------------
@pytest.fixture
def tiny_bundle(tmp_path):
    from medseg.models.medseg_bundle.bundle import save_bundle
    from medseg.registry import load_registry

    params = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    torch.manual_seed(0)
    net = load_registry().architectures.get("unet").factory(
        spatial_dims=3, in_channels=1, out_channels=2, **params)
    save_bundle(tmp_path / "bundle", {
        "name": "Tiny", "architecture": {"name": "unet", "params": params},
        "spatial_dims": 3, "in_channels": 1, "labels": {"background": 0, "fg": 1},
        "patch_size": [16, 16, 16],
        "preprocessing": {"target_spacing": [2.0, 2.0, 2.0], "intensity": {"scheme": "zscore"},
                          "orientation": "RAS"},
    }, net.state_dict())
    return tmp_path / "bundle"


def _rewrite(bundle: Path, **changes) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg.update(changes)
    (bundle / "config.json").write_text(json.dumps(cfg))


def _reseal(bundle: Path) -> None:
    from medseg.models.medseg_bundle.bundle import sha256_file

    cfg = json.loads((bundle / "config.json").read_text())
    cfg["weights"]["sha256"] = sha256_file(bundle / "weights.pt")
    (bundle / "config.json").write_text(json.dumps(cfg))


def test_tiny_bundle_loads(tiny_bundle):
    from medseg.models.medseg_bundle.bundle import load_bundle

    net = load_bundle(tiny_bundle).load_network()
    assert sum(p.numel() for p in net.parameters()) > 0


@pytest.mark.parametrize("content", ["[1, 2, 3]", '"a string"', "null", "42"])
def test_bundle_config_that_is_not_an_object(tiny_bundle, content):
    from medseg.models.medseg_bundle.bundle import load_bundle

    (tiny_bundle / "config.json").write_text(content)
    with pytest.raises(InputError, match="must be a JSON object"):
        load_bundle(tiny_bundle)


@pytest.mark.parametrize("payload", [
    [torch.zeros(3)],                              # a list, not a dict
    {"weight": [1, 2, 3]},                         # values that are not tensors
    torch.zeros(3),                                # a bare tensor
])
def test_weights_that_are_not_a_state_dict(tiny_bundle, payload):
    from medseg.models.medseg_bundle.bundle import load_bundle

    torch.save(payload, tiny_bundle / "weights.pt")
    _reseal(tiny_bundle)
    with pytest.raises(InputError, match="not a plain state dict"):
        load_bundle(tiny_bundle).load_weights()


def test_weights_with_a_pickled_object_are_not_executed(tiny_bundle, tmp_path):
    from medseg.models.medseg_bundle.bundle import load_bundle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"weight": Evil()}, tiny_bundle / "weights.pt")
    _reseal(tiny_bundle)
    with pytest.raises(InputError, match="cannot be loaded safely"):
        load_bundle(tiny_bundle).load_weights()
    assert not marker.exists()


def test_unknown_architecture_and_missing_checksum(tiny_bundle):
    from medseg.models.medseg_bundle.bundle import load_bundle

    _rewrite(tiny_bundle, architecture={"name": "os.system", "params": {}})
    with pytest.raises(InputError, match=r"unknown architecture 'os\.system'"):
        load_bundle(tiny_bundle)
    _rewrite(tiny_bundle, architecture={"name": "unet", "params": {
        "channels": [4, 8], "strides": [2], "num_res_units": 0}}, weights={"file": "weights.pt"})
    with pytest.raises(InputError, match="weights: 'sha256' is a required property"):
        load_bundle(tiny_bundle)  # refused by the config schema, before any weights are read


def test_weights_file_outside_the_bundle_is_checked_like_any_other(tiny_bundle, tmp_path):
    """A config naming a file outside the bundle is refused by the schema; one naming another
    file inside it still needs that file's checksum to match."""
    from medseg.models.medseg_bundle.bundle import load_bundle

    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(1)}, other)
    _rewrite(tiny_bundle, weights={"file": str(other), "sha256": "0" * 64})
    with pytest.raises(InputError, match=r"weights\.file: .* does not match"):
        load_bundle(tiny_bundle)
    shutil.copy(other, tiny_bundle / "other.pt")
    _rewrite(tiny_bundle, weights={"file": "other.pt", "sha256": "0" * 64})
    with pytest.raises(InputError, match="checksum does not match"):
        load_bundle(tiny_bundle).load_weights()


def test_huge_config_is_a_clear_error_or_loads(tiny_bundle):
    """A 20 MB config (a huge unused field) loads or fails with a MedsegError, no crash."""
    from medseg.models.medseg_bundle.bundle import load_bundle

    _rewrite(tiny_bundle, padding=["x" * 1000] * 20000)
    try:
        load_bundle(tiny_bundle)
    except MedsegError as exc:
        error = str(exc)
    else:
        error = ""
    assert "\n" not in error


def test_deeply_nested_config_is_a_clear_error(tiny_bundle):
    from medseg.models.medseg_bundle.bundle import load_bundle

    (tiny_bundle / "config.json").write_text("[" * 200000 + "]" * 200000)
    with pytest.raises(InputError, match="corrupt bundle config"):
        load_bundle(tiny_bundle)


# ---- the app's upload limit --------------------------------------------------------------------
def test_upload_over_the_size_limit_is_refused_before_writing(tmp_path):
    pytest.importorskip("streamlit")
    sys.path.insert(0, str(ROOT / "app"))
    try:
        from medseg_ui.session import UploadError, save_upload
    finally:
        sys.path.remove(str(ROOT / "app"))
    with pytest.raises(UploadError, match="the limit is 1 MB"):
        save_upload(b"\0" * (2 << 20), "big.nii.gz", tmp_path / "up", "image",
                    (".nii.gz",), max_mb=1)
    assert not (tmp_path / "up").exists()
