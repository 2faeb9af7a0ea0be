"""Benchmark: medseg's evaluation metrics against MONAI's metric classes on CT-sized volumes.

Builds a cohort of label maps (default 512 x 512 x 200, anisotropic 0.8 x 0.8 x 2.5 mm) with a
few organ-like classes (deformed ellipsoids of realistic size, not full-volume noise) and
predictions that differ by a shift and a different boundary deformation. Then, in one process,
times :func:`medseg.evaluation.pairs.evaluate_pair` (every per-class metric of the report plus the
semantic view) against MONAI's ``DiceMetric``, ``HausdorffDistanceMetric(percentile=95)``,
``SurfaceDistanceMetric(symmetric=True)`` and ``SurfaceDiceMetric`` with the same spacing and
tolerances, and prints the times, the speed ratio and the largest absolute difference of the
values. MONAI gets one-hot tensors built outside its timing.

    python bench/bench_metrics.py --cases 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy import ndimage as ndi

SPACING = (0.8, 0.8, 2.5)
#: name, label, centre (fraction of the shape), semi-axes (mm), NSD tolerance (mm)
ORGANS = (
    ("liver", 1, (0.35, 0.45, 0.5), (80.0, 70.0, 75.0), 2.0),
    ("kidney_r", 2, (0.65, 0.6, 0.45), (28.0, 25.0, 45.0), 1.5),
    ("kidney_l", 3, (0.68, 0.3, 0.47), (27.0, 24.0, 44.0), 1.5),
    ("lesion", 4, (0.4, 0.5, 0.55), (12.0, 10.0, 11.0), 1.0),
)


def _organ(shape, centre, axes, rng, shift=(0.0, 0.0, 0.0), wobble=0.12):
    """A deformed ellipsoid: (box slices, boolean mask in the box)."""
    sp = np.asarray(SPACING)
    c = np.asarray(centre) * np.asarray(shape) + np.asarray(shift)
    half = np.ceil(np.asarray(axes) * (1 + 2 * wobble) / sp).astype(int) + 2
    lo = np.maximum(c.astype(int) - half, 0)
    hi = np.minimum(c.astype(int) + half, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    grids = np.ogrid[box]
    r = sum(((g - ci) * s / a) ** 2 for g, ci, s, a in zip(grids, c, sp, axes, strict=True))
    coarse = rng.normal(size=(6, 6, 6))
    size = tuple(b - a for a, b in zip(lo, hi, strict=True))
    noise = ndi.zoom(coarse, [n / 6 for n in size], order=3, mode="nearest")[
        tuple(slice(0, n) for n in size)]
    return box, np.sqrt(r) < 1.0 + wobble * noise


def make_case(shape, seed):
    rng = np.random.default_rng(seed)
    ref = np.zeros(shape, dtype=np.uint8)
    pred = np.zeros(shape, dtype=np.uint8)
    for _, label, centre, axes, _ in ORGANS:
        box, m = _organ(shape, centre, axes, rng)
        ref[box][m] = label
        shift = rng.uniform(-2, 2, size=3)
        box, m = _organ(shape, centre, axes, rng, shift=shift)
        pred[box][m] = label
    return pred, ref


def monai_metrics(pred, ref, n_classes, tolerances):
    import torch
    from monai.metrics import (
        DiceMetric,
        HausdorffDistanceMetric,
        SurfaceDiceMetric,
        SurfaceDistanceMetric,
    )

    def onehot(a):
        return torch.stack([torch.from_numpy(a == c) for c in range(n_classes + 1)])[None].float()

    yp, yr = onehot(pred), onehot(ref)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {
            "dice": DiceMetric(include_background=False)(yp, yr),
            "hd95": HausdorffDistanceMetric(include_background=False, percentile=95)(
                yp, yr, spacing=SPACING),
            "assd": SurfaceDistanceMetric(include_background=False, symmetric=True)(
                yp, yr, spacing=SPACING),
            "nsd": SurfaceDiceMetric(class_thresholds=list(tolerances),
                                     include_background=False)(yp, yr, spacing=SPACING),
        }
    elapsed = time.perf_counter() - t0
    return {k: v.numpy().ravel() for k, v in out.items()}, elapsed


def medseg_metrics(pred, ref, tolerances):
    from medseg.evaluation.pairs import evaluate_pair
    from medseg.volume import LabelMap, affine_from_geometry

    affine = affine_from_geometry(SPACING, (0, 0, 0))
    labels = {label: name for name, label, *_ in ORGANS}
    t0 = time.perf_counter()
    rows = evaluate_pair(LabelMap(pred[None], affine), LabelMap(ref[None], affine), labels,
                         tolerance=tolerances)
    elapsed = time.perf_counter() - t0
    rows = [r for r in rows if r["label"] is not None]
    return {m: np.array([r[m] for r in rows]) for m in ("dice", "hd95", "assd", "nsd")}, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--shape", type=int, nargs=3, default=(512, 512, 200))
    ap.add_argument("--no-monai", action="store_true", help="time medseg only")
    args = ap.parse_args()
    shape = tuple(args.shape)
    tolerances = {name: tol for name, _, _, _, tol in ORGANS}
    t_ours = t_monai = 0.0
    max_diff: dict[str, float] = {}
    for case in range(args.cases):
        pred, ref = make_case(shape, seed=case)
        ours, t = medseg_metrics(pred, ref, tolerances)
        t_ours += t
        line = f"case {case}: medseg {t:6.2f} s"
        if not args.no_monai:
            theirs, tm = monai_metrics(pred, ref, len(ORGANS), tolerances.values())
            t_monai += tm
            line += f"   MONAI {tm:6.2f} s   ratio {tm / t:5.1f}x"
            for k in ours:
                d = float(np.max(np.abs(ours[k] - theirs[k])))
                max_diff[k] = max(max_diff.get(k, 0.0), d)
        print(line, "  dice", np.round(ours["dice"], 4), "hd95", np.round(ours["hd95"], 2),
              flush=True)
    print(f"\n{args.cases} cases of {'x'.join(map(str, shape))} voxels, spacing {SPACING} mm, "
          f"{len(ORGANS)} classes")
    print(f"medseg (all report metrics): {t_ours:7.2f} s  ({t_ours / args.cases:.2f} s/case)")
    if not args.no_monai:
        print(f"MONAI (Dice, HD95, ASSD, NSD): {t_monai:7.2f} s  "
              f"({t_monai / args.cases:.2f} s/case)")
        print(f"speed ratio MONAI / medseg: {t_monai / t_ours:.1f}x")
        print("max |medseg - MONAI|: " + ", ".join(f"{k} {v:.2e}" for k, v in max_diff.items()))


if __name__ == "__main__":
    main()
