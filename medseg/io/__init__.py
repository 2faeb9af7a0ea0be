"""Reading any supported image into a :class:`~medseg.volume.Volume` and writing results.

Readers come from the registry (``medseg_register_readers``), so plugins can add formats.
The reader is chosen by content (``sniff``), not only by file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.errors import GeometryError, InputError, MedsegError, input_error_from_os
from medseg.io.guards import reason
from medseg.io.image2d import write_png
from medseg.io.itk import ITK_EXTENSIONS, write_itk
from medseg.io.nifti import write_nifti
from medseg.registry import load_registry
from medseg.volume import LabelMap, Volume

if TYPE_CHECKING:
    from medseg.registry import Registry

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def has_suffix(path: str | Path, suffixes: tuple[str, ...]) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in suffixes)


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry

    return load_registry()


def read_image(
    path: str | Path, *, registry: Registry | None = None, **options: Any
) -> Volume:
    """Read a file or folder with the first reader that recognises its content.

    ``options`` are passed to the reader (for example ``series=UID`` for DICOM).
    Errors are :class:`InputError` naming the path.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        if path.is_dir():
            if not any(path.iterdir()):
                raise InputError(path, "folder is empty")
        elif path.is_file():  # unreadable: say so, not "not valid nifti" (never a FIFO)
            with open(path, "rb"):
                pass
    except OSError as exc:
        raise input_error_from_os(path, exc) from None
    reg = _registry(registry)
    for reader in reg.readers_by_priority():
        try:
            recognised = reader.sniff(path)
        except Exception:  # a sniffer that trips on hostile bytes does not recognise them
            recognised = False
        if not recognised:
            continue
        try:
            return reader.read(path, **options)
        except MedsegError:
            raise
        except TypeError as exc:
            if "argument" in str(exc):
                raise InputError(path, f"reader {reader.name!r} rejected the options "
                                       f"({reason(exc)})") from None
            raise InputError(path, f"reader {reader.name!r} failed ({reason(exc)})") from None
        except MemoryError:
            raise InputError(path, "image is too large to load into memory") from None
        except Exception as exc:  # last resort (a plugin's bug, a decoder's surprise): no
            # traceback, one line naming the file and the exception type
            raise InputError(path, f"reader {reader.name!r} failed ({reason(exc)})") from None
    expected = [r.name for r in reg.readers.specs.values()
                if any(str(path).lower().endswith(e) for e in r.extensions)]
    if path.is_dir():
        raise InputError(path, "folder holds no readable image (no DICOM files found)")
    if expected:
        raise InputError(path, f"content is not valid {expected[0]} although the name says so")
    known = sorted({e for r in reg.readers.specs.values() for e in r.extensions})
    raise InputError(path, f"unrecognised image format; supported: {' '.join(known)}")


def read_label_map(path: str | Path, *, registry: Registry | None = None,
                   **options: Any) -> LabelMap:
    """Read an image and check it is an integer label map."""
    vol = read_image(path, registry=registry, **options)
    try:
        return LabelMap.from_volume(vol)
    except GeometryError as exc:
        raise InputError(path, f"not a label map ({exc})") from None


def write_image(volume: Volume, path: str | Path, *, reference: Volume | None = None,
                label_names: dict[int, str] | None = None) -> Path:
    """Write ``volume`` (atomically) by extension: NIfTI, NRRD/MHA, or PNG for 2D.

    With ``reference`` the output takes the reference's exact affine; the spatial shapes
    must agree (a mask is always written on the grid of the image it belongs to).
    ``label_names`` are stored in a NIfTI header extension (other formats ignore them).
    """
    path = Path(path)
    if reference is not None:
        if volume.spatial_shape != reference.spatial_shape:
            raise GeometryError(
                f"{path}: shape {volume.spatial_shape} does not match the reference "
                f"{reference.spatial_shape}"
            )
        volume = type(volume)(volume.array, reference.affine)
    if has_suffix(path, NIFTI_SUFFIXES):

        return write_nifti(volume, path, label_names)

    if has_suffix(path, ITK_EXTENSIONS):
        return write_itk(volume, path)
    if has_suffix(path, (".png",)):

        return write_png(volume, path)
    raise InputError(path, "unsupported output format; use .nii.gz, .nii, .nrrd, .mha or .png")
