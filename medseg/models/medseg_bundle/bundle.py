"""Model bundles: a folder with ``config.json`` and ``weights.pt`` (a plain state dict).

Weights are loaded with ``torch.load(..., weights_only=True)`` after their SHA-256 (recorded
in the config) is verified, so nothing in a bundle is ever executed. The architecture is
looked up by registered name only.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medseg.errors import InputError, MedsegError, first_line
from medseg.io.atomic_folder import atomic_folder
from medseg.io.checksum import sha256_file
from medseg.io.debughooks import pause_point
from medseg.models.catalog import models_dirs
from medseg.models.medseg_bundle.schema import validate_config
from medseg.ops.preprocess import Preprocessing
from medseg.registry import Registry, load_registry

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.pt"
FORMAT_VERSION = 1
#: a bundle config is a few kB; anything this large is not one
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass
class Bundle:
    path: Path
    config: dict[str, Any]

    # ---- config accessors ------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    @property
    def labels(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.config["labels"].items()}

    @property
    def label_values(self) -> list[int]:
        """Label value of each network output channel (channel i -> value)."""
        return sorted(self.labels.values())

    @property
    def label_names(self) -> dict[int, str]:
        return {v: k for k, v in self.labels.items()}

    @property
    def spatial_dims(self) -> int:
        return int(self.config["spatial_dims"])

    @property
    def in_channels(self) -> int:
        return int(self.config["in_channels"])

    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.config["patch_size"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.config["preprocessing"])

    @property
    def inference(self) -> dict[str, Any]:
        return dict(self.config.get("inference", {}))

    # ---- model -----------------------------------------------------------------------
    def build_network(self, registry: Registry | None = None) -> torch.nn.Module:
        reg = registry or load_registry()
        arch = self.config["architecture"]
        spec = reg.architectures.get(arch["name"])
        return spec.factory(spatial_dims=self.spatial_dims, in_channels=self.in_channels,
                            out_channels=len(self.labels), **arch.get("params", {}))

    def load_network(self, registry: Registry | None = None,
                     device: str | torch.device = "cpu") -> torch.nn.Module:
        net = self.build_network(registry)
        net.load_state_dict(self.load_weights())
        return net.to(device).eval()

    def load_weights(self) -> dict[str, torch.Tensor]:
        wpath = self.path / self.config.get("weights", {}).get("file", WEIGHTS_NAME)
        if not wpath.is_file():
            raise InputError(wpath, "model weights file is missing")
        expected = self.config.get("weights", {}).get("sha256")
        if not expected:
            raise InputError(self.path / CONFIG_NAME, "bundle has no weights checksum")
        if sha256_file(wpath) != expected:
            raise InputError(wpath, "weights checksum does not match the bundle config "
                                    "(corrupt or modified file)")
        try:
            state = torch.load(wpath, map_location="cpu", weights_only=True)
        except Exception as exc:
            msg = first_line(exc, 160)
            raise InputError(wpath, f"weights cannot be loaded safely ({type(exc).__name__}"
                                    f"{': ' + msg if msg else ''})") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise InputError(wpath, "weights file is not a plain state dict of tensors")
        return state


def resolve_bundle_path(name_or_path: str | Path) -> Path:
    """A bundle folder, or a bundle's name looked up in the models folders of
    :func:`medseg.models.catalog.models_dirs` (the same ``MEDSEG_MODELS_DIR`` rules)."""
    p = Path(name_or_path)
    if p.is_dir():
        return p

    if p.name == str(name_or_path):  # a bare name, never a path
        for folder in models_dirs():
            if (folder / p.name / CONFIG_NAME).is_file():
                return folder / p.name
    available = ", ".join(list_bundles()) or "none"
    raise InputError(p, f"model bundle not found (a folder, or one of: {available})")


def list_bundles() -> list[str]:
    """Names of the medseg bundles in the models folders (first folder wins a name)."""

    names: list[str] = []
    for root in models_dirs():
        if root.is_dir():
            names += [d.name for d in root.iterdir()
                      if (d / CONFIG_NAME).is_file() and d.name not in names]
    return sorted(names)


_REQUIRED = ("architecture", "labels", "spatial_dims", "in_channels", "patch_size",
             "preprocessing", "weights")


def load_bundle(name_or_path: str | Path, registry: Registry | None = None) -> Bundle:
    """Open and validate a bundle folder (or a bundled model's name)."""
    path = resolve_bundle_path(name_or_path)
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise InputError(path, f"not a model bundle (no {CONFIG_NAME})")
    size = cfg_path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise InputError(cfg_path, f"bundle config is {size} bytes, more than the limit "
                                   f"{MAX_CONFIG_BYTES}")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(cfg_path, f"corrupt bundle config ({exc})") from None
    except RecursionError:
        raise InputError(cfg_path, "corrupt bundle config (nested too deeply)") from None
    if not isinstance(config, dict):
        raise InputError(cfg_path, "bundle config must be a JSON object")
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise InputError(cfg_path, f"bundle config lacks {', '.join(missing)}")
    validate_config(config, cfg_path)
    bundle = Bundle(path, config)
    reg = registry or load_registry()
    try:
        reg.architectures.get(config["architecture"]["name"])
    except MedsegError as exc:
        raise InputError(cfg_path, str(exc)) from None
    values = bundle.label_values
    if values != list(range(len(values))):
        raise InputError(cfg_path, f"labels must be 0..{len(values) - 1}, got {values}")
    return bundle


#: file in a bundle's build folder until its weights and config are both written
BUILDING = "BUILDING.txt"


def save_bundle(path: str | Path, config: dict[str, Any],
                state_dict: dict[str, torch.Tensor]) -> Bundle:
    """Write a bundle as a whole: weights and config (recording the weights' SHA-256) go into
    a build folder beside ``path``, with the bundle's other files, which then replaces the
    bundle in one swap (:mod:`medseg.io.atomic_folder`). A reader never sees new weights
    with an old config, even when the writer is killed."""
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise InputError(path, "is a file, not a model bundle folder")
    state = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    with atomic_folder(path, marker=BUILDING, step="bundle", marker_text=(
            "medseg is writing this model bundle (process {pid}); if this file remains, the "
            "run was interrupted and this folder is not a bundle.\n")) as build:
        if path.is_dir():  # keep the bundle's other files (training checkpoint, notes...)
            for item in path.iterdir():
                if item.name not in (WEIGHTS_NAME, CONFIG_NAME) and item.is_file():
                    shutil.copy2(item, build / item.name)
        torch.save(state, build / WEIGHTS_NAME)
        pause_point("bundle-weights-written")
        config = {"format_version": FORMAT_VERSION, **config,
                  "weights": {"file": WEIGHTS_NAME,
                              "sha256": sha256_file(build / WEIGHTS_NAME)}}
        (build / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return Bundle(path, config)
