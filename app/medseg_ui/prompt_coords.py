"""Where a click on a displayed slice lands in the input's voxels, and back.

The viewer (:mod:`medseg_ui.render`) shows a slice of the image reoriented to RAS by axis
permutation and flips (:func:`medseg.ops.preprocess.canonical_transform`), in radiological
layout: rows are the second remaining RAS axis reversed, columns the first reversed, then
resized to square millimetres. :class:`SliceGeometry` undoes exactly that: a pixel of the
displayed image (any display size: the browser may scale it) -> the slice's pixel -> the RAS
grid index -> the input array's voxel index (i, j, k), the coordinates prompts are given in
(:mod:`medseg.prompts.types`). Pure numpy, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from medseg.ops.preprocess import canonical_transform
from medseg.volume import Volume
from medseg_ui.render import VIEWS


@dataclass(frozen=True)
class SliceGeometry:
    """One displayed slice: ``view`` (``Axial``, ``Coronal``, ``Sagittal``; ``Image`` for 2-D)
    at ``index`` along that view's RAS axis; ``rows, cols`` of the slice before resizing."""

    view: str
    index: int
    rows: int
    cols: int
    #: RAS-grid index (homogeneous) -> input voxel index (homogeneous)
    to_input: np.ndarray
    #: millimetres between rows and between columns
    spacing: tuple[float, float] = (1.0, 1.0)
    #: slices of this view (1 for a 2-D image)
    n_slices: int = 1

    @classmethod
    def of(cls, volume: Volume, view: str, index: int) -> SliceGeometry:
        shape = tuple(int(n) for n in volume.spatial_shape)
        transform = canonical_transform(volume)
        if transform is None:  # 2-D: shown as stored
            if view != "Image":
                raise ValueError(f"a 2-D image has one view, not {view!r}")
            return cls(view, 0, shape[1], shape[0], np.eye(3),
                       _spacing(volume, np.eye(3), (1, 0)))
        ras_shape = [0, 0, 0]
        for axis, (dest, _flip) in enumerate(transform):
            ras_shape[int(dest)] = shape[axis]
        axis = VIEWS[view]
        first, second = (n for a, n in enumerate(ras_shape) if a != axis)
        index = int(np.clip(index, 0, ras_shape[axis] - 1))
        to_input = nib.orientations.inv_ornt_aff(transform, shape)
        second_axis, first_axis = (a for a in (2, 1, 0) if a != axis)
        return cls(view, index, second, first, to_input,
                   _spacing(volume, to_input, (second_axis, first_axis)), ras_shape[axis])

    @property
    def axis(self) -> int | None:
        """The RAS axis the slice is taken across (None for a 2-D image)."""
        return VIEWS.get(self.view)

    # ---- slice pixel <-> input voxel --------------------------------------------------------
    def _ras(self, row: float, col: float) -> list[float]:
        first, second = self.cols - 1 - col, self.rows - 1 - row
        if self.axis is None:
            return [first, second]
        ras = [first, second]
        ras.insert(self.axis, float(self.index))
        return ras

    def voxel(self, row: float, col: float) -> tuple[float, ...]:
        """Input voxel index of the slice pixel (``row``, ``col``) (floats; integral at
        pixel centres)."""
        ijk = self.to_input @ np.array([*self._ras(row, col), 1.0])
        return tuple(float(v) for v in np.round(ijk[:-1], 6))

    def pixel(self, ijk: Sequence[float]) -> tuple[float, float, float]:
        """(row, col, depth) of input voxel ``ijk`` on this slice; ``depth``: how far (in
        voxels along the view's axis) it lies from the slice (0 on it)."""
        ras = np.linalg.solve(self.to_input, np.array([*map(float, ijk), 1.0]))[:-1]
        depth = 0.0 if self.axis is None else float(ras[self.axis] - self.index)
        first, second = (v for a, v in enumerate(ras) if a != self.axis)
        return float(self.rows - 1 - second), float(self.cols - 1 - first), depth

    def take(self, array: np.ndarray) -> np.ndarray:
        """This slice of ``array`` (on the input's spatial grid) in display layout
        (``rows x cols``), as :meth:`medseg_ui.render.DisplayVolume.slice` shows it."""
        row, col = np.meshgrid(np.arange(self.rows), np.arange(self.cols), indexing="ij")
        ras = [self.cols - 1 - col, self.rows - 1 - row]
        if self.axis is not None:
            ras.insert(self.axis, np.full_like(row, self.index))
        ijk = np.tensordot(self.to_input[:-1, :-1], np.stack(ras), axes=1) \
            + self.to_input[:-1, -1][:, None, None]
        return np.asarray(array)[tuple(np.rint(ijk).astype(np.intp))]

    # ---- displayed image pixel <-> slice pixel ---------------------------------------------
    def slice_pixel(self, x: float, y: float, width: float, height: float) -> tuple[int, int]:
        """The slice pixel (row, col) under display pixel (``x``, ``y``) (integer pixels
        counted from the top left, as a browser's offsetX/offsetY) of the slice shown
        ``width`` x ``height``; points off the image are clipped to its border."""
        col = int(np.floor((float(x) + 0.5) * self.cols / float(width)))
        row = int(np.floor((float(y) + 0.5) * self.rows / float(height)))
        return int(np.clip(row, 0, self.rows - 1)), int(np.clip(col, 0, self.cols - 1))

    def display_point(self, row: float, col: float, width: float,
                      height: float) -> tuple[float, float]:
        """Centre (x, y) of slice pixel (``row``, ``col``) on the slice shown ``width`` x
        ``height`` (continuous coordinates, the image spanning [0, width] x [0, height])."""
        return (col + 0.5) * width / self.cols, (row + 0.5) * height / self.rows

    def voxel_at(self, x: float, y: float, width: float, height: float) -> tuple[int, ...]:
        """The input voxel (i, j[, k]) under display pixel (``x``, ``y``)."""
        return tuple(round(v) for v in self.voxel(*self.slice_pixel(x, y, width, height)))


def _spacing(volume: Volume, to_input: np.ndarray, axes: tuple[int, int]) -> tuple[float, float]:
    """Millimetres per step along the RAS-grid ``axes`` (rows' axis, columns' axis)."""
    n = volume.spatial_ndim
    world = np.asarray(volume.affine)[:3, :n] @ to_input[:n, :n]
    return tuple(float(np.linalg.norm(world[:, a])) for a in axes)  # type: ignore[return-value]
