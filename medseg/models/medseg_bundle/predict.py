"""A medseg bundle's network over a prepared image: MONAI sliding window with Gaussian blending
(optionally test-time mirroring), softmax; then back per class onto the input grid with a
running argmax, so that never all classes are held at full resolution at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from medseg.models.base import InferenceSettings
from medseg.models.medseg_bundle.bundle import Bundle
from medseg.ops.device import autocast
from medseg.ops.plugin_calls import checked_forward
from medseg.ops.preprocess import inverse_transform, reorient_array, resize


def _predictor(net: torch.nn.Module, mirror: bool, spatial_dims: int,
               check: tuple[int, str] | None = None) -> Callable:
    checked = [check is None]

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not checked[0] and check is not None:
            out = checked_forward(net, x, *check)
            checked[0] = True
        else:
            out = net(x)
        if isinstance(out, (list, tuple)):
            out = out[0]
        if out.ndim == x.ndim + 1:  # deep supervision stacked on dim 1
            out = out[:, 0]
        return torch.softmax(out.float(), dim=1)

    if not mirror:
        return forward

    axes = [(d,) for d in range(2, 2 + spatial_dims)]

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        acc = forward(x)
        for ax in axes:
            acc += torch.flip(forward(torch.flip(x, ax)), ax)
        return acc / (1 + len(axes))

    return mirrored


def predict_probabilities(net: torch.nn.Module, image: torch.Tensor, bundle: Bundle,
                          settings: InferenceSettings, device: torch.device,
                          check_label: str | None = None) -> torch.Tensor:
    """Class probabilities ``K, *grid`` on the model grid (stitched on the CPU when needed).

    With ``check_label`` the first forward pass is checked (see :func:`checked_forward`)."""
    roi = settings.roi_size or bundle.patch_size
    roi = tuple(min(r, max(s, r)) for r, s in zip(roi, image.shape[1:], strict=True))
    n_out = len(bundle.labels) * int(np.prod(image.shape[1:]))
    stitch_on_cpu = device.type == "cuda" and n_out * 4 > 2 * 1024**3
    with torch.inference_mode(), autocast(device):
        probs = sliding_window_inference(
            image[None].to(device), roi_size=roi, sw_batch_size=settings.sw_batch_size,
            predictor=_predictor(net, settings.mirror, bundle.spatial_dims,
                                 None if check_label is None
                                 else (len(bundle.labels), check_label)),
            overlap=settings.overlap if settings.overlap is not None
            else float(bundle.inference.get("overlap", 0.25)), mode="gaussian", sigma_scale=0.125,
            padding_mode="constant", cval=0.0, sw_device=device,
            device=torch.device("cpu") if stitch_on_cpu else device,
        )
    return probs[0].float().cpu()


def labels_on_input_grid(probs: torch.Tensor, canonical_shape: Sequence[int],
                         transform: np.ndarray | None) -> np.ndarray:
    """Per-class resize of probabilities to the canonical input grid with a running argmax,
    then the inverse reorientation; returns channel indices ``X, Y[, Z]``."""
    best_p = resize(probs[0:1], canonical_shape)[0]
    best_c = torch.zeros(best_p.shape, dtype=torch.uint8)
    for c in range(1, probs.shape[0]):
        p = resize(probs[c : c + 1], canonical_shape)[0]
        better = p > best_p
        best_p = torch.where(better, p, best_p)
        best_c[better] = c
    out = best_c.numpy()[None]
    return reorient_array(out, inverse_transform(transform))[0]


