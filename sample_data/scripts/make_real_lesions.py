"""Build sample_data/real_lesions/: small crops of real scans around a labelled lesion.

Source: ``data/`` of the pyradiomics 3.0.1 sdist (BSD-3-Clause, Copyright 2017 Harvard Medical
School): real, de-identified scans with a lesion outlined by hand.

* ``lung1_nodule``: ``lung1_image.nrrd`` (chest CT, 512 x 512 x 48 at 0.57 x 0.57 x 5 mm) and
  ``lung1_label.nrrd`` (a lung nodule, 837 voxels): a 96 x 96 x 16 crop at full resolution
  centred on the nodule.
* ``brain1_lesion``: ``brain1_image.nrrd`` (MR, 256 x 256 x 25 at 0.78 x 0.78 x 6.5 mm) and
  ``brain1_label.nrrd`` (a lesion in two parts, 4137 voxels): a 112 x 112 x 16 crop.
* ``lung2_tumour``: ``lung2_image.nrrd`` (chest CT, 512 x 512 x 61 at 0.63 x 0.63 x 5 mm) and
  ``lung2_label.nrrd`` (a large lung tumour): 2 x 2 in-plane block means (1.25 mm; the label
  where at least half of a block is labelled), then an 80 x 80 x 21 crop around the tumour.

Images are int16 as stored (CT in HU), labels uint8 (1 = lesion); the world geometry is kept
exactly (a crop moves the origin to its first voxel, a block mean to the block centre). NIfTI
carries no patient attributes. Used by the interactive evaluation (``bench/bench_interactive.py``):
lesions are structures no bundled training label map contains.

    pip install versioneer numpy setuptools
    pip download --no-deps --no-build-isolation pyradiomics==3.0.1 -d /tmp/pyrad
    tar xzf /tmp/pyrad/pyradiomics-3.0.1.tar.gz -C /tmp/pyrad
    python sample_data/scripts/make_real_lesions.py /tmp/pyrad/pyradiomics-3.0.1/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.io import read_image, read_label_map, write_image
from medseg.volume import LabelMap, Volume

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "real_lesions"
#: name -> (pyradiomics stem, in-plane block size, crop shape)
CASES = {
    "lung1_nodule": ("lung1", 1, (96, 96, 16)),
    "brain1_lesion": ("brain1", 1, (112, 112, 16)),
    "lung2_tumour": ("lung2", 2, (80, 80, 21)),
}


def block_mean(array: np.ndarray, affine: np.ndarray, factor: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """In-plane ``factor`` x ``factor`` block means; the affine of the block centres."""
    if factor == 1:
        return array.astype(np.float64), np.array(affine)
    x, y, z = array.shape
    a = array[: x - x % factor, : y - y % factor].astype(np.float64)
    blocks = a.reshape(x // factor, factor, y // factor, factor, z).mean(axis=(1, 3))
    out = np.array(affine)
    out[:3, 3] += (out[:3, 0] + out[:3, 1]) * (factor - 1) / 2
    out[:3, :2] *= factor
    return blocks, out


def crop_around(mask: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A window of ``shape`` centred on the mask's bounding box, inside the array."""
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    out = []
    for s, n, size in zip(box, shape, mask.shape, strict=True):
        start = min(max((s.start + s.stop - n) // 2, 0), size - n)
        out.append(slice(start, start + n))
    return tuple(out)


def make_case(image: Volume, label: LabelMap, factor: int, shape: tuple[int, ...]
              ) -> tuple[Volume, LabelMap]:
    if not image.same_grid(label):
        raise SystemExit("image and label are not on one grid")
    img, affine = block_mean(image.array[0], image.affine, factor)
    lab, _ = block_mean((label.data > 0).astype(np.float64), label.affine, factor)
    sl = crop_around(lab >= 0.5, shape)
    affine = np.array(affine)
    affine[:3, 3] = (affine @ np.array([s.start for s in sl] + [1.0]))[:3]
    return (Volume(np.round(img[sl]).astype(np.int16)[None], affine),
            LabelMap((lab[sl] >= 0.5).astype(np.uint8)[None], affine))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the pyradiomics sdist's data/ folder")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (stem, factor, shape) in CASES.items():
        image = read_image(args.data / f"{stem}_image.nrrd")
        label = read_label_map(args.data / f"{stem}_label.nrrd")
        img, lab = make_case(image, label, factor, shape)
        write_image(img, OUT / f"{name}.nii.gz")
        write_image(lab, OUT / f"{name}_label.nii.gz")
        size = sum((OUT / f).stat().st_size for f in (f"{name}.nii.gz", f"{name}_label.nii.gz"))
        print(f"{name}: {img.spatial_shape} at {tuple(round(s, 3) for s in img.spacing)} mm, "
              f"lesion {int(lab.data.sum())} voxels, {size} bytes")


if __name__ == "__main__":
    main()
