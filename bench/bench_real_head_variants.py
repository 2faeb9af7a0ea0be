"""Benchmark: a promptable model on the real T1 head (``sample_data/real_mri``, ITK's example,
2 x 2 x 3 mm, with skull) as it comes and in three derived forms, under the simulated clicks
of ``medseg evaluate-clicks`` (whole brain, 10 clicks):

* ``skull-stripped``: the head kept only inside the brain mask grown by 2 voxels (the margin of
  CSF a skull-stripping tool leaves), the rest 0;
* ``6 mm slices``: pairs of the 3 mm slices averaged (the mask by majority);
* ``rescaled``: intensities x 0.037 + 1000 (another scanner's units).

The derived volumes are written to a temporary folder; the figures go to stdout and
``bench/results/interactive_real_head_variants.json``. They are one real scan seen four ways,
not four scans.

    python bench/bench_real_head_variants.py [-m sample_data/models/click3d]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg.cli import main as medseg

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "sample_data" / "real_mri"


def variants(folder: Path) -> dict[str, tuple[Path, Path]]:
    """Name -> (image, brain mask) files written into ``folder``."""
    img = nib.load(str(REAL / "itk_t1_head.nii.gz"))
    head = np.asarray(img.dataobj, dtype=np.float32)
    brain = np.asarray(nib.load(str(REAL / "itk_t1_brain_mask.nii.gz")).dataobj) > 0

    def save(name: str, image: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> None:
        nib.save(nib.Nifti1Image(image.astype(np.float32), affine), folder / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), folder / f"{name}_mask.nii.gz")

    save("as_is", head, brain, img.affine)
    save("stripped", np.where(ndimage.binary_dilation(brain, iterations=2), head, 0), brain,
         img.affine)
    n = head.shape[2] // 2 * 2  # array axis 2 holds the 3 mm slices
    pairs = (head.shape[0], head.shape[1], n // 2, 2)
    thick_affine = img.affine.copy()
    thick_affine[:3, 2] *= 2
    thick_affine[:3, 3] += img.affine[:3, 2] * 0.5  # the centre of each slice pair
    save("thick", head[:, :, :n].reshape(pairs).mean(-1),
         brain[:, :, :n].reshape(pairs).mean(-1) >= 0.5, thick_affine)
    save("rescaled", head * 0.037 + 1000, brain, img.affine)
    return {name: (folder / f"{name}.nii.gz", folder / f"{name}_mask.nii.gz")
            for name in ("as_is", "stripped", "thick", "rescaled")}


LABELS = {"as_is": "real T1 head, as it comes", "stripped": "skull-stripped",
          "thick": "6 mm slices", "rescaled": "rescaled intensities"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", default=str(ROOT / "sample_data" / "models" / "click3d"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"
                                             / "interactive_real_head_variants.json"))
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (image, mask) in variants(Path(tmp)).items():
            out = Path(tmp) / f"eval_{name}"
            code = medseg(["evaluate-clicks", str(image), "--ref", str(mask), "-m", args.model,
                           "-o", str(out), "--labels", "brain=1", "--quiet"])
            if code != 0:
                return code
            metrics = json.loads((out / "summary.json").read_text())["classes"]["brain"]
            rows[LABELS[name]] = {k: v["mean"] for k, v in metrics["metrics"].items()}
    print("| real T1 head | Dice@1 | Dice@3 | Dice@5 | Dice@10 | NoC@85 | NoC@90 |")
    print("|---|---|---|---|---|---|---|")
    for name, m in rows.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in
                                          ("dice@1", "dice@3", "dice@5", "dice@10"))
              + f" | {m['noc@85']:.0f} | {m['noc@90']:.0f} |")
    model = Path(args.model).resolve()
    shown = str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else args.model
    Path(args.out).write_text(json.dumps({"model": shown, "variants": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
