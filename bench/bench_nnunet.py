"""Benchmark: medseg vs nnU-Net's own ``nnUNetPredictor`` on one nnU-Net v2 model, CPU.

Same model folder (the committed fixture A by default), same CT-sized input file, same tile
step (0.5), folds and mirroring; each side runs in a fresh subprocess so the peak resident set
sizes (``VmHWM``) are separate:

* nnU-Net: ``nnUNetPredictor(device=cpu).initialize_from_trained_model_folder`` then
  ``predict_from_files_sequential`` (nnU-Net's own reading, preprocessing, prediction and
  export in one process, no worker pool);
* medseg: ``load_model`` -> ``read_image`` -> ``Segmenter`` -> ``write_image``.

Both get the same number of torch threads (``--threads``; nnU-Net's ``nnUNet_def_n_proc`` is
set to it as well). The input is a medseg CT phantom on a 512 x 512 x 200 grid at
0.8 x 0.8 x 2.5 mm (stored with the voxel axes the fixture was trained with), written once to
``--work``. Prints wall time, CPU time (user + system, less sensitive to other load on a shared
machine), peak memory, their ratios, and the voxel agreement and per-class Dice between the
two masks. With ``--repeats N`` the two alternate N times and the fastest time
and the highest peak of each are reported (the CPU here is shared).

Run inside the environment that has nnunetv2 (medseg installed there with ``--no-deps``)::

    OMP_NUM_THREADS=2 /work/venv-nnunet/bin/python bench/bench_nnunet.py --threads 2

Without nnunetv2 it says so and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURE = (HERE.parent / "tests" / "fixtures" / "nnunet" / "Dataset501_PhantomCT"
           / "nnUNetTrainer_50epochs__nnUNetPlans__3d_fullres")


def make_input(path: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float],
               storage: str) -> None:
    """A CT phantom on ``shape`` (x, y, z) at ``spacing``; ``storage='xzy'`` stores the voxel
    axes as x, z, y (as the fixture's training images), same world geometry."""
    import nibabel as nib

    from medseg.synth.phantoms import make_ct_case

    image, _ = make_ct_case(7001, shape, spacing, orientation="LPS")
    data, affine = np.asarray(image.data), np.asarray(image.affine)
    if storage == "xzy":
        data = np.transpose(data, (0, 2, 1))
        affine = affine.copy()
        affine[:3, :3] = affine[:3, [0, 2, 1]]
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.ascontiguousarray(data.astype(np.int16)), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


#: trainer classes by module, for nnU-Net's trainer lookup (its name search imports every
#: trainer module, one of which needs timm -> torchvision, broken against the CPU torch here;
#: see tests/fixtures/nnunet/README.md). Only the lookup is replaced, not the predictor.
TRAINER_MODULES = {
    "nnUNetTrainer_50epochs":
        "nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs",
    "nnUNetTrainer_onlyMirror01":
        "nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring",
    "nnUNetTrainer": "nnunetv2.training.nnUNetTrainer.nnUNetTrainer",
}


def run_nnunet(args: argparse.Namespace) -> dict:
    import importlib

    import nnunetv2.inference.predict_from_raw_data as pfrd
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    search = pfrd.recursive_find_trainer_class_by_name

    def find_trainer(name: str):
        if name in TRAINER_MODULES:
            return getattr(importlib.import_module(TRAINER_MODULES[name]), name)
        return search(name)

    pfrd.recursive_find_trainer_class_by_name = find_trainer

    torch.set_num_threads(args.threads)
    start, cpu0 = time.perf_counter(), cpu_seconds()
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True,
                                use_mirroring=args.mirror, perform_everything_on_device=False,
                                device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(
        str(args.model), use_folds=tuple(int(f) for f in args.folds) if args.folds else None,
        checkpoint_name="checkpoint_final.pth")
    loaded, cpu1 = time.perf_counter(), cpu_seconds()
    out = Path(args.out)
    predictor.predict_from_files_sequential([[str(args.input)]], [str(out.with_name(
        out.name.replace(".nii.gz", "")))], save_probabilities=False, overwrite=True)
    return {"load_s": loaded - start, "predict_s": time.perf_counter() - loaded,
            "load_cpu_s": cpu1 - cpu0, "predict_cpu_s": cpu_seconds() - cpu1}


def run_medseg(args: argparse.Namespace) -> dict:
    import torch

    from medseg.engine.segmenter import InferenceSettings, Segmenter
    from medseg.io import read_image, write_image
    from medseg.models import load_model

    torch.set_num_threads(args.threads)
    start, cpu0 = time.perf_counter(), cpu_seconds()
    model = load_model(args.model, folds=args.folds or None)
    loaded, cpu1 = time.perf_counter(), cpu_seconds()
    volume = read_image(args.input)
    segmentation = Segmenter(model, InferenceSettings(mirror=args.mirror, device="cpu",
                                                      sw_batch_size=args.batch))(volume)
    write_image(segmentation.labels, args.out)
    return {"load_s": loaded - start, "predict_s": time.perf_counter() - loaded,
            "load_cpu_s": cpu1 - cpu0, "predict_cpu_s": cpu_seconds() - cpu1}


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's resident high-water mark (``VmHWM``; ``ru_maxrss`` would also count the
    parent's size at the fork that started it)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    result = run_nnunet(args) if args.worker == "nnunet" else run_medseg(args)
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


def spawn(kind: str, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--model", str(args.model),
           "--input", str(args.input), "--out", str(out), "--threads", str(args.threads),
           "--batch", str(args.batch)]
    if args.mirror:
        cmd.append("--mirror")
    if args.folds:
        cmd += ["--folds", *args.folds]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               nnUNet_def_n_proc=str(args.threads), nnUNet_compile="false")
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env.setdefault(key, str(args.work / key))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{kind} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def compare(a: Path, b: Path) -> tuple[float, dict[int, float]]:
    import nibabel as nib

    x = np.asarray(nib.load(str(a)).dataobj)
    y = np.asarray(nib.load(str(b)).dataobj)
    if x.shape != y.shape:
        sys.exit(f"masks differ in shape: {x.shape} vs {y.shape}")
    dices = {}
    for v in sorted(set(np.unique(x)) | set(np.unique(y))):
        if v == 0:
            continue
        p, q = x == v, y == v
        dices[int(v)] = float(2 * (p & q).sum() / max(p.sum() + q.sum(), 1))
    return float((x == y).mean()), dices


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=FIXTURE)
    p.add_argument("--work", type=Path, default=Path("/tmp/medseg-bench-nnunet"))
    p.add_argument("--input", type=Path, default=None)
    p.add_argument("--shape", type=int, nargs=3, default=(512, 512, 200))
    p.add_argument("--spacing", type=float, nargs=3, default=(0.8, 0.8, 2.5))
    p.add_argument("--storage", choices=("xzy", "xyz"), default="xzy")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--folds", nargs="*", default=None)
    p.add_argument("--mirror", action="store_true")
    p.add_argument("--batch", type=int, default=2, help="medseg's sw_batch_size")
    p.add_argument("--repeats", type=int, default=2, help="runs of each, alternating")
    p.add_argument("--worker", choices=("nnunet", "medseg"), help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    try:
        import nnunetv2  # noqa: F401
    except ImportError:
        print("nnunetv2 is not installed in this environment; run this benchmark where it is "
              "(see the docstring). Nothing measured.")
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.input is None:
        shape = "x".join(str(s) for s in args.shape)
        args.input = args.work / f"ct_{shape}_{args.storage}_0000.nii.gz"
        if not args.input.exists():
            print(f"writing the input phantom {args.input} ...", flush=True)
            make_input(args.input, tuple(args.shape), tuple(args.spacing), args.storage)
    print(f"model {args.model}\ninput {args.input}  threads {args.threads}  mirror "
          f"{args.mirror}  folds {args.folds or 'all'}", flush=True)
    results: dict[str, dict] = {}
    for repeat in range(args.repeats):  # alternate the two so load changes hit both alike
        for kind in ("nnunet", "medseg"):
            r = spawn(kind, args, args.work / f"mask_{kind}.nii.gz")
            print(f"{kind:7s} run {repeat + 1}: load {r['load_s']:6.1f} s  predict "
                  f"{r['predict_s']:7.1f} s (CPU {r['predict_cpu_s']:7.1f} s)  peak RSS "
                  f"{r['peak_rss_mb']:8.0f} MB", flush=True)
            best = results.setdefault(kind, dict(r))
            for key in ("load_s", "predict_s", "load_cpu_s", "predict_cpu_s"):
                best[key] = min(best[key], r[key])
            best["peak_rss_mb"] = max(best["peak_rss_mb"], r["peak_rss_mb"])
    print(f"(fastest of {args.repeats} run(s) each, highest peak)")
    agreement, dices = compare(args.work / "mask_nnunet.nii.gz", args.work / "mask_medseg.nii.gz")
    n, m = results["nnunet"], results["medseg"]
    total = (n["load_s"] + n["predict_s"]) / (m["load_s"] + m["predict_s"])
    print(f"speed-up (predict, file to mask): {n['predict_s'] / m['predict_s']:.2f}x wall, "
          f"{n['predict_cpu_s'] / m['predict_cpu_s']:.2f}x CPU time   (load + predict wall: "
          f"{total:.2f}x)")
    print(f"peak memory medseg / nnU-Net: {m['peak_rss_mb'] / n['peak_rss_mb']:.2f}")
    print(f"voxel agreement {agreement * 100:.3f} %   Dice per class "
          + ", ".join(f"{k}: {v:.4f}" for k, v in dices.items()))


if __name__ == "__main__":
    main()
