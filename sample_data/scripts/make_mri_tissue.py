"""Build sample_data/Dataset001_BrainTissue from the MNI ICBM152 2009a template in nilearn.

Usage, from the repository root (the template is not committed in its 1 mm form):

    pip download --no-deps nilearn==0.14.1 -d /tmp/nil
    cd /tmp/nil && unzip -o nilearn-0.14.1-py3-none-any.whl 'nilearn/datasets/data/mni_icbm152_*'
    python sample_data/scripts/make_mri_tissue.py /tmp/nil/nilearn/datasets/data

Tissue labels on the 1 mm template (probability maps p_gm, p_wm in 0..1 = uint8/255):
the brain is T1/255 > 0.2 (the template T1 is skull-stripped), p_csf = clip(1 - p_gm - p_wm)
inside the brain, and each brain voxel takes the tissue of largest probability
(1 white matter, 2 grey matter, 3 CSF; 0 outside the brain).

Each "subject" is the template seen through a different random transform and scanner:
  * a random global affine (rotation up to 6 degrees, per-axis scale 0.92-1.08, shift 4 mm)
    and a smooth elastic displacement (cubic-interpolated 5x6x5 control grid, std 2.5 mm);
  * the T1 and the GM/WM probability maps are resampled linearly through the *same* mapping
    and the labels are derived from the resampled maps (so labels and image stay aligned and
    the labels are anti-aliased, unlike nearest-neighbour resampling of a 1 mm label map);
  * a multiplicative smooth bias field (exp of a 3x3x3 cubic field, std 0.12), a gamma
    contrast change (0.8-1.25), an intensity scale, and Rician noise
    (magnitude of complex Gaussian noise, sigma 1.5-3.5 % of white matter);
  * a 160 x 192 x 160 mm field of view sampled at 1.8-2.5 mm (some anisotropic) and stored
    with different orientations: RAS, LPS, LAS, a permuted (sagittal-first) order, and
    oblique affines.
Images are stored as int16 (white matter about 270, noise sigma 4-9), labels as uint8.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg.io import write_image
from medseg.volume import LabelMap, Volume

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "Dataset001_BrainTissue"
LABELS = {"background": 0, "white_matter": 1, "grey_matter": 2, "csf": 3}
FOV_MM = np.array([160.0, 192.0, 160.0])  # along world x, y, z
CENTRE = np.array([0.0, -17.0, 5.0])  # brain centre in MNI space (mm)


def _rot(deg_x: float, deg_y: float, deg_z: float) -> np.ndarray:
    ax, ay, az = np.deg2rad([deg_x, deg_y, deg_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


# direction matrices: columns are the RAS+ directions of the index axes i, j, k
ORIENT = {
    "RAS": np.eye(3),
    "LPS": np.diag([-1.0, -1.0, 1.0]),
    "LAS": np.diag([-1.0, 1.0, 1.0]),
    "ASL": np.array([[0, 0, -1], [1, 0, 0], [0, 1, 0]], dtype=float),  # sagittal-first
    "oblique8": _rot(8, 0, 4),
    "oblique12": np.diag([-1.0, -1.0, 1.0]) @ _rot(-12, 5, 0),
}

# (case id, seed, spacing along i, j, k in mm, orientation)
TRAIN = [
    ("brain_000", 100, (2.0, 2.0, 2.0), "RAS"),
    ("brain_001", 101, (2.0, 2.0, 2.0), "LPS"),
    ("brain_002", 102, (1.8, 1.8, 1.8), "RAS"),
    ("brain_003", 103, (2.2, 2.2, 2.2), "LAS"),
    ("brain_004", 104, (1.9, 1.9, 2.4), "RAS"),
    ("brain_005", 105, (2.0, 2.0, 2.5), "LPS"),
    ("brain_006", 106, (2.4, 2.4, 2.4), "RAS"),
    ("brain_007", 107, (2.0, 2.0, 2.0), "oblique8"),
    ("brain_008", 108, (2.1, 2.1, 2.1), "LPS"),
    ("brain_009", 109, (1.8, 2.0, 2.2), "RAS"),
]
TEST = [
    ("brain_100", 200, (2.0, 2.0, 2.0), "oblique12"),
    ("brain_101", 201, (2.5, 2.5, 2.5), "LPS"),
    ("brain_102", 202, (2.2, 2.0, 2.0), "ASL"),
]


def load_template(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """T1, GM and WM in 0..1 (lightly pre-smoothed against aliasing) and the 1 mm affine."""
    maps, affine = [], None
    for name in ("t1", "gm", "wm"):
        img = nib.load(folder / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz")
        arr = np.asanyarray(img.dataobj).astype(np.float32) / 255.0
        maps.append(ndimage.gaussian_filter(arr, 0.6))
        affine = img.affine if affine is None else affine
    return maps[0], maps[1], maps[2], np.asarray(affine)


def tissue_labels(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """0 outside the brain (T1 <= 0.2), else 1 WM / 2 GM / 3 CSF by largest probability."""
    brain = t1 > 0.2
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    tissue = np.argmax(np.stack([wm, gm, csf]), axis=0).astype(np.uint8) + 1
    return np.where(brain, tissue, 0).astype(np.uint8)


def _smooth_field(rng: np.random.Generator, coarse: tuple[int, ...], shape: tuple[int, ...],
                  std: float) -> np.ndarray:
    grid = rng.normal(0.0, std, size=coarse)
    return ndimage.zoom(grid, [s / c for s, c in zip(shape, coarse, strict=True)], order=3,
                        mode="nearest", grid_mode=True)


def make_subject(template, seed: int, spacing, orientation: str) -> tuple[Volume, LabelMap]:
    t1, gm, wm, t_affine = template
    rng = np.random.default_rng(seed)
    direction = ORIENT[orientation]
    spacing = np.asarray(spacing, dtype=float)
    # field of view along each index axis: the world extent its direction points along
    fov = np.rint(np.abs(direction)).T @ FOV_MM  # nearest axis for oblique grids
    shape = tuple(int(np.ceil(f / s)) for f, s in zip(fov, spacing, strict=True))
    centre = CENTRE + rng.uniform(-5, 5, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[None, :]
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)

    # subject world -> template world: global affine about the centre + elastic displacement
    idx = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape],
                               indexing="ij"), -1)
    world = idx @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)
    lin = _rot(*rng.uniform(-6, 6, 3)) @ np.diag(rng.uniform(0.92, 1.08, 3))
    shift = rng.uniform(-4, 4, 3)
    tpl_world = (world - centre) @ lin.T.astype(np.float32) + CENTRE + shift
    for axis in range(3):
        tpl_world[..., axis] += _smooth_field(rng, (5, 6, 5), shape, 2.5)
    inv = np.linalg.inv(t_affine)
    coords = tpl_world @ inv[:3, :3].T.astype(np.float32) + inv[:3, 3].astype(np.float32)
    coords = np.moveaxis(coords, -1, 0)
    t1s, gms, wms = (ndimage.map_coordinates(m, coords, order=1, mode="constant", cval=0.0)
                     for m in (t1, gm, wm))
    labels = tissue_labels(t1s, gms, wms)

    # scanner: gamma, smooth multiplicative bias, intensity scale, Rician noise
    img = np.clip(t1s, 0, None) ** rng.uniform(0.8, 1.25)
    img *= np.exp(_smooth_field(rng, (3, 3, 3), shape, 0.12))
    img *= 300.0 * rng.uniform(0.85, 1.15)
    sigma = 270.0 * rng.uniform(0.015, 0.035)
    img = np.hypot(img + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape))
    image = np.clip(np.round(img), 0, 32767).astype(np.int16)
    return Volume.from_spatial(image, affine), LabelMap.from_spatial(labels, affine)


def main(template_dir: Path) -> None:
    template = load_template(template_dir)
    if OUT.exists():
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            shutil.rmtree(OUT / sub, ignore_errors=True)
    for split, cases in (("Tr", TRAIN), ("Ts", TEST)):
        for case_id, seed, spacing, orientation in cases:
            image, labels = make_subject(template, seed, spacing, orientation)
            write_image(image, OUT / f"images{split}" / f"{case_id}_0000.nii.gz")
            write_image(labels, OUT / f"labels{split}" / f"{case_id}.nii.gz")
            counts = labels.label_counts()
            print(case_id, image.spatial_shape, [round(s, 2) for s in image.spacing],
                  image.orientation, {k: round(v / labels.array.size, 4) for k,
                                      v in counts.items()})
    meta = {
        "name": "BrainTissue",
        "description": (
            "T1-weighted brain MRI tissue segmentation (white matter, grey matter, CSF) derived "
            "from the MNI ICBM152 2009a symmetric template: each subject is the template under a "
            "random affine + elastic deformation, bias field, gamma, Rician noise, 1.8-2.5 mm "
            "spacing and varied storage orientation. Labels from the template's GM/WM "
            "probability maps (CSF = 1 - GM - WM inside the brain)."
        ),
        "reference": (
            "Fonov V, Evans AC, McKinstry RC, Almli CR, Collins DL. Unbiased nonlinear average "
            "age-appropriate brain templates from birth to adulthood. NeuroImage 47 (2009) S102; "
            "Fonov V et al. Unbiased average age-appropriate atlases for pediatric studies. "
            "NeuroImage 54(1) (2011) 313-327; template files as shipped in nilearn 0.14.1"
        ),
        "licence": (
            "MNI ICBM152 template: Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging "
            "Centre, Montreal Neurological Institute, McGill University; redistributed under its "
            "permission notice, see sample_data/LICENSES.md. Derivation scripts: Apache-2.0."
        ),
        "release": "1.0",
        "channel_names": {"0": "T1"},
        "labels": LABELS,
        "numTraining": len(TRAIN),
        "file_ending": ".nii.gz",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/nil/nilearn/datasets/data"))
