"""A medseg :class:`~medseg.volume.Volume` onto an nnU-Net model's grid, and back.

What ``nnUNetPredictor.predict_from_files`` sees for a NIfTI file, and so what is reproduced:

* nnU-Net's readers (``SimpleITKIO``, ``NibabelIO``) keep the file's voxel order and reverse
  the axes (SimpleITK's ``z, y, x`` array order) with the spacing reversed alike. A medseg
  volume keeps the file's index axes ``i, j, k`` too, so nnU-Net's axis ``s`` is medseg's axis
  ``2 - s``; nothing is reoriented, and the mask lands voxel for voxel on the input grid. The
  ``...WithReorient`` readers first turn the image to the closest RAS orientation (undone on
  the way back).
* ``transpose_forward`` permutes those axes; crop to the bounding box of the non-zero voxels
  (any channel); normalise each channel by its scheme, on the cropped image before resampling;
  resample to the configuration's spacing (:mod:`medseg.models.nnunet.resampling`).

Normalisation schemes (``normalization_schemes``, one per channel):
``CTNormalization`` clips to the training foreground's 0.5/99.5 percentiles and z-scores with
its mean and std (``foreground_intensity_properties_per_channel``); ``ZScoreNormalization``
z-scores with the image's own mean/std, inside the (hole-filled) non-zero mask when
``use_mask_for_norm``; ``NoNormalization``; ``RescaleTo01Normalization``;
``RGBTo01Normalization``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from medseg.errors import InputError
from medseg.models.nnunet.plans import ChannelIntensity, Configuration, Plans
from medseg.models.nnunet.resampling import new_shape, resample_image
from medseg.models.nnunet.sliding_window import every_channel
from medseg.ops.preprocess import canonical_transform, inverse_transform, reorient_array
from medseg.volume import Volume

#: readers that reorient the image to RAS before nnU-Net sees it
REORIENTING_READERS = ("NibabelIOWithReorient", "SimpleITKIOWithReorient")
NORMALIZATIONS = ("CTNormalization", "ZScoreNormalization", "NoNormalization",
                  "RescaleTo01Normalization", "RGBTo01Normalization")
_EPS = 1e-8


@dataclass(frozen=True)
class AxisMap:
    """How a medseg array (``C, i, j, k``) becomes nnU-Net's (``C, a0, a1, a2``): first an
    optional exact reorientation (nibabel orientation transform), then ``axes[a]`` = the medseg
    axis that becomes nnU-Net axis ``a``."""

    axes: tuple[int, ...]
    reorient: np.ndarray | None = None

    @classmethod
    def for_plans(cls, plans: Plans, volume: Volume) -> AxisMap:
        reorient = (canonical_transform(volume)
                    if plans.image_reader_writer in REORIENTING_READERS else None)
        n = volume.spatial_ndim
        return cls(tuple(n - 1 - t for t in plans.transpose_forward), reorient)

    def forward(self, array: np.ndarray) -> np.ndarray:
        """Channel-first medseg array -> nnU-Net axes (a view unless reoriented)."""
        if self.reorient is not None:
            array = reorient_array(array, self.reorient)
        return array.transpose(0, *[a + 1 for a in self.axes])

    def backward(self, array: np.ndarray) -> np.ndarray:
        """Channel-first array in nnU-Net axes -> the input's own axes."""
        inverse = np.argsort(self.axes)
        out = array.transpose(0, *[int(a) + 1 for a in inverse])
        if self.reorient is not None:
            out = reorient_array(out, inverse_transform(self.reorient))
        return out

    def spacing(self, spacing: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(spacing[a] for a in self.axes)


@dataclass
class Prepared:
    """The image on the model grid plus the geometry needed to map a prediction back."""

    #: ``C, *model_grid`` float32 in nnU-Net's axes (dropped once predicted)
    image: torch.Tensor | None
    axis_map: AxisMap
    shape_before_crop: tuple[int, ...]
    bbox: tuple[tuple[int, int], ...]
    #: spacing of the cropped image (nnU-Net axes) and of the model grid
    input_spacing: tuple[float, ...]
    model_spacing: tuple[float, ...]

    @property
    def shape_after_crop(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in self.bbox)


def nonzero_bbox(data: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Half-open bounding box of voxels non-zero in any channel (the whole image when all
    are zero, as nnU-Net's ``get_bbox_from_mask``)."""
    mask = np.any(data != 0, axis=0)
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append((int(hit[0]), int(hit[-1]) + 1) if hit.size else (0, mask.shape[axis]))
    return tuple(box)


def check_normalizations(config: Configuration, plans: Plans, n_channels: int) -> None:
    if len(config.normalization_schemes) != n_channels:
        raise InputError(plans.path, f"configuration {config.name!r} lists "
                                     f"{len(config.normalization_schemes)} normalization "
                                     f"schemes for {n_channels} input channel(s)")
    for c, scheme in enumerate(config.normalization_schemes):
        if scheme not in NORMALIZATIONS:
            raise InputError(plans.path, f"normalization scheme {scheme!r} of channel {c} is not "
                                         f"supported (supported: {', '.join(NORMALIZATIONS)})")
        if scheme == "CTNormalization" and c not in plans.intensity:
            raise InputError(plans.path, f"channel {c} uses CTNormalization but the plans hold "
                                         "no foreground intensity properties for it")


def normalize_channel(image: np.ndarray, scheme: str, use_mask: bool,
                      intensity: ChannelIntensity | None, mask: np.ndarray | None,
                      where: str) -> None:
    """One cropped float32 channel, in place, as nnU-Net's normalisation classes do."""
    if scheme == "CTNormalization":
        assert intensity is not None
        np.clip(image, intensity.p00_5, intensity.p99_5, out=image)
        image -= intensity.mean
        image /= max(intensity.std, _EPS)
    elif scheme == "ZScoreNormalization":
        if use_mask and mask is not None:
            values = image[mask]
            mean, std = values.mean(), values.std()
            image[mask] = (values - mean) / max(std, _EPS)
        else:
            mean, std = image.mean(), image.std()
            image -= mean
            image /= max(std, _EPS)
    elif scheme == "RescaleTo01Normalization":
        image -= image.min()
        image /= np.clip(image.max(), a_min=_EPS, a_max=None)
    elif scheme == "RGBTo01Normalization":
        if image.min() < 0 or image.max() > 255:
            raise InputError(where, "the model expects RGB values 0..255 (RGBTo01Normalization), "
                                    f"the image holds {image.min():g}..{image.max():g}")
        image /= 255.0
    # NoNormalization: the float32 values as they are


def model_grid_shape(volume: Volume, plans: Plans, config: Configuration) -> tuple[int, ...]:
    """The shape :func:`prepare_volume` resamples ``volume`` to, from its header alone and
    before the crop to the non-zero box (which can only shrink it): an upper bound."""
    axis_map = AxisMap.for_plans(plans, volume)
    shape = list(volume.spatial_shape)
    if axis_map.reorient is not None:
        turned = list(shape)
        for src, (dst, _flip) in enumerate(axis_map.reorient):
            turned[int(dst)] = shape[src]
        shape = turned
    shape = [shape[a] for a in axis_map.axes]
    spacing = axis_map.spacing(tuple(float(s) for s in volume.spacing))
    target = config.spacing if len(config.spacing) == 3 else (spacing[0], *config.spacing)
    return tuple(int(n) for n in new_shape(shape, spacing, target))


def prepare_volume(volume: Volume, plans: Plans, config: Configuration,
                   where: str = "input") -> Prepared:
    """Transpose, crop, normalise and resample ``volume`` as nnU-Net's preprocessor does."""
    if volume.spatial_ndim != 3:
        raise InputError(where, "nnU-Net models run on 3D images; this image is "
                                f"{volume.spatial_ndim}D")
    axis_map = AxisMap.for_plans(plans, volume)
    data = axis_map.forward(volume.array)
    spacing = axis_map.spacing(tuple(float(s) for s in volume.spacing))
    shape_before = tuple(int(s) for s in data.shape[1:])
    bbox = nonzero_bbox(data)
    # C order in nnU-Net's axes (np.array would keep the file's memory order: slow slices)
    crop = np.array(data[every_channel(slice(a, b) for a, b in bbox)], dtype=np.float32,
                    order="C")
    del data
    target = config.spacing if len(config.spacing) == 3 else (spacing[0], *config.spacing)
    shape = new_shape(crop.shape[1:], spacing, target)

    # nnU-Net's hole-filled non-zero mask (its "seg >= 0"), before any channel is normalised
    mask = (ndimage.binary_fill_holes(np.any(crop != 0, axis=0))
            if any(s == "ZScoreNormalization" and m for s, m in
                   zip(config.normalization_schemes, config.use_mask_for_norm, strict=True))
            else None)
    for c in range(crop.shape[0]):
        normalize_channel(crop[c], config.normalization_schemes[c], config.use_mask_for_norm[c],
                          plans.intensity.get(c), mask, where)
    del mask
    resampled = resample_image(crop, shape, spacing, target, config.resampling_data)
    del crop
    return Prepared(image=torch.from_numpy(resampled), axis_map=axis_map,
                    shape_before_crop=shape_before, bbox=bbox, input_spacing=spacing,
                    model_spacing=tuple(float(t) for t in target))
