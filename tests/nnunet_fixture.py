"""Paths of the committed nnU-Net v2 fixtures (``tests/fixtures/nnunet``, made with the real
nnunetv2 by its ``make_fixtures.py``) and a helper to copy a model for breaking it."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "fixtures" / "nnunet"
MODEL_A = ROOT / "Dataset501_PhantomCT" / "nnUNetTrainer_50epochs__nnUNetPlans__3d_fullres"
MODEL_B = ROOT / "Dataset502_BrainMR" / "nnUNetTrainer_onlyMirror01__nnUNetPlansSmall__3d_fullres"
INPUTS = ROOT / "inputs"
EXPECTED = ROOT / "expected"


def copy_model(src: Path, dst_root: Path, folds: tuple[str, ...] = ("0",)) -> Path:
    """A copy of trainer folder ``src`` (only ``folds``) under ``dst_root/<dataset>/``."""
    dst = dst_root / src.parent.name / src.name
    dst.mkdir(parents=True)
    for name in ("dataset.json", "plans.json"):
        shutil.copy2(src / name, dst / name)
    for fold in folds:
        shutil.copytree(src / f"fold_{fold}", dst / f"fold_{fold}")
    return dst
