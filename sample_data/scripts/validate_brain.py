"""Validate a brain tissue bundle on variants of the MNI-derived test cases and on real MRI.

Variants of each labelled test case of ``Dataset001_BrainTissue`` (brain_100..102):

* ``as_is``: the stored image (noisy, not skull-stripped, no skull: the template has none);
* ``stripped``: everything outside the reference brain mask set to exactly 0;
* ``scaled``: intensities x10 + 1000;
* ``thick_1x1x5``: resampled (linear; reference nearest) to 1 x 1 x 5 mm along the stored
  voxel axes, same extent; Dice on that grid;
* ``with_skull``: a *synthetic* head (extra-cerebral CSF, skull, scalp muscle and fat, neck,
  drawn by :func:`medseg.synth.head.add_head` with T1-like intensities relative to the case's
  own WM/CSF and its noise) around the real image on a grid padded by 32 mm. The model was
  trained on heads drawn the same way, so this is a check of robustness to a head, not of
  real skulls.

A real person from another source (``sample_data/real_mri``, ITK's example T1 with skull, 2 x 2
x 3 mm, never trained on): Dice of the predicted brain (WM+GM+CSF) against the brain outline
distributed with it, on the scan as it is (``with_skull``) and skull-stripped with a zero
background (``stripped``), and the predicted volumes.

Real scans: ``brain1``/``brain2`` of the pyradiomics 3.0.1 sdist (``data/``; clinical MR,
0.78 x 0.78 x 6.5 mm, with skull): predicted WM+GM+CSF volume and an overlay picture.

Usage::

    python sample_data/scripts/validate_brain.py --model sample_data/models/brain_tissue \
        --pyradiomics /path/pyradiomics-3.0.1/data --figure docs/brain_real_mri.png \
        --json out.json [--record]

``--record`` writes the figures into the bundle's ``config.json`` under
``training.validation``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.evaluation.metrics import dice
from medseg.io import read_image, read_label_map
from medseg.models.medseg_bundle.bundle import load_bundle
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.ops.preprocess import canonical_affine, canonical_transform, reorient_array
from medseg.volume import Volume

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "sample_data" / "Dataset001_BrainTissue"
REAL_MRI = ROOT / "sample_data" / "real_mri"
NAMES = {1: "white_matter", 2: "grey_matter", 3: "csf"}
VARIANTS = ("as_is", "stripped", "scaled", "thick_1x1x5", "with_skull")


def _resample_sitk(path: Path, spacing: tuple[float, ...], labels: bool, out: Path) -> Path:
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    size = [max(1, round(n * s / t)) for n, s, t in zip(img.GetSize(), img.GetSpacing(), spacing,
                                                         strict=True)]
    # same extent: the first voxel centre moves by half the change of voxel size
    direction = np.array(img.GetDirection()).reshape(3, 3)
    shift = direction @ ((np.array(spacing) - np.array(img.GetSpacing())) / 2)
    origin = tuple(float(v) for v in np.array(img.GetOrigin()) + shift)
    res = sitk.Resample(img, size, sitk.Transform(), sitk.sitkNearestNeighbor if labels
                        else sitk.sitkLinear, origin, spacing, img.GetDirection(), 0,
                        img.GetPixelID())
    sitk.WriteImage(res, str(out))
    return out


def with_synthetic_head(image: Volume, labels: np.ndarray, seed: int) -> tuple[Volume, np.ndarray]:
    """The case on its RAS grid padded by 32 mm, with a T1-like synthetic head around it."""
    from medseg.synth.classes import head_values
    from medseg.synth.head import add_head, brain_distance

    tr = canonical_transform(image)
    arr = reorient_array(image.array.astype(np.float32), tr)[0]
    lab = reorient_array(labels[None], tr)[0]
    aff = canonical_affine(image, tr)
    sp = np.linalg.norm(aff[:3, :3], axis=0)
    pad = [int(np.ceil(32.0 / s)) for s in sp]
    arr_p = np.pad(arr, [(p, p) for p in pad])
    lab_p = np.pad(lab, [(p, p) for p in pad])
    bg = arr[lab == 0]
    noise = float(np.std(bg[bg < np.percentile(bg, 50)])) if bg.size else 1.0
    rng = np.random.default_rng(seed)
    arr_p = np.where(lab_p == 0, np.abs(rng.normal(0, noise, arr_p.shape)), arr_p)
    gen = torch.Generator().manual_seed(seed)
    dist = torch.from_numpy(brain_distance(lab_p, sp))
    head = add_head(torch.from_numpy(lab_p.astype(np.int16)), dist, 3, gen).numpy()
    wm = float(np.median(arr[lab == 1]))
    csf = float(np.median(arr[lab == 3]))
    hv = head_values(3)
    means = {hv["extra_cerebral_csf"]: csf, hv["skull"]: 0.08 * wm, hv["scalp_muscle"]: 0.55 * wm,
             hv["scalp_fat"]: 1.1 * wm, hv["neck_soft_tissue"]: 0.6 * wm,
             hv["skull_marrow"]: 0.9 * wm}
    from scipy import ndimage

    painted = np.zeros_like(arr_p)
    for v, m in means.items():
        painted[head == v] = m
    painted = ndimage.gaussian_filter(painted, 0.7)
    sel = np.isin(head, list(means))
    arr_p = np.where(sel, np.abs(painted + rng.normal(0, noise, arr_p.shape)), arr_p)
    shift = np.eye(4)
    shift[:3, 3] = -np.array(pad, dtype=float)
    return Volume(arr_p[None].astype(np.float32), aff @ shift), lab_p


def _dice(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {n: round(float(dice(pred == v, ref == v)), 4) for v, n in NAMES.items()}


def _variant(case_id: str, name: str, tmp: Path) -> tuple[Volume, np.ndarray]:
    img_path = DATASET / "imagesTs" / f"{case_id}_0000.nii.gz"
    lab_path = DATASET / "labelsTs" / f"{case_id}.nii.gz"
    image, ref = read_image(img_path), read_label_map(lab_path).data
    if name == "as_is":
        return image, ref
    if name == "stripped":
        return image.with_array(np.where(ref[None] > 0, image.array, 0).astype(np.float32)), ref
    if name == "scaled":
        return image.with_array(image.array.astype(np.float32) * 10 + 1000), ref
    if name == "thick_1x1x5":
        sp = (1.0, 1.0, 5.0)
        im = read_image(_resample_sitk(img_path, sp, False, tmp / f"{case_id}_thick.nii.gz"))
        lab = read_label_map(_resample_sitk(lab_path, sp, True, tmp / f"{case_id}_tl.nii.gz"))
        return im, lab.data
    if name == "with_skull":
        return with_synthetic_head(image, ref, seed=int(case_id.split("_")[-1]))
    raise ValueError(name)


def validate_mni(seg: Segmenter, variants=VARIANTS) -> dict:
    cases = sorted(p.name[: -len(".nii.gz")] for p in (DATASET / "labelsTs").glob("*.nii.gz"))
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in variants:
            per_case = {}
            for cid in cases:
                image, ref = _variant(cid, name, Path(tmp))
                pred = seg(image, where=cid).labels.data
                per_case[cid] = _dice(pred, ref)
            mean = {n: round(float(np.mean([c[n] for c in per_case.values()])), 4)
                    for n in NAMES.values()}
            out[name] = {"mean": mean, "per_case": per_case}
            print(f"{name:<12} " + "  ".join(f"{n} {v:.3f}" for n, v in mean.items()),
                  flush=True)
    return out


def real_head_cases() -> dict[str, tuple[Volume, np.ndarray]]:
    """The real T1 head of ``sample_data/real_mri`` as it is and skull-stripped (zero outside
    the outline), each with its brain outline (boolean, on the image grid)."""
    image = read_image(REAL_MRI / "itk_t1_head.nii.gz")
    mask = read_label_map(REAL_MRI / "itk_t1_brain_mask.nii.gz").data > 0
    stripped = image.with_array(np.where(mask[None], image.array, 0).astype(np.float32))
    return {"with_skull": (image, mask), "stripped": (stripped, mask)}


def _shown(name: str, image: Volume, pred: np.ndarray) -> tuple[str, np.ndarray, np.ndarray,
                                                                  tuple[float, ...]]:
    """A display row: image and prediction on the RAS grid (axial slices along z)."""
    tr = canonical_transform(image)
    img = reorient_array(image.array.astype(np.float32), tr)[0]
    lab = reorient_array(pred[None], tr)[0]
    spacing = tuple(float(v) for v in np.linalg.norm(canonical_affine(image, tr)[:3, :3],
                                                     axis=0))
    return name, img, lab, spacing


def validate_real_head(seg: Segmenter, shown: list) -> dict:
    out = {}
    for name, (image, mask) in real_head_cases().items():
        pred = seg(image, where=f"itk_t1_{name}").labels.data
        voxel_ml = float(np.prod(image.spacing)) / 1000.0
        vols = {n: round(float((pred == v).sum()) * voxel_ml, 1) for v, n in NAMES.items()}
        out[name] = {"brain_dice": round(float(dice(pred > 0, mask)), 4),
                     "volumes_ml": vols, "brain_ml": round(sum(vols.values()), 1),
                     "outline_ml": round(float(mask.sum()) * voxel_ml, 1)}
        print(f"itk_t1 {name:<10} brain Dice {out[name]['brain_dice']:.3f}  brain "
              f"{out[name]['brain_ml']} mL (outline {out[name]['outline_ml']} mL) {vols}",
              flush=True)
        shown.append(_shown(f"ITK T1 {name.replace('_', ' ')}", image, pred))
    return out


def validate_real(seg: Segmenter, data: Path, shown: list) -> dict:
    out = {}
    for name in ("brain1", "brain2"):
        image = read_image(data / f"{name}_image.nrrd")
        pred = seg(image, where=name).labels.data
        voxel_ml = float(np.prod(image.spacing)) / 1000.0
        vols = {n: round(float((pred == v).sum()) * voxel_ml, 1) for v, n in NAMES.items()}
        extent = [round(n * s, 1) for n, s in zip(image.spatial_shape, image.spacing,
                                                  strict=True)]
        out[name] = {"volumes_ml": vols, "brain_ml": round(sum(vols.values()), 1),
                     "field_of_view_mm": extent, "spacing_mm": [round(s, 3) for s in
                                                                image.spacing]}
        print(f"{name}: brain {out[name]['brain_ml']} mL {vols} (FOV {extent} mm)", flush=True)
        shown.append(_shown(f"pyradiomics {name}", image, pred))
    return out


def _overlay(shown, figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap([(0, 0, 0, 0), (0.1, 0.5, 1.0, 0.45), (1.0, 0.6, 0.0, 0.45),
                           (0.9, 0.1, 0.9, 0.5)])
    n_slices = 4
    fig, axes = plt.subplots(len(shown), n_slices * 2, figsize=(n_slices * 2 * 2.2,
                                                                 len(shown) * 2.4))
    for row, (name, img, pred, sp) in enumerate(shown):
        found = np.nonzero((pred > 0).any(axis=(0, 1)))[0]  # slices with brain predicted
        lo, hi = (found[0], found[-1]) if found.size else (0, img.shape[2] - 1)
        zs = np.linspace(lo + 0.15 * (hi - lo), lo + 0.8 * (hi - lo), n_slices).astype(int)
        vmax = np.percentile(img, 99.5)
        for k, z in enumerate(zs):
            for j, overlay in enumerate((False, True)):
                ax = axes[row, 2 * k + j]
                ax.imshow(img[:, :, z].T, cmap="gray", vmin=0, vmax=vmax, origin="lower",
                          aspect=sp[1] / sp[0])
                if overlay:
                    ax.imshow(pred[:, :, z].T, cmap=cmap, vmin=0, vmax=3, origin="lower",
                              interpolation="nearest", aspect=sp[1] / sp[0])
                ax.set_axis_off()
                ax.set_title(f"{name} z={z}" + (" seg" if overlay else ""), fontsize=7)
    fig.suptitle("brain_tissue on real MR never trained on (RAS axial slices): "
                 "blue WM, orange GM, magenta CSF", fontsize=9)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=90)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="brain_tissue")
    ap.add_argument("--pyradiomics", type=Path, default=None,
                    help="the data/ folder of the unpacked pyradiomics-3.0.1 sdist")
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--record", action="store_true",
                    help="write the figures into the bundle config (training.validation)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model)
    seg = Segmenter(MedsegBundleModel(bundle), InferenceSettings(device="cpu"))
    t0 = time.time()
    shown: list = []
    result: dict = {"model": str(bundle.path), "mni_test": validate_mni(seg, args.variants),
                    "real_head": validate_real_head(seg, shown)}
    if args.pyradiomics is not None:
        result["real_mri"] = validate_real(seg, args.pyradiomics, shown)
    if args.figure is not None:
        _overlay(shown, args.figure)
    result["seconds"] = round(time.time() - t0, 1)
    result["command"] = "python sample_data/scripts/validate_brain.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.record:
        from medseg.io.atomic import write_text_atomic

        config = dict(bundle.config)
        config["training"] = {**config.get("training", {}),
                              "validation": {k: v for k, v in result.items() if k != "model"}}
        write_text_atomic(bundle.path / "config.json", json.dumps(config, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
