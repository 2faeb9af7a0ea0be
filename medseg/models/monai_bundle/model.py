"""A MONAI bundle run by medseg exactly as ``monai.bundle run`` runs its inference config.

The protocol of :mod:`medseg.models.base` maps onto the bundle's own components:

* ``prepare``: the input volume is written to a temporary NIfTI and the bundle's
  ``preprocessing`` loads and transforms it (its own ``LoadImaged``, orientation, spacing,
  intensity scaling), so nothing of the bundle's pipeline is re-implemented;
* ``predict``: the bundle's ``inferer`` runs ``network_def`` with the bundle's weights on the
  batch, as MONAI's ``SupervisedEvaluator`` does (collate, infer, decollate), followed by the
  postprocessing transforms that act on the model grid (those before ``Invertd``, e.g.
  ``Activationsd`` softmax);
* ``restore``: the rest of the bundle's ``postprocessing`` (``Invertd`` back to the input grid,
  ``AsDiscreted`` argmax...) with its savers dropped; channel indices (and probabilities when
  asked) are returned on the input's exact grid. A bundle without ``Invertd`` has its output
  resampled onto the input grid (nearest neighbour).

Overrides as ``monai.bundle run --bundle_root B --output_dir O --dataset_dir D`` would set:
``bundle_root`` is the bundle folder, ``device`` is medseg's device, ``output_dir`` and
``dataset_dir`` point at a private temporary folder (nothing is saved there). medseg's own
``--overlap``/``--roi-size``/``--mirror`` do not apply: the bundle's inferer decides.

MONAI's ``ConfigParser`` is given the configs as the data medseg checked
(:mod:`.sanitize`), never the files: ``SaveImage*`` dropped; for an untrusted (code-free)
bundle every name already resolved to its allow-listed object, and the bundle folder kept
off ``sys.path`` (:mod:`.import_path`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InputError, MedsegError, PluginError, exception_summary, first_line
from medseg.models.base import ModelInfo, Prediction
from medseg.models.monai_bundle.describe import code_listing
from medseg.models.monai_bundle.import_path import (
    bundle_import_path,
    importable_modules,
    off_sys_path,
)
from medseg.models.monai_bundle.layout import (
    BundleLayout,
    bundle_info,
    find_layout,
    read_config,
    walk,
)
from medseg.models.monai_bundle.sanitize import drop_writers, with_objects
from medseg.models.monai_bundle.trust import (
    TRUST_ENV,
    bundle_code,
    check_trust,
    describe_items,
    is_trusted,
    printable,
)
from medseg.ops.device import resolve_device

#: affine entries (mm) within which the bundle's output counts as lying on the input grid
GRID_TOLERANCE_MM = 1e-3


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``models/model.pt`` (``weights_only=True``). A checkpoint holding it
    under ``"model"`` is accepted, as MONAI's ``CheckpointLoader`` does; anything else is
    refused."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(path, f"not a plain state dict: refused by weights_only loading "
                               f"({first_line(exc, 160)})") from None
    except Exception as exc:
        raise InputError(path, f"corrupt weights file ({exception_summary(exc)})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if (not isinstance(obj, dict) or not obj
            or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                       for k, v in obj.items())):
        what = "tensors and other objects" if isinstance(obj, dict) else "objects"
        raise InputError(path, f"not a plain state dict (a {type(obj).__name__} of {what})")
    return obj


@dataclass
class BundlePrepared:
    """The bundle's data dict on the model grid, and the input grid to come back to."""

    item: dict[str, Any]
    shape: tuple[int, ...]
    affine: np.ndarray


class MonaiBundleModel:
    """A trusted (or code-free) MONAI bundle behind :class:`medseg.models.SegmentationModel`."""

    image_key = "image"  # MONAI's CommonKeys, as its SupervisedEvaluator uses them
    pred_key = "pred"

    def __init__(self, layout: BundleLayout, info: ModelInfo, device: Any = None, *,
                 config: dict[str, Any], meta: dict[str, Any], trusted: bool) -> None:
        from monai.bundle import ConfigParser

        self.layout = layout
        self.info = info
        self.trusted = trusted
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self._tmp = tempfile.TemporaryDirectory(prefix="medseg-monai-bundle-")
        try:
            config, meta = drop_writers(config), drop_writers(meta)
            if not trusted:  # code-free: every name becomes the allow-listed object it names
                config = with_objects(config, layout.inference)
                meta = with_objects(meta, layout.metadata)
        except RecursionError:
            raise InputError(layout.inference, "config nested too deeply") from None
        parser = ConfigParser(config)
        parser.read_meta(meta)
        parser.update({"bundle_root": str(layout.root), "output_dir": self._tmp.name,
                       "dataset_dir": self._tmp.name, "device": self.device})
        with self._import_path():
            parser.parse(reset=True)
            self.net = self._network(parser)
            self.preprocessing = _without_writers(self._component(parser, "preprocessing"))
            from monai.inferers import SimpleInferer

            self.inferer = (self._component(parser, "inferer") if "inferer" in parser
                            else SimpleInferer())
            post = (self._component(parser, "postprocessing") if "postprocessing" in parser
                    else None)
            self.amp = self._evaluator_amp(parser)
        self.model_grid_post, self.input_grid_post = _split_postprocessing(post)

    # -- building -------------------------------------------------------------------------
    def _import_path(self) -> contextlib.AbstractContextManager[None]:
        """The bundle folder on ``sys.path`` when trusted, kept off it otherwise."""
        return bundle_import_path(self.layout.root, self.trusted)

    def _component(self, parser: Any, key: str) -> Any:
        if key not in parser:
            raise InputError(self.layout.inference, f"MONAI bundle config has no {key!r}")
        try:
            return parser.get_parsed_content(key)
        except MedsegError:
            raise
        except Exception as exc:
            raise InputError(self.layout.inference, f"cannot build {key!r}: "
                                                    f"{exception_summary(exc)}") from None

    def _evaluator_amp(self, parser: Any) -> bool:
        """The zoo evaluator's ``amp`` flag: float16 autocast on CUDA, as MONAI's
        ``SupervisedEvaluator`` runs the inferer (nothing on the CPU)."""
        if self.device.type != "cuda" or "evaluator#amp" not in parser:
            return False
        try:
            return bool(parser.get_parsed_content("evaluator#amp"))
        except Exception:
            return False

    def _network(self, parser: Any) -> torch.nn.Module:
        weights = self.layout.weights
        if self.layout.torchscript:
            try:
                net = torch.jit.load(str(weights), map_location="cpu")
            except Exception as exc:
                raise InputError(weights, f"corrupt TorchScript model "
                                          f"({exception_summary(exc)})") from None
        else:
            state = load_weights(weights)
            net = self._component(parser, "network_def")
            if not isinstance(net, torch.nn.Module):
                raise InputError(self.layout.inference, f"network_def builds a "
                                                        f"{type(net).__name__}, not a network")
            try:
                net.load_state_dict(state, strict=True)
            except Exception as exc:
                raise InputError(weights, f"weights do not fit network_def "
                                          f"({exception_summary(exc)})") from None
        return net.to(self.device).eval()

    # -- the protocol ---------------------------------------------------------------------
    def prepare(self, volume: Any, settings: Any) -> BundlePrepared:
        import nibabel as nib

        asked = [flag for flag, on in (("--mirror", getattr(settings, "mirror", False)),
                                       ("--roi-size", getattr(settings, "roi_size", None)))
                 if on]
        if asked:
            raise MedsegError(f"MONAI bundle {self.layout.root} runs its own inferer: "
                              f"{' and '.join(asked)} "
                              f"{'does' if len(asked) == 1 else 'do'} not apply")

        arr = np.asarray(volume.array)
        if arr.dtype.kind == "b" or (arr.dtype.itemsize > 4 and arr.dtype.kind in "iu"):
            arr = arr.astype(np.float32)  # types NIfTI lacks; LoadImaged makes float32 anyway
        data = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
        image = nib.Nifti1Image(data, np.asarray(volume.affine, dtype=np.float64))
        image.set_qform(volume.affine, code=1)
        image.set_sform(volume.affine, code=1)
        fd, name = tempfile.mkstemp(suffix=".nii", dir=self._tmp.name)  # one per call
        os.close(fd)
        path = Path(name)
        nib.save(image, path)
        try:
            with self._import_path():
                item = self.preprocessing({self.image_key: str(path)})
        except MedsegError:
            raise
        except Exception as exc:
            raise PluginError(f"MONAI bundle {self.layout.root} preprocessing failed: "
                              f"{exception_summary(exc)}") from None
        finally:
            path.unlink(missing_ok=True)
        if isinstance(item, list):
            if len(item) != 1:
                raise PluginError(f"MONAI bundle {self.layout.root} preprocessing returned "
                                  f"{len(item)} samples for one image")
            item = item[0]
        return BundlePrepared(dict(item), tuple(volume.spatial_shape),
                              np.array(volume.affine, dtype=np.float64))

    def predict(self, prepared: BundlePrepared, settings: Any) -> torch.Tensor:
        from monai.data import decollate_batch, list_data_collate

        batch = list_data_collate([prepared.item])
        x = batch[self.image_key].to(self.device)
        try:
            amp = (torch.autocast("cuda") if self.amp and self.device.type == "cuda"
                   else contextlib.nullcontext())
            with torch.no_grad(), amp, self._import_path():
                pred = self.inferer(x, self.net)
        except Exception as exc:
            raise PluginError(f"MONAI bundle {self.layout.root} network failed on input of "
                              f"shape {tuple(x.shape)}: {exception_summary(exc)}") from None
        batch[self.image_key] = x
        batch[self.pred_key] = pred
        item = decollate_batch(batch, detach=True)[0]
        item = self._apply(self.model_grid_post, item)
        out = item[self.pred_key]
        n = len(self.info.labels)
        if out.ndim != len(prepared.shape) + 1 or out.shape[0] != n:
            raise PluginError(f"MONAI bundle {self.layout.root} predicted "
                              f"{tuple(out.shape)}, expected {n} channels (channel_def)")
        prepared.item = item
        return out.float().cpu()

    def restore(self, prepared: BundlePrepared, probabilities: torch.Tensor,
                settings: Any) -> Prediction:
        from monai.data import MetaTensor
        from monai.transforms import AsDiscrete, AsDiscreted

        item = dict(prepared.item)
        held = item[self.pred_key]
        if not isinstance(probabilities, MetaTensor) and isinstance(held, MetaTensor):
            probabilities = MetaTensor(probabilities, meta=held.meta,
                                       applied_operations=held.applied_operations)
        item[self.pred_key] = probabilities.to(device=held.device, dtype=held.dtype)
        soft = None
        for t in self.input_grid_post:
            if soft is None and isinstance(t, (AsDiscreted, AsDiscrete)):
                soft = item[self.pred_key]
            item = self._apply([t], item)
        out = item[self.pred_key]
        if soft is None:
            soft = out if out.shape[0] == len(self.info.labels) else None
        n = len(self.info.labels)
        if out.shape[0] == n and n > 1:
            channels = out.argmax(0, keepdim=True)
        elif out.shape[0] == 1:
            channels = out.round()
        else:
            raise PluginError(f"MONAI bundle {self.layout.root} postprocessing returned "
                              f"{out.shape[0]} channels, expected 1 or {n}")
        channels = self._on_input_grid(channels, prepared, "nearest")
        labels = channels[0].cpu().numpy().astype(np.int64)
        if labels.min() < 0 or labels.max() >= n:
            raise PluginError(f"MONAI bundle {self.layout.root} produced channel "
                              f"{int(labels.max())}, the metadata defines {n}")
        probs = None
        if settings.probabilities and soft is not None:
            soft = soft.float()
            summed = soft.sum(0)
            if soft.min() < 0 or not torch.allclose(summed, torch.ones_like(summed), atol=1e-3):
                soft = torch.softmax(soft, 0)  # the bundle's output was logits
            probs = self._on_input_grid(soft, prepared, "bilinear").cpu().numpy()
            probs = probs.astype(np.float32)
        return Prediction(labels.astype(np.uint8 if n < 256 else np.uint16), probs)

    # -- helpers --------------------------------------------------------------------------
    def _apply(self, transforms: list[Any], item: dict[str, Any]) -> dict[str, Any]:
        from monai.transforms import apply_transform

        for t in transforms:
            try:
                with self._import_path():
                    out = apply_transform(t, item)
            except Exception as exc:
                raise PluginError(f"MONAI bundle {self.layout.root} postprocessing "
                                  f"{type(t).__name__} failed: {exception_summary(exc)}") from None
            if not isinstance(out, dict):
                raise PluginError(f"MONAI bundle {self.layout.root} postprocessing "
                                  f"{type(t).__name__} returned a {type(out).__name__}, "
                                  f"not one data dict")
            item = out
        return item

    def _on_input_grid(self, tensor: torch.Tensor, prepared: BundlePrepared,
                       mode: str) -> torch.Tensor:
        """``tensor`` as it is when it already lies on the input grid; else resampled there
        from its own affine (a bundle without ``Invertd``)."""
        from monai.data import MetaTensor
        from monai.transforms import SpatialResample

        affine = tensor.affine.cpu().numpy() if isinstance(tensor, MetaTensor) else None
        if tuple(tensor.shape[1:]) == prepared.shape and (
                affine is None or np.allclose(affine, prepared.affine, atol=GRID_TOLERANCE_MM)):
            return tensor
        if affine is None:
            raise PluginError(f"MONAI bundle {self.layout.root} returned a "
                              f"{tuple(tensor.shape[1:])} grid without geometry, the input is "
                              f"{prepared.shape}")
        resample = SpatialResample(mode=mode, padding_mode="zeros", dtype=np.float32)
        out = resample(tensor.float(), dst_affine=torch.as_tensor(prepared.affine),
                       spatial_size=prepared.shape)
        return out.round() if mode == "nearest" else out


def _without_writers(transform: Any) -> Any:
    """A built preprocessing without its ``SaveImage*`` transforms (a trusted config may reach
    them through expressions that :func:`.sanitize.drop_writers` cannot see)."""
    from monai.transforms import Compose, SaveImage, SaveImaged

    if isinstance(transform, Compose):
        transform.transforms = tuple(t for t in transform.transforms
                                     if not isinstance(t, (SaveImage, SaveImaged)))
        for t in transform.transforms:
            _without_writers(t)
    return transform


def _split_postprocessing(post: Any) -> tuple[list[Any], list[Any]]:
    """The bundle's postprocessing as (class probabilities on the model grid, the rest),
    savers dropped: the first part ends before the first ``Invertd`` or ``AsDiscreted``
    (bundles take the argmax before or after inverting)."""
    from monai.transforms import AsDiscrete, AsDiscreted, Compose, Invertd, SaveImage, SaveImaged

    if post is None:
        return [], []
    transforms = list(post.flatten().transforms) if isinstance(post, Compose) else [post]
    transforms = [t for t in transforms if not isinstance(t, (SaveImaged, SaveImage))]
    for i, t in enumerate(transforms):
        if isinstance(t, (Invertd, AsDiscreted, AsDiscrete)):
            return transforms[:i], transforms[i:]
    return [], transforms


def _refuse_multilabel(layout: BundleLayout, config: dict[str, Any]) -> None:
    """Sigmoid outputs are overlapping regions (BraTS-style), not one class per voxel."""
    for where, item in walk(config.get("postprocessing", {}), "postprocessing"):
        target = item.get("_target_") if isinstance(item, dict) else None
        if (isinstance(target, str) and target.rsplit(".", 1)[-1] in ("Activationsd",
                                                                      "Activations")
                and item.get("sigmoid") not in (None, False)):
            raise InputError(layout.inference, f"multi-label bundle ({where} applies a sigmoid):"
                                               f" overlapping regions are not supported")


def load_monai_bundle(path: Path, *, registry: Any = None, device: Any = None,
                      trust: bool = False) -> MonaiBundleModel:
    """Open a MONAI bundle. Its configs are checked for code before MONAI parses anything
    (:mod:`medseg.models.monai_bundle.trust`); an untrusted bundle that holds code is refused
    with a one-line :class:`InputError`."""
    layout = find_layout(path)
    meta = read_config(layout.metadata)
    config = read_config(layout.inference)
    with off_sys_path(layout.root):  # MONAI may be imported (and probe modules) here
        items = bundle_code(layout, config, meta)
    if layout.torchscript and not is_trusted(layout.root, bool(trust)):
        others = items[:-1]  # the last item is the TorchScript model itself
        also = f" and Python ({describe_items(others)})" if others else ""
        raise InputError(layout.weights, f"untrusted bundle runs a TorchScript program{also}; "
                                         f"pass --trust-bundle or list it in {TRUST_ENV}")
    in_meta = items and all(code.where.startswith("_meta_#") for code in items)
    check_trust(layout.root, layout.metadata if in_meta else layout.inference, items,
                bool(trust))
    _refuse_multilabel(layout, config)
    listing = code_listing(items)
    if items:
        modules = importable_modules(layout.root)
        warnings.warn(f"MONAI bundle {layout.root} is trusted and runs {len(items)} code "
                      f"item{'s' if len(items) != 1 else ''}:\n  " + "\n  ".join(listing)
                      + (f"\n  and its folder is importable: {', '.join(modules)}"
                         if modules else ""), stacklevel=2)
    info = bundle_info(layout, meta, config, {
        "runs_code": printable(items[0].text) if items else None, "code": listing,
        "trust": "trusted" if items else "no code (runs untrusted)"})
    return MonaiBundleModel(layout, info, device, config=config, meta=meta,
                            trusted=bool(items))
