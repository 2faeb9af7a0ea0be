"""Build sample_data/real_ct/lung2_upper_abdomen.nii.gz: a small crop of a real CT.

Source: ``data/lung2_image.nrrd`` of the pyradiomics 3.0.1 sdist (BSD-3-Clause, Copyright 2017
Harvard Medical School): a real chest CT, 512 x 512 x 61 at 0.627 x 0.627 x 5 mm, stored LPS.
Its 24 most caudal slices show the upper abdomen (liver, spleen, kidneys, aorta, vertebrae).
They are kept, and every 4 x 4 in-plane block is averaged (2.51 x 2.51 x 5 mm, 128 x 128 x 24,
rounded to int16 HU); the world geometry is kept exactly (the new voxel centres are the block
centres). The file carries no patient attributes (NIfTI). Used by the quality-flag tests: a
real CT that the phantom-trained ``abdomen_ct`` model does not segment.

    pip install versioneer numpy setuptools
    pip download --no-deps --no-build-isolation pyradiomics==3.0.1 -d /tmp/pyrad
    tar xzf /tmp/pyrad/pyradiomics-3.0.1.tar.gz -C /tmp/pyrad
    python sample_data/scripts/make_real_ct.py /tmp/pyrad/pyradiomics-3.0.1/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medseg.io import read_image, write_image
from medseg.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "real_ct" / "lung2_upper_abdomen.nii.gz"
FACTOR = 4
SLICES = 24


def crop(volume: Volume, factor: int = FACTOR, slices: int = SLICES) -> Volume:
    """The first ``slices`` slices, in-plane ``factor`` x ``factor`` block means."""
    a = volume.array[0, :, :, :slices].astype(np.float64)
    x, y, z = a.shape
    a = a[: x - x % factor, : y - y % factor]
    blocks = a.reshape(x // factor, factor, y // factor, factor, z).mean(axis=(1, 3))
    affine = np.array(volume.affine)
    affine[:3, 3] += (affine[:3, 0] + affine[:3, 1]) * (factor - 1) / 2
    affine[:3, :2] *= factor
    return Volume(np.round(blocks).astype(np.int16)[None], affine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the pyradiomics sdist's data/ folder")
    args = parser.parse_args()
    source = read_image(args.data / "lung2_image.nrrd")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out = crop(source)
    write_image(out, OUT)
    print(f"{OUT}: {out.spatial_shape}, spacing {out.spacing}, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
