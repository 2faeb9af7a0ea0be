"""Property-based fuzzing of every reader and of the case pairing (hypothesis).

Real files (a crop of the bundled brain MRI, pydicom's ``CT_small.dcm``, ``MR_small.dcm``,
``MR_small_RLE.dcm`` and ``rtdose.dcm`` (multi-frame), a written DICOM series, NRRD/MHA/MHD and
PNG/JPEG/TIFF files) are truncated, bit-flipped and given absurd headers. Every attempt must
end in a correct :class:`~medseg.volume.Volume` or an :class:`~medseg.errors.InputError` whose
one-line message starts with the path; never a raw exception, never the last-resort wrapper of
:func:`medseg.io.read_image` (a built-in reader must handle its own failures), within a time
bound (an interval timer) and a memory bound (tracemalloc peak of Python/numpy allocations;
``MEDSEG_MAX_IMAGE_BYTES`` is lowered to 64 MiB here) and the hypothesis deadline. A file cut
short is never accepted.

``MEDSEG_FUZZ_EXAMPLES`` (default 40, the same examples every run) sets examples per test and
draws new random ones; ``MEDSEG_FUZZ_REPORT=FILE`` writes the counts of inputs tried per
category and outcome (used for docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import signal
import struct
import tempfile
import tracemalloc
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file

from medseg.errors import InputError, MedsegError
from medseg.evaluation.pairs import CASE_SUFFIXES, case_name, pair_cases
from medseg.io import read_image, write_image
from medseg.io.dicom_write import write_dicom_series
from medseg.registry import load_registry
from medseg.volume import Volume

# The inputs are corrupt on purpose: the libraries' own complaints about them (pydicom, Pillow,
# nibabel, SimpleITK) are expected and would bury a real warning; medseg's own still show.
pytestmark = [pytest.mark.filterwarnings(f"ignore::UserWarning:{module}")
              for module in ("pydicom", "PIL", "nibabel", "SimpleITK", "numpy")]

ROOT = Path(__file__).resolve().parents[1]
BRAIN_IMAGE = ROOT / "sample_data" / "Dataset001_BrainTissue" / "imagesTs" / "brain_101_0000.nii.gz"
MAX_EXAMPLES = int(os.environ.get("MEDSEG_FUZZ_EXAMPLES", "40"))
#: CI replays the same examples (no flaky failures); a deeper run with more examples explores
DERANDOMIZE = "MEDSEG_FUZZ_EXAMPLES" not in os.environ
TIME_LIMIT_S = 20.0  # per read; generous for a loaded CI machine, tiny files take ms
MEMORY_LIMIT = 256 * 1024**2  # tracemalloc peak per read
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=timedelta(seconds=10), database=None,
                derandomize=DERANDOMIZE,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
TALLY: Counter[tuple[str, str]] = Counter()
REGISTRY = load_registry()


# ---- harness --------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _bounded(tmp_path_factory) -> Iterator[None]:
    """Lower the image limit, trace allocations, and write the tally when asked."""
    old = os.environ.get("MEDSEG_MAX_IMAGE_BYTES")
    os.environ["MEDSEG_MAX_IMAGE_BYTES"] = str(64 * 1024**2)
    tracemalloc.start()
    yield
    tracemalloc.stop()
    if old is None:
        os.environ.pop("MEDSEG_MAX_IMAGE_BYTES", None)
    else:
        os.environ["MEDSEG_MAX_IMAGE_BYTES"] = old
    report = os.environ.get("MEDSEG_FUZZ_REPORT")
    if report:
        previous = json.loads(Path(report).read_text()) if Path(report).is_file() else {}
        for (category, outcome), n in TALLY.items():
            previous.setdefault(category, {}).setdefault(outcome, 0)
            previous[category][outcome] += n
        Path(report).write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def _expired(signum, frame):
        raise TimeoutError(f"read took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def attempt(category: str, path: Path, **options) -> Volume | None:
    """Read ``path``: a Volume, or None after a well-formed InputError. Anything else fails."""
    tracemalloc.reset_peak()
    refused: MedsegError | None = None
    try:
        with _time_limit(TIME_LIMIT_S):
            volume = read_image(path, registry=REGISTRY, **options)
    except MedsegError as exc:
        refused = exc
    except BaseException:
        TALLY[category, "crash"] += 1
        raise
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        assert peak < MEMORY_LIMIT, f"{path}: peak allocation {peak} bytes"
    if refused is not None:
        TALLY[category, "refused"] += 1
        message = str(refused)
        assert isinstance(refused, InputError), f"{type(refused).__name__}: {message}"
        assert "\n" not in message, message
        assert message.startswith(str(path)), message
        assert "failed (" not in message, f"a raw exception reached read_image: {message}"
        return None
    TALLY[category, "read"] += 1
    assert isinstance(volume, Volume)
    assert np.all(np.isfinite(volume.affine))
    assert min(volume.spacing) > 0
    return volume


def fresh(tmp_path: Path) -> Path:
    """A new folder per example (hypothesis runs many examples in one ``tmp_path``)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in flips:
        out[pos % len(out)] = value
    return bytes(out)


def flips_in(size: int, hot: int = 0) -> st.SearchStrategy[list[tuple[int, int]]]:
    """1-8 (position, byte) replacements, half of them within the first ``hot`` bytes."""
    anywhere = st.integers(0, size - 1)
    pos = st.one_of(st.integers(0, hot - 1), anywhere) if hot else anywhere
    return st.lists(st.tuples(pos, st.integers(0, 255)), min_size=1, max_size=8)


# ---- fixtures: real files -------------------------------------------------------------------
@pytest.fixture(scope="module")
def nifti_bytes() -> bytes:
    """An uncompressed NIfTI-1 with the real header and a 12x12x10 crop of the brain MRI."""
    src = nib.load(str(BRAIN_IMAGE))
    crop = np.asarray(src.dataobj)[26:38, 30:42, 27:37]
    img = nib.Nifti1Image(crop, src.affine, src.header)
    return img.to_bytes()


@pytest.fixture(scope="module")
def ct_volume() -> Volume:
    arr = (np.arange(10 * 8 * 3).reshape(10, 8, 3) * 7 - 500).astype(np.int16)
    return Volume.from_spatial(arr, np.diag([0.8, 0.9, 2.5, 1.0]))


@pytest.fixture(scope="module")
def series_files(tmp_path_factory, ct_volume) -> list[bytes]:
    folder = tmp_path_factory.mktemp("series")
    return [p.read_bytes() for p in write_dicom_series(ct_volume, folder)]


DICOM_FILES = {name: Path(get_testdata_file(name)).read_bytes()
               for name in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "rtdose.dcm")}


def _pixel_data_end(data: bytes) -> int:
    """Offset just past the pixel data (trailing padding may follow it)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    after = [e.file_tell for e in ds if e.tag > 0x7FE00010 and e.file_tell is not None]
    return min(after, default=len(data))


PIXEL_END = {name: _pixel_data_end(data) for name, data in DICOM_FILES.items()}


# ---- NIfTI ----------------------------------------------------------------------------------
@FUZZ
@given(flips=st.data(), gz=st.booleans())
def test_nifti_byte_flips(tmp_path, nifti_bytes, flips, gz):
    tmp_path = fresh(tmp_path)
    data = flip(nifti_bytes, flips.draw(flips_in(len(nifti_bytes), hot=352)))
    path = tmp_path / ("f.nii.gz" if gz else "f.nii")
    path.write_bytes(gzip.compress(data, 1) if gz else data)
    attempt("nifti flips", path)


@FUZZ
@given(cut=st.data(), gz=st.booleans())
def test_nifti_truncation_is_never_accepted(tmp_path, nifti_bytes, cut, gz):
    tmp_path = fresh(tmp_path)
    full = gzip.compress(nifti_bytes, 1) if gz else nifti_bytes
    n = cut.draw(st.integers(0, len(full) - 1))
    path = tmp_path / ("t.nii.gz" if gz else "t.nii")
    path.write_bytes(full[:n])
    assert attempt("nifti truncations", path) is None


_FLOATS = st.one_of(st.sampled_from([0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"),
                                     -float("inf")]), st.floats(width=32))
_DIMS = st.one_of(st.sampled_from([0, -1, 1, 2, 7, 32767, -32768]), st.integers(-5, 40))


@FUZZ
@given(dim0=st.integers(-2, 9), dims=st.lists(_DIMS, min_size=7, max_size=7),
       pixdim=st.lists(_FLOATS, min_size=8, max_size=8),
       srow=st.lists(_FLOATS, min_size=12, max_size=12),
       codes=st.tuples(st.sampled_from([0, 1, 2, 3, 4, -1, 99]),
                       st.sampled_from([0, 1, 2, 3, 4, -1, 99])),
       datatype=st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1536,
                                 2304, 1234, -1]),
       vox_offset=st.sampled_from([352.0, 0.0, -1.0, 348.0, 353.0, 1e9, float("nan")]),
       scl=st.tuples(_FLOATS, _FLOATS), gz=st.booleans())
def test_nifti_absurd_headers(tmp_path, nifti_bytes, dim0, dims, pixdim, srow, codes,
                              datatype, vox_offset, scl, gz):
    tmp_path = fresh(tmp_path)
    data = bytearray(nifti_bytes)
    struct.pack_into("<8h", data, 40, dim0, *dims)
    struct.pack_into("<h", data, 70, datatype)
    struct.pack_into("<8f", data, 76, *pixdim)
    struct.pack_into("<f", data, 108, vox_offset)
    struct.pack_into("<2f", data, 112, *scl)
    struct.pack_into("<2h", data, 252, *codes)  # qform_code, sform_code
    struct.pack_into("<12f", data, 280, *srow)
    path = tmp_path / ("h.nii.gz" if gz else "h.nii")
    path.write_bytes(gzip.compress(bytes(data), 1) if gz else bytes(data))
    attempt("nifti absurd headers", path)


def _nifti(cls, shape, *, pixdim=None, sform=None) -> bytes:
    img = cls(np.zeros((2, 2, 2), np.int16), np.eye(4))
    header = img.header
    header.set_data_shape((2, 2, 2))
    data = bytearray(img.to_bytes())
    n2 = cls is nib.Nifti2Image
    dim_fmt, dim_at = ("<8q", 16) if n2 else ("<8h", 40)
    struct.pack_into(dim_fmt, data, dim_at, len(shape), *shape, *([1] * (7 - len(shape))))
    if pixdim is not None:
        fmt, at = ("<4d", 104) if n2 else ("<4f", 76)
        struct.pack_into(fmt, data, at, 1.0, *pixdim)
    if sform is not None:
        code_at, fmt, at = (348, "<12d", 400) if n2 else (254, "<12f", 280)
        struct.pack_into("<i" if n2 else "<h", data, code_at, 1)
        struct.pack_into(fmt, data, at, *sform)
    return bytes(data)


_NAN_SFORM = [float("nan"), 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
_ZERO_SFORM = [0.0] * 12


@pytest.mark.parametrize(("cls", "shape", "extra", "expected"), [
    (nib.Nifti1Image, (0, 2, 2), {}, "empty or negative image size"),
    (nib.Nifti1Image, (-2, 2, 2), {}, "empty or negative image size"),
    (nib.Nifti1Image, (32767, 32767, 32767), {}, "more than the limit"),
    (nib.Nifti2Image, (2**31, 2**31, 1), {}, "more than the limit"),
    (nib.Nifti2Image, (2**31, 1, 1), {}, "more than the limit"),
    (nib.Nifti2Image, (2**62, 2**62, 2**62), {}, "more than the limit"),
    (nib.Nifti2Image, (0, 2, 2), {}, "empty or negative image size"),
    (nib.Nifti1Image, (2, 2, 2), {"sform": _NAN_SFORM}, "NaN"),
    (nib.Nifti2Image, (2, 2, 2), {"sform": _NAN_SFORM}, "NaN"),
    (nib.Nifti1Image, (2, 2, 2), {"sform": _ZERO_SFORM}, "singular"),
    # absurd pixdim beside a valid sform: the sform gives the geometry (nibabel also repairs
    # zero / negative pixdim, documented: set to 1 / abs)
    (nib.Nifti1Image, (2, 2, 2), {"pixdim": (0.0, 0.0, 0.0)}, None),
    (nib.Nifti1Image, (2, 2, 2), {"pixdim": (-1.0, 2.0, -3.0)}, None),
    (nib.Nifti1Image, (2, 2, 2), {"pixdim": (float("nan"), 1.0, 1.0)}, None),
])
@pytest.mark.parametrize("gz", [False, True])
def test_nifti_explicit_absurd_headers(tmp_path, cls, shape, extra, expected, gz):
    data = _nifti(cls, shape, **extra)
    path = tmp_path / ("x.nii.gz" if gz else "x.nii")
    path.write_bytes(gzip.compress(data) if gz else data)
    volume = attempt("nifti explicit absurd headers", path)
    if expected is None:
        assert volume is not None and min(volume.spacing) > 0
    else:
        assert volume is None
        with pytest.raises(InputError, match=expected):
            read_image(path, registry=REGISTRY)


def test_nifti_unmodified_reads_back(tmp_path, nifti_bytes):
    path = tmp_path / "ok.nii"
    path.write_bytes(nifti_bytes)
    volume = attempt("nifti unmodified", path)
    assert volume is not None and volume.spatial_shape == (12, 12, 10)


# ---- DICOM ----------------------------------------------------------------------------------
@FUZZ
@given(name=st.sampled_from(sorted(DICOM_FILES)), flips=st.data())
def test_dicom_file_byte_flips(tmp_path, name, flips):
    tmp_path = fresh(tmp_path)
    data = DICOM_FILES[name]
    mutated = flip(data, flips.draw(flips_in(len(data), hot=1200)))
    path = tmp_path / name
    path.write_bytes(mutated)
    attempt("dicom file flips", path)


@FUZZ
@given(name=st.sampled_from(sorted(DICOM_FILES)), cut=st.data())
def test_dicom_file_truncation_is_never_accepted(tmp_path, name, cut):
    """Cut anywhere before the end of the pixel data: refused (trailing padding may go)."""
    tmp_path = fresh(tmp_path)
    data = DICOM_FILES[name]
    path = tmp_path / name
    path.write_bytes(data[: cut.draw(st.integers(0, PIXEL_END[name] - 1))])
    assert attempt("dicom file truncations", path) is None


_DS = st.sampled_from(["0", "-1", "1e308", "nan", "inf", "abc", "", "1\\2\\3", "2.5"])
_IS = st.sampled_from(["0", "-1", "1", "3", "2147483648", "99999999", "abc", ""])
_US = st.sampled_from([0, 1, 2, 3, 7, 8, 12, 16, 32, 64, 255, 65535])


@FUZZ
@given(name=st.sampled_from(sorted(DICOM_FILES)), rows=_US, cols=_US, bits=_US, samples=_US,
       frames=_IS, spacing=st.lists(_DS, min_size=0, max_size=3),
       iop=st.lists(_DS, min_size=0, max_size=7), ipp=st.lists(_DS, min_size=0, max_size=4),
       slope=_DS, photometric=st.sampled_from(["MONOCHROME2", "RGB", "PALETTE COLOR",
                                               "YBR_FULL", "XYZ", ""]),
       syntax=st.sampled_from(["1.2.840.10008.1.2.1", "1.2.840.10008.1.2",
                               "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50",
                               "1.2.840.10008.1.2.5", "1.2.3.4"]),
       which=st.sets(st.sampled_from(["rows", "cols", "bits", "samples", "frames", "spacing",
                                      "iop", "ipp", "slope", "photometric", "syntax"]),
                     min_size=1, max_size=4))
def test_dicom_absurd_headers(tmp_path, name, rows, cols, bits, samples, frames, spacing, iop,
                              ipp, slope, photometric, syntax, which):
    tmp_path = fresh(tmp_path)
    ds = pydicom.dcmread(io.BytesIO(DICOM_FILES[name]))
    values = {"rows": ("Rows", "US", rows), "cols": ("Columns", "US", cols),
              "bits": ("BitsAllocated", "US", bits), "samples": ("SamplesPerPixel", "US", samples),
              "frames": ("NumberOfFrames", "IS", frames),
              "spacing": ("PixelSpacing", "DS", "\\".join(spacing)),
              "iop": ("ImageOrientationPatient", "DS", "\\".join(iop)),
              "ipp": ("ImagePositionPatient", "DS", "\\".join(ipp)),
              "slope": ("RescaleSlope", "DS", slope),
              "photometric": ("PhotometricInterpretation", "CS", photometric)}
    for key in which - {"syntax"}:
        keyword, vr, value = values[key]
        tag = pydicom.datadict.tag_for_keyword(keyword)
        raw = value.to_bytes(2, "little") if vr == "US" else value.encode()
        if len(raw) % 2:
            raw += b" "
        ds[tag] = pydicom.dataelem.RawDataElement(
            pydicom.tag.Tag(tag), vr, len(raw), raw, 0, False, True)
    if "syntax" in which:
        ds.file_meta.TransferSyntaxUID = syntax
    buf = io.BytesIO()
    try:
        ds.save_as(buf, implicit_vr=False, little_endian=True)
    except Exception:  # pydicom refuses to write this combination: nothing to read
        return
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    attempt("dicom absurd headers", path)


@FUZZ
@given(victim=st.integers(0, 2), change=st.data(), as_zip=st.booleans())
def test_dicom_series_with_one_damaged_slice(tmp_path, series_files, victim, change, as_zip):
    tmp_path = fresh(tmp_path)
    files = list(series_files)
    data = files[victim]
    if change.draw(st.booleans(), label="truncate"):
        files[victim] = data[: change.draw(st.integers(0, len(data) - 1), label="cut")]
    else:
        files[victim] = flip(data, change.draw(flips_in(len(data), hot=800), label="flips"))
    folder = tmp_path / "series"
    folder.mkdir()
    for k, content in enumerate(files):
        (folder / f"slice_{k}.dcm").write_bytes(content)
    target = folder
    if as_zip:
        target = tmp_path / "series.zip"
        with zipfile.ZipFile(target, "w") as zf:
            for p in sorted(folder.iterdir()):
                zf.write(p, f"s/{p.name}")
    volume = attempt("dicom series (folder/zip)", target)
    if volume is not None:
        assert volume.spatial_shape[2] in (2, 3)


@FUZZ
@given(flips=st.data())
def test_dicom_zip_byte_flips(tmp_path, series_files, flips):
    tmp_path = fresh(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, content in enumerate(series_files):
            zf.writestr(f"s/slice_{k}.dcm", content)
    data = flip(buf.getvalue(), flips.draw(flips_in(len(buf.getvalue()))))
    path = tmp_path / "series.zip"
    path.write_bytes(data)
    before = set(tmp_path.parent.rglob("*"))
    attempt("dicom zip flips", path)
    assert set(tmp_path.parent.rglob("*")) == before  # nothing extracted beside the test


# ---- NRRD / MetaImage -----------------------------------------------------------------------
_ITK_VALUES = st.sampled_from(["0", "-1", "2147483648", "4294967296", "nan", "inf", "1e308",
                               "abc", "", "0 0 0", "-1 -1 -1", "100000 100000 100000",
                               "1 1", "1 2 3 4 5 6 7 8 9", "nan nan nan", "MET_DOUBLE",
                               "MET_FOO", "../../../etc/passwd", "/dev/zero", "LIST",
                               "True", "False", "raw", "gzip", "bzip2", "double", "(nan,0,0)"])


def _itk_file(tmp_path: Path, ct_volume: Volume, ext: str, compressed: bool) -> Path:
    path = tmp_path / f"base{ext}"
    if ext == ".mhd":
        import SimpleITK as sitk

        from medseg.io.itk import to_sitk

        sitk.WriteImage(to_sitk(ct_volume), str(path), useCompression=compressed)
    elif compressed:
        write_image(ct_volume, path)
    else:
        import SimpleITK as sitk

        from medseg.io.itk import to_sitk

        sitk.WriteImage(to_sitk(ct_volume), str(path), useCompression=False)
    return path


def _split_header(data: bytes, ext: str) -> tuple[list[str], bytes]:
    if ext == ".nrrd":
        end = data.index(b"\n\n") + 2
    else:
        marker = b"ElementDataFile = "
        end = data.index(b"\n", data.index(marker)) + 1
    return data[:end].decode("latin-1").splitlines(), data[end:]


@FUZZ
@given(ext=st.sampled_from([".nrrd", ".mha", ".mhd"]), compressed=st.booleans(),
       edits=st.lists(st.tuples(st.integers(0, 30), _ITK_VALUES), min_size=1, max_size=3))
def test_itk_absurd_headers(tmp_path, ct_volume, ext, compressed, edits):
    tmp_path = fresh(tmp_path)
    base = _itk_file(tmp_path, ct_volume, ext, compressed)
    lines, body = _split_header(base.read_bytes(), ext)
    for index, value in edits:
        i = index % len(lines)
        sep = ": " if ext == ".nrrd" else " = "
        if sep in lines[i] and not lines[i].startswith(("NRRD", "#")):
            lines[i] = lines[i].split(sep, 1)[0] + sep + value
    path = tmp_path / f"h{ext}"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1") + body)
    attempt(f"{ext[1:]} absurd headers", path)


@FUZZ
@given(ext=st.sampled_from([".nrrd", ".mha"]), compressed=st.booleans(), change=st.data())
def test_itk_flips_and_truncations(tmp_path, ct_volume, ext, compressed, change):
    tmp_path = fresh(tmp_path)
    data = _itk_file(tmp_path, ct_volume, ext, compressed).read_bytes()
    truncate = change.draw(st.booleans(), label="truncate")
    if truncate:
        data = data[: change.draw(st.integers(0, len(data) - 1), label="cut")]
    else:
        data = flip(data, change.draw(flips_in(len(data), hot=300), label="flips"))
    path = tmp_path / f"m{ext}"
    path.write_bytes(data)
    volume = attempt(f"{ext[1:]} flips and truncations", path)
    if truncate and not compressed and ext == ".mha":
        assert volume is None  # raw voxels cut short are never accepted


def test_itk_compressed_bomb_is_refused_before_allocation(tmp_path):
    """An .mha/.nrrd of a few hundred bytes declaring 16 GB stops at the header."""
    mha = tmp_path / "bomb.mha"
    mha.write_bytes(b"ObjectType = Image\nNDims = 3\nBinaryData = True\nCompressedData = True\n"
                    b"DimSize = 2048 2048 2048\nElementType = MET_USHORT\n"
                    b"ElementDataFile = LOCAL\n" + zlib.compress(b"\0" * 4096))
    nrrd = tmp_path / "bomb.nrrd"
    nrrd.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 600 600 600\n"
                     b"encoding: gzip\nendian: little\n\n" + gzip.compress(b"\0" * 4096))
    for path in (mha, nrrd):
        os.environ["MEDSEG_MAX_IMAGE_BYTES"] = str(4 * 1024**3)
        try:
            assert attempt("itk bombs", path) is None
        finally:
            os.environ["MEDSEG_MAX_IMAGE_BYTES"] = str(64 * 1024**2)


# ---- 2D images ------------------------------------------------------------------------------
def _image_bytes(fmt: str) -> bytes:
    arr = (np.arange(24 * 20) % 251).reshape(20, 24).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


IMAGES_2D = {fmt: _image_bytes(fmt) for fmt in ("PNG", "JPEG", "TIFF")}


@FUZZ
@given(fmt=st.sampled_from(sorted(IMAGES_2D)), change=st.data())
def test_2d_flips_and_truncations(tmp_path, fmt, change):
    tmp_path = fresh(tmp_path)
    data = IMAGES_2D[fmt]
    truncate = change.draw(st.booleans(), label="truncate")
    if truncate:
        data = data[: change.draw(st.integers(0, len(data) - 1), label="cut")]
    else:
        data = flip(data, change.draw(flips_in(len(data), hot=64), label="flips"))
    path = tmp_path / f"i.{fmt.lower()}"
    path.write_bytes(data)
    volume = attempt(f"{fmt.lower()} flips and truncations", path)
    if volume is not None:
        assert volume.spatial_ndim == 2


@pytest.mark.parametrize(("width", "height"), [(2**31 - 1, 2**31 - 1), (100000, 100000),
                                               (0, 10), (1, 2**31 - 1)])
def test_png_header_claiming_a_huge_image_is_refused(tmp_path, width, height):
    data = bytearray(IMAGES_2D["PNG"])
    struct.pack_into(">II", data, 16, width, height)  # IHDR width, height
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))  # a valid CRC
    path = tmp_path / "huge.png"
    path.write_bytes(bytes(data))
    assert attempt("png huge headers", path) is None


# ---- regressions: what the fuzzing found (each crashed, leaked or was accepted before) --------
def _dicom_flip(name: str, pos: int, value: int) -> bytes:
    return flip(DICOM_FILES[name], [(pos, value)])


def _rle_frames(frames: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(DICOM_FILES["MR_small_RLE.dcm"]))
    ds.NumberOfFrames = frames
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def _png_chunk_length() -> bytes:
    return flip(IMAGES_2D["PNG"], [(33, 14)])  # the IDAT length becomes 235 MB


def _meta_ndims(value: str) -> bytes:
    return (f"ObjectType = Image\nNDims = {value}\nBinaryData = True\nDimSize = 2 2 2\n"
            "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n").encode() + b"\0" * 8


@pytest.mark.parametrize(("name", "make", "expected"), [
    # a length byte flipped: pydicom asked the file object for 3.8 GB (now: memory map)
    ("CT_small.dcm", lambda: _dicom_flip("CT_small.dcm", 1098, 1), "no pixel data"),
    # a meta-group length flipped: pydicom's BytesLengthException escaped
    ("CT_small.dcm", lambda: _dicom_flip("CT_small.dcm", 136, 0), "BytesLengthException"),
    # more frames than RLE fragments: StopIteration escaped
    ("MR_small_RLE.dcm", lambda: _rle_frames("3"), "StopIteration"),
    # a PNG chunk length flipped: Pillow allocated 235 MB for a 500-byte file
    ("i.png", _png_chunk_length, None),
    # MetaIO killed the process (SIGSEGV) on these NDims
    ("a.mha", lambda: _meta_ndims("-1"), "NDims"),
    ("b.mha", lambda: _meta_ndims("2147483648"), "NDims"),
    ("c.mha", lambda: _meta_ndims("100000"), "NDims"),
    ("d.mha", lambda: _meta_ndims("1e308"), "NDims"),
])
def test_found_by_fuzzing(tmp_path, name, make, expected):
    path = tmp_path / name
    path.write_bytes(make())
    volume = attempt("regressions", path)
    if expected is not None:
        assert volume is None
        with pytest.raises(InputError, match=expected):
            read_image(path, registry=REGISTRY)


def test_gzip_cut_in_its_trailer_is_refused(tmp_path, nifti_bytes):
    """nibabel stops reading once it has the voxels: a lost CRC/length trailer went unseen."""
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(gzip.compress(nifti_bytes)[:-4])
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_image(path, registry=REGISTRY)


# ---- case pairing ---------------------------------------------------------------------------
_NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
                min_size=1, max_size=40)
_FILE = st.tuples(_NAME, st.sampled_from([*CASE_SUFFIXES, ".txt", "", ".NII.GZ", ".gz",
                                          ".nii.gz.nii", "_0000.nii.gz"]))


@FUZZ
@given(preds=st.lists(_FILE, max_size=8), refs=st.lists(_FILE, max_size=8))
def test_pair_cases_with_random_names(tmp_path_factory, preds, refs):
    root = tmp_path_factory.mktemp("pairs")
    folders = {"pred": root / "pred", "ref": root / "ref"}
    made: dict[str, set[str]] = {}
    for role, files in (("pred", preds), ("ref", refs)):
        folders[role].mkdir()
        made[role] = set()
        for stem, suffix in files:
            name = stem + suffix
            if name in (".", "..") or len(name.encode()) > 200:
                continue
            try:
                (folders[role] / name).write_bytes(b"")
            except OSError:  # the file system refuses the name (encoding): not our input
                continue
            made[role].add(name)
    TALLY["pair_cases random names", "tried"] += 1
    try:
        pairing = pair_cases(folders["pred"], folders["ref"])
    except MedsegError as exc:
        error = str(exc)
    else:
        error = ""
    if error:
        assert "\n" not in error
        return
    listed = {Path(p).name for p in pairing.pred_only + pairing.ref_only + pairing.ignored}
    for case, pred, ref in pairing.pairs:
        assert case_name(pred) == case_name(ref) == case
        assert pred.parent == folders["pred"] and ref.parent == folders["ref"]
        assert pred.name in made["pred"] and ref.name in made["ref"]
        listed |= {pred.name, ref.name}
    visible = {n for role in made.values() for n in role if not n.startswith(".")}
    ambiguous_files = visible - listed
    # every visible file is paired, unpaired, ignored, or part of an ambiguous case
    assert not ambiguous_files or pairing.ambiguous
