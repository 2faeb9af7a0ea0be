"""Small training datasets cut from the bundled brain sample, for quick training tests."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.io import read_image, read_label_map
from medseg.volume import affine_from_geometry

BRAIN = Path(__file__).resolve().parents[1] / "sample_data" / "Dataset001_BrainTissue"
SCRIPTS = BRAIN.parent / "scripts"


def validate_brain_script():
    """``sample_data/scripts/validate_brain.py`` as a module: tests score the shipped brain
    model with the same variants and real cases as the figures it records."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("validate_brain",
                                                  SCRIPTS / "validate_brain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start(root: Path) -> None:
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)


def _dataset_json(root: Path, n: int) -> None:
    meta = json.loads((BRAIN / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": meta["channel_names"], "labels": meta["labels"],
        "numTraining": n, "file_ending": ".nii.gz"}))


def cropped_brains(root: Path, n: int, half: int = 20) -> Path:
    """``n`` training brains cropped to ``(2 * half)^3`` voxels around their centre; nibabel's
    slicer keeps each crop's world geometry. Cases are named ``b0``, ``b1``, ..."""
    _start(root)
    for i in range(n):
        for src, dst in ((f"imagesTr/brain_00{i}_0000.nii.gz", f"imagesTr/b{i}_0000.nii.gz"),
                         (f"labelsTr/brain_00{i}.nii.gz", f"labelsTr/b{i}.nii.gz")):
            img = nib.load(BRAIN / src)
            c = [s // 2 for s in img.shape[:3]]
            nib.save(img.slicer[c[0] - half:c[0] + half, c[1] - half:c[1] + half,
                                c[2] - half:c[2] + half], str(root / dst))
    _dataset_json(root, n)
    return root


def axial_slices(root: Path, n: int) -> Path:
    """The middle axial slice of ``n`` training brains as a 2D dataset (cases ``s0``, ...)."""
    _start(root)
    for i in range(n):
        img = read_image(BRAIN / f"imagesTr/brain_00{i}_0000.nii.gz")
        lab = read_label_map(BRAIN / f"labelsTr/brain_00{i}.nii.gz")
        k = img.spatial_shape[2] // 2
        aff = affine_from_geometry(img.spacing[:2], [0, 0])
        nib.save(nib.Nifti1Image(img.data[:, :, k].astype(np.float32), aff),
                 str(root / "imagesTr" / f"s{i}_0000.nii.gz"))
        nib.save(nib.Nifti1Image(lab.data[:, :, k].astype(np.uint8), aff),
                 str(root / "labelsTr" / f"s{i}.nii.gz"))
    _dataset_json(root, n)
    return root
