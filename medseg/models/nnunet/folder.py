"""Where an nnU-Net v2 model lives on disk: trainer folder, dataset folder, folds, checkpoints.

A trainer folder is ``<Trainer>__<Plans>__<configuration>`` holding ``dataset.json``,
``plans.json`` and ``fold_N/checkpoint_final.pth`` (and ``checkpoint_best.pth``); its parent,
``DatasetNNN_Name``, may hold one trainer folder per configuration. Folders are recognised by
their content, never by importing anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.models.nnunet.plans import DATASET_FILE, PLANS_FILE

DEFAULT_CONFIGURATION = "3d_fullres"
CHECKPOINTS = {"final": "checkpoint_final.pth", "best": "checkpoint_best.pth"}
_FOLD = re.compile(r"^fold_(\d+|all)$")


def _fold_dirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir() and _FOLD.match(p.name)]
    except OSError:
        return []


def is_trainer_folder(path: Path) -> bool:
    """``fold_N/`` folders next to ``plans.json`` or ``dataset.json`` (one of them may be
    missing: loading then says which)."""
    path = Path(path)
    return ((path / DATASET_FILE).is_file() or (path / PLANS_FILE).is_file()) and bool(
        _fold_dirs(path))


def _trainer_children(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and is_trainer_folder(p))
    except OSError:
        return []


def sniff(path: Path) -> bool:
    """A trainer folder, or a dataset folder holding at least one."""
    path = Path(path)
    if not path.is_dir():
        return False
    return is_trainer_folder(path) or bool(_trainer_children(path))


@dataclass(frozen=True)
class TrainerFolder:
    path: Path
    trainer: str
    plans_name: str
    #: the configuration the folder name states (None for a renamed folder)
    configuration: str | None

    @property
    def plans_path(self) -> Path:
        return self.path / PLANS_FILE

    @property
    def dataset_path(self) -> Path:
        return self.path / DATASET_FILE

    @property
    def label(self) -> str:
        return self.path.name

    def available_folds(self, checkpoint: str) -> list[str]:
        """Fold names (``"0"``, ``"1"``, ..., ``"all"``) that hold ``checkpoint``."""
        names = [d.name[5:] for d in _fold_dirs(self.path) if (d / checkpoint).is_file()]
        return sorted(names, key=lambda n: (n == "all", int(n) if n.isdigit() else 0))


def _parse(path: Path) -> TrainerFolder:
    parts = path.name.split("__")
    if len(parts) == 3 and all(parts):
        return TrainerFolder(path, parts[0], parts[1], parts[2])
    return TrainerFolder(path, "", "", None)


def locate(path: Path, configuration: str | None = None) -> TrainerFolder:
    """The trainer folder for ``path`` (a trainer folder, or a dataset folder plus a
    configuration, ``3d_fullres`` by default)."""
    path = Path(path)
    if is_trainer_folder(path):
        folder = _parse(path)
        if configuration and folder.configuration and configuration != folder.configuration:
            raise InputError(path, f"this trainer folder holds configuration "
                                   f"{folder.configuration!r}, not {configuration!r} (give its "
                                   "dataset folder to pick a configuration)")
        return folder
    children = [_parse(p) for p in _trainer_children(path)]
    if not children:
        raise InputError(path, "not an nnU-Net v2 model folder (no dataset.json, plans.json and "
                               "fold_N/ here or in a sub-folder)")
    wanted = configuration or DEFAULT_CONFIGURATION
    matches = [c for c in children if c.configuration == wanted]
    if not matches and configuration is None and len(children) == 1:
        return children[0]
    if not matches:
        have = sorted({c.configuration or c.label for c in children})
        raise InputError(path, f"holds no trainer folder for configuration {wanted!r} "
                               f"(it has: {', '.join(have)}); pick one with --configuration")
    if len(matches) > 1:
        raise InputError(path, f"holds {len(matches)} trainer folders for configuration "
                               f"{wanted!r} ({', '.join(m.label for m in matches)}); give the "
                               "one to use as the model path")
    return matches[0]


def checkpoint_name(checkpoint: Any, where: Path) -> str:
    choice = "final" if checkpoint is None else str(checkpoint)
    if choice not in CHECKPOINTS:
        raise InputError(where, f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got "
                                f"{checkpoint!r}")
    return CHECKPOINTS[choice]


def select_folds(folder: TrainerFolder, folds: Any, checkpoint: str) -> list[str]:
    """The folds to run: every numbered fold holding ``checkpoint`` by default (``all`` when
    that is the only one), else the requested ones, each of which must exist."""
    available = folder.available_folds(checkpoint)
    if not available:
        present = sorted(d.name for d in _fold_dirs(folder.path))
        raise InputError(folder.path, f"no fold holds {checkpoint} (folds: "
                                      f"{', '.join(present) or 'none'})")
    if folds is None:
        numbered = [f for f in available if f != "all"]
        return numbered or available
    requested = _fold_list(folds, folder.path)
    missing = [f for f in requested if f not in available]
    if missing:
        raise InputError(folder.path, f"fold {missing[0]} has no {checkpoint} (available: "
                                      f"{', '.join(available)})")
    return requested


def _fold_list(folds: Any, where: Path) -> list[str]:
    items: Sequence[Any]
    if isinstance(folds, (str, int)):
        items = [p for p in str(folds).replace(",", " ").split() if p]
    elif isinstance(folds, (list, tuple)):
        items = folds
    else:
        raise InputError(where, f"folds must be a list of fold numbers, got {folds!r}")
    out: list[str] = []
    for f in items:
        name = str(f).strip()
        if isinstance(f, bool) or not (name.isdigit() or name == "all"):
            raise InputError(where, f"fold {f!r} is not a fold number (0, 1, ... or 'all')")
        name = str(int(name)) if name.isdigit() else name
        if name not in out:
            out.append(name)
    if not out:
        raise InputError(where, "no folds given")
    return out
