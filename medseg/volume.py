"""The one image type of medseg: a channel-first array plus its world geometry.

Layout is MONAI's ``C, X, Y[, Z]`` (channel first, then voxel axes in the order of the
file's index axes ``i, j, k``).  The 4x4 ``affine`` maps voxel indices ``(i, j, k, 1)`` to
world millimetres in **RAS+** (the NIfTI / nibabel convention) and is the single source of
truth: ``spacing``, ``origin`` and ``direction`` are derived from it.  Images read from
LPS-based formats (DICOM, NRRD, MHA) are converted to RAS+ on reading and back on writing.

A 2D image keeps a full 4x4 affine whose third column is the unit slice normal scaled by a
nominal 1 mm thickness, so 2D and 3D share every geometric operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.errors import GeometryError

#: Flip between RAS+ (NIfTI) and LPS+ (DICOM/ITK) world coordinates.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_from_geometry(
    spacing: Any, origin: Any, direction: Any | None = None, *, lps: bool = False
) -> np.ndarray:
    """Build a 4x4 RAS+ affine from spacing, origin and a direction matrix (columns = axes).

    ``spacing`` and ``origin`` may have 2 or 3 entries; a 2D geometry is embedded in 3D.
    With ``lps=True`` origin and direction are given in LPS+ (ITK/DICOM) and are converted.
    """
    spacing = np.asarray(spacing, dtype=float).ravel()
    origin = np.asarray(origin, dtype=float).ravel()
    n = spacing.size
    if n not in (2, 3) or origin.size != n:
        raise GeometryError(
            f"spacing {spacing.tolist()} and origin {origin.tolist()} must be 2D or 3D"
        )
    d = np.eye(3)
    if direction is not None:
        dm = np.asarray(direction, dtype=float)
        if dm.size == n * n:
            d[:n, :n] = dm.reshape(n, n)
        elif dm.size == 9:
            d = dm.reshape(3, 3)
        else:
            raise GeometryError(f"direction with {dm.size} entries does not fit {n}D geometry")
    sp = np.ones(3)
    sp[:n] = spacing
    org = np.zeros(3)
    org[:n] = origin
    affine = np.eye(4)
    affine[:3, :3] = d * sp[None, :]
    affine[:3, 3] = org
    return LPS_TO_RAS @ affine if lps else affine


def _validate_affine(affine: np.ndarray) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise GeometryError(f"affine must be 4x4, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise GeometryError("affine contains NaN or infinite values")
    if not np.allclose(a[3], [0, 0, 0, 1]):
        raise GeometryError(f"affine bottom row must be [0, 0, 0, 1], got {a[3].tolist()}")
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    if np.any(spacing <= 0) or abs(np.linalg.det(a[:3, :3])) < 1e-12 * float(np.prod(spacing)):
        raise GeometryError(f"affine is singular (voxel spacing {spacing.tolist()})")
    a = a.copy()
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Volume:
    """An image: ``array`` of shape ``(C, X, Y[, Z])`` and a 4x4 RAS+ ``affine``.

    Construct with :meth:`from_spatial` for a single-channel array without a channel axis.
    """

    array: np.ndarray
    affine: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim not in (3, 4):
            raise GeometryError(
                f"{type(self).__name__} array must be (C, X, Y[, Z]), got shape {arr.shape}"
            )
        if arr.size == 0 or 0 in arr.shape:
            raise GeometryError(f"{type(self).__name__} array is empty (shape {arr.shape})")
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        if not (np.issubdtype(arr.dtype, np.number)):
            raise GeometryError(f"array dtype {arr.dtype} is not numeric")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "affine", _validate_affine(self.affine))
        self._check_dtype()

    def _check_dtype(self) -> None:
        pass

    # ---- construction helpers -------------------------------------------------------
    @classmethod
    def from_spatial(cls, array: Any, affine: Any) -> Volume:
        """Wrap a spatial-only array ``(X, Y[, Z])`` as a single-channel volume."""
        return cls(np.asarray(array)[None], affine)

    def with_array(self, array: Any) -> Volume:
        """Same geometry, new data (channel-first, same spatial shape)."""
        array = np.asarray(array)
        if array.shape[1:] != self.spatial_shape:
            raise GeometryError(
                f"new array spatial shape {array.shape[1:]} differs from {self.spatial_shape}"
            )
        return Volume(array, self.affine)

    # ---- derived geometry -----------------------------------------------------------
    @property
    def spatial_ndim(self) -> int:
        return self.array.ndim - 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape[1:])

    @property
    def n_channels(self) -> int:
        return int(self.array.shape[0])

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each index axis (2 or 3 values)."""
        sp = np.linalg.norm(self.affine[:3, :3], axis=0)
        return tuple(float(s) for s in sp[: self.spatial_ndim])

    @property
    def origin(self) -> tuple[float, ...]:
        """World RAS+ position of the centre of voxel 0 (3 values, also for 2D)."""
        return tuple(float(v) for v in self.affine[:3, 3])

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS+ directions of the index axes."""
        a = self.affine[:3, :3]
        return a / np.linalg.norm(a, axis=0)[None, :]

    @property
    def orientation(self) -> str:
        """Orientation code such as ``'RAS'`` or ``'LPS'`` (closest axis labels)."""
        import nibabel as nib

        codes = "".join(nib.orientations.aff2axcodes(self.affine))
        return codes[: self.spatial_ndim]

    @property
    def data(self) -> np.ndarray:
        """The spatial array of a single-channel volume (no channel axis)."""
        if self.n_channels != 1:
            raise GeometryError(f"volume has {self.n_channels} channels; use .array")
        return self.array[0]

    def world_coordinates(self, indices: Any) -> np.ndarray:
        """Map ``(N, ndim)`` voxel indices to ``(N, 3)`` RAS+ world coordinates in mm."""
        idx = np.atleast_2d(np.asarray(indices, dtype=float))
        full = np.zeros((idx.shape[0], 4))
        full[:, : idx.shape[1]] = idx
        full[:, 3] = 1.0
        return (full @ self.affine.T)[:, :3]

    def corner_coordinates(self) -> np.ndarray:
        """World coordinates of the centres of the 2**ndim corner voxels."""
        shape = self.spatial_shape
        grids = np.meshgrid(*[[0, s - 1] for s in shape], indexing="ij")
        return self.world_coordinates(np.stack([g.ravel() for g in grids], axis=1))

    def same_grid(self, other: Volume, atol: float = 1e-4) -> bool:
        """True when both volumes sample the same voxel grid in world space."""
        return self.spatial_shape == other.spatial_shape and bool(
            np.allclose(self.affine, other.affine, atol=atol)
        )

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        sp = ", ".join(f"{s:.3g}" for s in self.spacing)
        return (
            f"{type(self).__name__}(shape={self.array.shape}, dtype={self.array.dtype}, "
            f"spacing=({sp}), orientation={self.orientation})"
        )


@dataclass(frozen=True, eq=False, repr=False)
class LabelMap(Volume):
    """A single-channel integer label map: ``array`` is ``(1, X, Y[, Z])``, 0 = background."""

    def _check_dtype(self) -> None:
        if not np.issubdtype(self.array.dtype, np.integer):
            raise GeometryError(f"label map must have an integer dtype, got {self.array.dtype}")
        if self.n_channels != 1:
            raise GeometryError(f"label map must have one channel, got {self.n_channels}")

    @classmethod
    def from_volume(cls, volume: Volume) -> LabelMap:
        """Interpret a read image as a label map (values must be whole numbers)."""
        arr = volume.array
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
                raise GeometryError("label map holds non-integer values")
            arr = arr.astype(np.int32)
        return cls(arr, volume.affine)

    def with_array(self, array: Any) -> LabelMap:
        array = np.asarray(array)
        if array.ndim == self.spatial_ndim:
            array = array[None]
        if array.shape[1:] != self.spatial_shape:
            raise GeometryError(
                f"new array spatial shape {array.shape[1:]} differs from {self.spatial_shape}"
            )
        return LabelMap(array, self.affine)

    def label_counts(self) -> dict[int, int]:
        """Voxel count per label value present (background included)."""
        values, counts = np.unique(self.array, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}
