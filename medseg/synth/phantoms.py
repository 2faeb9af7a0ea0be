"""Synthetic abdominal CT phantoms in Hounsfield units, with integer organ label maps.

The phantom is built in **RAS+ world millimetres** (``+x`` is the patient's right, ``+y``
anterior, ``+z`` superior; DICOM's LPS+ flips x and y), then sampled on the voxel grid of the
requested shape, spacing and orientation, so a case stored LPS (as DICOM stores axial CT) and
one stored RAS show the same anatomy at the same world positions.  Organs have very different
sizes, from the body and the liver down to a lesion well under 0.1 % of the voxels, which makes
the phantom a useful check of class-imbalance handling, orientation bugs (left and right
kidneys carry different labels) and world-geometry preservation.

Shapes vary with the seed: sizes, positions and rotations are drawn from a
:class:`numpy.random.Generator`, and organ surfaces are deformed by smooth noise built from a
few random plane waves in world coordinates (so the shape does not depend on the voxel grid).
The image gets partial-volume blur (a Gaussian of half a voxel) and Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medseg.volume import LabelMap, Volume

#: Label values of the phantom (nnU-Net v2 ``labels`` convention: name -> value).
CT_LABELS: dict[str, int] = {
    "background": 0,
    "liver": 1,
    "spleen": 2,
    "kidney_right": 3,
    "kidney_left": 4,
    "aorta": 5,
    "vertebra": 6,
    "liver_lesion": 7,
}

#: Nominal Hounsfield units of each tissue before noise.
HU = {
    "air": -1000.0,
    "fat": -100.0,
    "soft_tissue": 40.0,
    "muscle": 50.0,
    "liver": 60.0,
    "spleen": 50.0,
    "kidney": 150.0,  # enhancing cortex (the aorta is contrast-filled, so the phase is venous)
    "renal_sinus": -20.0,
    "aorta": 180.0,
    "bone": 700.0,
    "disc": 80.0,
    "lesion": 15.0,
    "bowel_gas": -900.0,
}

_ORIENTATIONS = {"RAS": (1.0, 1.0, 1.0), "LPS": (-1.0, -1.0, 1.0)}


@dataclass(frozen=True)
class _SmoothNoise:
    """A smooth zero-mean field in world mm: a sum of random plane waves (std about 1)."""

    waves: np.ndarray  # (K, 3) wave vectors in rad/mm
    phases: np.ndarray  # (K,)

    @classmethod
    def draw(cls, rng: np.random.Generator, wavelength_mm: float, n_waves: int = 6) -> _SmoothNoise:
        dirs = rng.normal(size=(n_waves, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        lengths = wavelength_mm * rng.uniform(0.7, 1.4, size=n_waves)
        return cls(dirs * (2 * np.pi / lengths)[:, None], rng.uniform(0, 2 * np.pi, n_waves))

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        out = np.zeros(xyz.shape[:-1])
        for w, p in zip(self.waves, self.phases, strict=True):
            out += np.sin(xyz @ w + p)
        return out * np.sqrt(2.0 / len(self.phases))


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    ax, ay, az = np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _ellipsoid(xyz: np.ndarray, centre: Sequence[float] | np.ndarray,
               semi_axes: Sequence[float] | np.ndarray,
               rotation: np.ndarray, noise: _SmoothNoise | None = None,
               roughness: float = 0.0) -> np.ndarray:
    """Mask of a (rotated, noise-deformed) ellipsoid; ``roughness`` is relative radius change."""
    local = (xyz - np.asarray(centre)) @ rotation  # world -> organ axes
    r = np.sqrt(np.sum((local / np.asarray(semi_axes)) ** 2, axis=-1))
    limit = 1.0 if noise is None else 1.0 + roughness * noise(xyz)
    return r < limit


def ct_case_affine(shape: Sequence[int], spacing: Sequence[float], orientation: str = "LPS",
                   centre: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """RAS+ affine of an axial grid centred on ``centre`` (world mm).

    ``orientation`` ``"LPS"`` stores index ``i`` towards the patient's left and ``j`` towards
    posterior, as axial DICOM CT does; ``"RAS"`` is the NIfTI-canonical order.
    """
    if orientation not in _ORIENTATIONS:
        raise ValueError(f"orientation must be one of {sorted(_ORIENTATIONS)}, got {orientation!r}")
    signs = np.asarray(_ORIENTATIONS[orientation])
    affine = np.eye(4)
    affine[:3, :3] = np.diag(signs * np.asarray(spacing, dtype=float))
    half = (np.asarray(shape, dtype=float) - 1) / 2
    affine[:3, 3] = np.asarray(centre, dtype=float) - affine[:3, :3] @ half
    return affine


def _world_grid(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij"), -1)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def make_ct_case(
    seed: int,
    shape: Sequence[int] = (96, 96, 64),
    spacing: Sequence[float] = (4.0, 4.0, 5.0),
    *,
    orientation: str = "LPS",
    noise_hu: float | None = None,
) -> tuple[Volume, LabelMap]:
    """Generate one abdominal CT phantom and its organ labels (values of :data:`CT_LABELS`).

    ``shape`` and ``spacing`` give the voxel grid (``X, Y, Z`` index axes; the field of view
    should cover about 360 x 280 x 250 mm for the whole anatomy to fit).  The grid is centred
    near the world origin with a small random table offset.  ``noise_hu`` is the Gaussian noise
    standard deviation (drawn in 10-20 HU when ``None``).  Returns an ``int16`` HU image and an
    ``uint8`` label map on the same grid.  Deterministic for a given seed and grid.
    """
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError("shape and spacing must have three entries")
    rng = np.random.default_rng(seed)
    offset = rng.uniform(-10, 10, size=3) * np.array([1.0, 1.0, 2.0])
    affine = ct_case_affine(shape, spacing, orientation, centre=offset)
    xyz = _world_grid(shape, affine)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]

    hu = np.full(tuple(shape), HU["air"])
    labels = np.zeros(tuple(shape), dtype=np.uint8)

    # body: elliptic cylinder with a subcutaneous fat layer, slightly wavy outline
    body_a, body_b = rng.uniform(140, 170), rng.uniform(95, 120)
    fat = rng.uniform(10, 25)
    outline = _SmoothNoise.draw(rng, 150.0)
    body_r = np.sqrt((x / body_a) ** 2 + ((y + 10) / body_b) ** 2) * (1 + 0.02 * outline(xyz))
    body = body_r < 1.0
    inner = body_r < 1.0 - fat / body_b
    hu[body] = HU["fat"]
    hu[inner] = HU["soft_tissue"]
    # retroperitoneal / visceral fat blobs keep the abdomen from being a flat 40 HU
    visceral = _SmoothNoise.draw(rng, 60.0, n_waves=8)
    hu[inner & (visceral(xyz) > 1.2)] = HU["fat"]

    # vertebral column: bodies with discs, along z, posterior midline
    spine_c = np.array([rng.uniform(-4, 4), -body_b + rng.uniform(38, 48) - 10])
    spine_r = rng.uniform(17, 22)
    period, disc = rng.uniform(30, 36), rng.uniform(6, 9)
    column = np.hypot(x - spine_c[0], (y - spine_c[1]) / 0.85) < spine_r
    in_disc = np.mod(z - rng.uniform(0, period), period) < disc
    canal = np.hypot(x - spine_c[0], y - (spine_c[1] - spine_r - 9)) < 8
    arch = (np.hypot(x - spine_c[0], y - (spine_c[1] - spine_r - 9)) < 16) & ~canal & ~in_disc
    process = (np.abs(x - spine_c[0]) < 5) & (y < spine_c[1] - spine_r - 16) & (
        y > spine_c[1] - spine_r - 40) & ~in_disc
    muscle = (np.abs(x - spine_c[0]) < 55) & (y < spine_c[1] + 5) & (y > spine_c[1] - 60) & inner
    hu[muscle] = HU["muscle"]
    bone = (column & ~in_disc) | arch | process
    hu[column & in_disc] = HU["disc"]
    hu[bone] = HU["bone"]
    hu[canal] = 10.0
    labels[column & ~in_disc] = CT_LABELS["vertebra"]

    # aorta: contrast-filled tube anterior-left of the spine, gently curving
    ao_r = rng.uniform(9, 13)
    ao_x = spine_c[0] - rng.uniform(12, 22) + 4 * np.sin(z / 120 + rng.uniform(0, 6))
    ao_y = spine_c[1] + spine_r + ao_r + rng.uniform(2, 8)
    aorta = (np.hypot(x - ao_x, y - ao_y) < ao_r) & inner
    hu[aorta] = rng.uniform(150, 200)
    labels[aorta] = CT_LABELS["aorta"]

    # kidneys: posterior, either side of the spine; the right one sits lower
    kid_z = rng.uniform(-30, 10)
    for side, name in ((1, "kidney_right"), (-1, "kidney_left")):
        c = (spine_c[0] + side * rng.uniform(58, 72), spine_c[1] + rng.uniform(0, 15),
             kid_z + (-rng.uniform(5, 20) if side > 0 else 0))
        semi = (rng.uniform(24, 30), rng.uniform(20, 26), rng.uniform(45, 58))
        rot = _rotation(rng, 15)
        kidney = _ellipsoid(xyz, c, semi, rot, _SmoothNoise.draw(rng, 50.0), 0.08) & inner
        sinus = _ellipsoid(xyz, (c[0] - side * 0.35 * semi[0], c[1], c[2]),
                           (semi[0] * 0.35, semi[1] * 0.45, semi[2] * 0.45), rot) & kidney
        hu[kidney] = HU["kidney"]
        hu[sinus] = HU["renal_sinus"]
        labels[kidney] = CT_LABELS[name]

    # liver: large, patient's right (+x), upper abdomen
    liver_c = (rng.uniform(55, 75), rng.uniform(-5, 20), rng.uniform(55, 85))
    liver_semi = (rng.uniform(75, 95), rng.uniform(60, 75), rng.uniform(65, 85))
    liver_rot = _rotation(rng, 12)
    liver = _ellipsoid(xyz, liver_c, liver_semi, liver_rot, _SmoothNoise.draw(rng, 90.0), 0.12)
    liver &= inner & ~bone & ~aorta & (labels == 0)
    hu[liver] = HU["liver"] + rng.uniform(-8, 8)
    labels[liver] = CT_LABELS["liver"]

    # spleen: patient's left (-x), posterior-lateral, level with the upper liver
    spleen_c = (-rng.uniform(75, 95), spine_c[1] + rng.uniform(20, 40),
                liver_c[2] + rng.uniform(-15, 10))
    spleen_semi = (rng.uniform(22, 30), rng.uniform(40, 55), rng.uniform(38, 55))
    spleen = _ellipsoid(xyz, spleen_c, spleen_semi, _rotation(rng, 25),
                        _SmoothNoise.draw(rng, 50.0), 0.1)
    spleen &= inner & (labels == 0) & ~bone
    hu[spleen] = HU["spleen"] + rng.uniform(-5, 5)
    labels[spleen] = CT_LABELS["spleen"]

    # a small hypodense lesion inside the liver (well under 1 % of the voxels)
    lesion_c = np.asarray(liver_c) + rng.uniform(-0.35, 0.35, 3) * np.asarray(liver_semi)
    lesion_r = rng.uniform(9, 14)
    lesion = _ellipsoid(xyz, lesion_c, (lesion_r, lesion_r * rng.uniform(0.8, 1.2), lesion_r),
                        _rotation(rng, 40)) & liver
    hu[lesion] = HU["lesion"] + rng.uniform(-10, 10)
    labels[lesion] = CT_LABELS["liver_lesion"]

    # a few pockets of bowel gas in the anterior abdomen, never inside a labelled organ
    for _ in range(int(rng.integers(2, 6))):
        gc = (rng.uniform(-60, 60), rng.uniform(10, body_b - fat - 25), rng.uniform(-80, 40))
        gas = _ellipsoid(xyz, gc, rng.uniform(8, 22, 3), _rotation(rng, 45)) & inner
        hu[gas & (labels == 0) & ~bone] = HU["bowel_gas"]

    # partial-volume blur (about half a voxel), then quantum noise
    hu = ndimage.gaussian_filter(hu, sigma=0.5, mode="nearest")
    sigma = rng.uniform(10, 20) if noise_hu is None else float(noise_hu)
    hu += rng.normal(0.0, sigma, size=hu.shape)
    image = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    return Volume.from_spatial(image, affine), LabelMap(labels[None], affine)
