"""Benchmark: medseg's TotalSegmentator tasks against TotalSegmentator 2.18.0's own CLI, on CPU.

Both sides run the same networks, in their own process each, on the same CT file:

* TotalSegmentator: ``TotalSegmentator -i CT -o OUT.nii.gz --ml -ta total [--fast] --device cpu``
  (usage statistics off through ``$TOTALSEG_HOME_DIR/config.json``, weights from
  ``$TOTALSEG_WEIGHTS_PATH``, so it never downloads);
* medseg: ``medseg segment CT -o OUTDIR -m totalseg:total[_fast] --device cpu`` with the same
  ``$TOTALSEG_WEIGHTS_PATH``.

Networks of the real size, random weights (fine for timing): the architecture nnU-Net v2.8.1's
``ExperimentPlanner.get_plans_for_configuration`` gives for one CT channel at 1.5 mm (median
shape 254 x 214 x 214: patch 128^3, 6 stages, 32..320 features) and at 3 mm (median shape
127 x 107 x 107: patch 128 x 112 x 112, 5 stages, 32..320 features), written in
TotalSegmentator's folder layout (datasets 291-295 and 297, their trainer folder names, the
class names of each part) into ``--work``. The weights are made by the TotalSegmentator venv's
Python (it has nnU-Net, which builds the network), so this script needs no nnU-Net itself.

The CT is real data made big: ``sample_data/real_ct/lung2_upper_abdomen.nii.gz`` (pyradiomics
lung2, BSD-3) resampled (trilinear) to ``--shape`` voxels at ``--spacing`` mm, int16, LPS.

Reported per tool and task: wall time, CPU time, peak memory of the whole process tree (the sum
of the PSS of the process and all its children, polled every 0.1 s from /proc; nnU-Net starts
worker processes, and PSS counts the pages they share once; the summed RSS is reported too), the
largest single-process peak (``VmHWM``), and the voxel agreement and per-class Dice between the
two masks; then the ratios medseg / TotalSegmentator.

    nice -n 10 python bench/bench_totalseg.py --ts /work/tsvenv/bin/TotalSegmentator \\
        --shape 512 512 300 --tasks total_fast total --work /tmp/bench_ts

Without TotalSegmentator (``--ts``, ``$TOTALSEG_CLI`` or ``TotalSegmentator`` on PATH) it says
so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCE_CT = REPO / "sample_data" / "real_ct" / "lung2_upper_abdomen.nii.gz"

# task -> (TotalSegmentator flags, datasets, medseg model name)
TASKS = {
    "total_fast": (["-ta", "total", "--fast"], [297], "totalseg:total_fast"),
    "total": (["-ta", "total"], [291, 292, 293, 294, 295], "totalseg:total"),
}
# dataset -> folder, trainer, spacing (z, y, x), patch, features, which class map
DATASETS = {
    291: ("Dataset291_TotalSegmentator_part1_organs_1559subj", "nnUNetTrainerNoMirroring",
          "class_map_part_organs"),
    292: ("Dataset292_TotalSegmentator_part2_vertebrae_1532subj", "nnUNetTrainerNoMirroring",
          "class_map_part_vertebrae"),
    293: ("Dataset293_TotalSegmentator_part3_cardiac_1559subj", "nnUNetTrainerNoMirroring",
          "class_map_part_cardiac"),
    294: ("Dataset294_TotalSegmentator_part4_muscles_1559subj", "nnUNetTrainerNoMirroring",
          "class_map_part_muscles"),
    295: ("Dataset295_TotalSegmentator_part5_ribs_1559subj", "nnUNetTrainerNoMirroring",
          "class_map_part_ribs"),
    297: ("Dataset297_TotalSegmentator_total_3mm_1559subj", "nnUNetTrainer_4000epochs_NoMirroring",
          "total"),
}
# nnU-Net 2.8.1 ExperimentPlanner.get_plans_for_configuration for one CT channel (see above)
ARCH = {
    1.5: {"patch": [128, 128, 128], "features": [32, 64, 128, 256, 320, 320]},
    3.0: {"patch": [128, 112, 112], "features": [32, 64, 128, 256, 320]},
}
CT_INTENSITY = {"max": 3071.0, "mean": 97.3, "median": 60.0, "min": -1024.0,
                "percentile_00_5": -960.0, "percentile_99_5": 1276.0, "std": 232.1}


# --------------------------------------------------------------------------------------------
# weights (run by the TotalSegmentator venv's Python: ``bench_totalseg.py --make-weights DIR``)
# --------------------------------------------------------------------------------------------
def make_weights(root: Path, ids: list[int]) -> None:
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from totalsegmentator.map_to_binary import class_map, class_map_5_parts

    torch.manual_seed(0)
    for did in ids:
        folder_name, trainer, names_key = DATASETS[did]
        spacing = 3.0 if did == 297 else 1.5
        names = class_map[names_key] if names_key == "total" else class_map_5_parts[names_key]
        arch = ARCH[spacing]
        n = len(arch["features"])
        folder = root / folder_name / f"{trainer}__nnUNetPlans__3d_fullres"
        ckpt = folder / "fold_0" / "checkpoint_final.pth"
        if ckpt.exists():
            continue
        (folder / "fold_0").mkdir(parents=True, exist_ok=True)
        labels = {"background": 0, **{v: int(k) for k, v in sorted(names.items())}}
        dataset = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1559,
                   "file_ending": ".nii.gz"}
        conf = {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": arch["patch"], "spacing": [spacing] * 3,
            "median_image_size_in_voxels": [254, 214, 214],
            "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0,
                                          "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0,
                                         "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "batch_dice": True,
            "architecture": {
                "network_class_name":
                    "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": n, "features_per_stage": arch["features"],
                    "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * n,
                    "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
                    "n_conv_per_stage": [2] * n, "n_conv_per_stage_decoder": [2] * (n - 1),
                    "conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                    "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                    "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        }
        plans = {"dataset_name": folder_name, "plans_name": "nnUNetPlans",
                 "original_median_spacing_after_transp": [spacing] * 3,
                 "original_median_shape_after_transp": [254, 214, 214],
                 "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2],
                 "transpose_backward": [0, 1, 2], "configurations": {"3d_fullres": conf},
                 "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
                 "foreground_intensity_properties_per_channel": {"0": CT_INTENSITY}}
        (folder / "plans.json").write_text(json.dumps(plans, indent=2))
        (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
        cm = PlansManager(plans).get_configuration("3d_fullres")
        net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                     cm.network_arch_init_kwargs_req_import, 1, len(labels),
                                     allow_init=True, deep_supervision=False)
        torch.save({"network_weights": net.state_dict(), "optimizer_state": None,
                    "grad_scaler_state": None, "logging": {}, "_best_ema": None,
                    "current_epoch": 0,
                    "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0,
                                  "dataset_json": dataset, "device": torch.device("cpu")},
                    "trainer_name": trainer, "inference_allowed_mirroring_axes": None}, ckpt)
        print(f"  weights {folder_name}: {ckpt.stat().st_size / 1e6:.0f} MB", flush=True)


# --------------------------------------------------------------------------------------------
# input, measurement
# --------------------------------------------------------------------------------------------
def make_ct(path: Path, shape, spacing) -> None:
    import nibabel as nib
    from scipy import ndimage

    if path.exists():
        return
    src = nib.load(SOURCE_CT)
    a = np.asanyarray(src.dataobj).astype(np.float32)
    zoom = np.array(shape) / np.array(a.shape)
    big = ndimage.zoom(a, zoom, order=1, mode="nearest")
    aff = src.affine.copy()
    axes = aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0)
    aff[:3, :3] = axes * np.array(spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.round(big).astype(np.int16), aff), path)


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                out.append(int(d))
    return out


def _status_kb(pid: int, key: str, source: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{source}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``; wall time, CPU time (user + system of it and its reaped children, from
    ``wait4``), the peak of the summed PSS of its process tree (shared pages counted once; the
    summed RSS too, which counts every worker's copy of torch), and the largest VmHWM."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        # from this checkout's root: ``python -m`` puts the working directory first on
        # sys.path, so another checkout there would be the medseg that runs
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        peak_tree = peak_rss = 0
        hwm = {}
        done = threading.Event()

        def poll():
            nonlocal peak_tree, peak_rss
            while not done.is_set():
                tree, todo = [], [proc.pid]
                while todo:
                    p = todo.pop()
                    tree.append(p)
                    todo.extend(_children(p))
                peak_tree = max(peak_tree, sum(_status_kb(p, "Pss", "smaps_rollup") for p in tree))
                peak_rss = max(peak_rss, sum(_status_kb(p, "VmRSS") for p in tree))
                for p in tree:
                    hwm[p] = max(hwm.get(p, 0), _status_kb(p, "VmHWM"))
                time.sleep(0.1)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        rc = proc.returncode
        done.set()
        th.join()
    wall = time.perf_counter() - t0
    return {"rc": rc, "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_tree_mb": round(peak_tree / 1024), "peak_tree_rss_mb": round(peak_rss / 1024),
            "peak_process_mb": round(max(hwm.values(), default=0) / 1024)}


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    equal = float(np.mean(a == b))
    dice = {}
    for c in np.union1d(np.unique(a), np.unique(b)):
        if c == 0:
            continue
        x, y = a == c, b == c
        n = int(x.sum() + y.sum())
        if n >= 100:
            dice[int(c)] = round(2.0 * float((x & y).sum()) / n, 4)
    return {"equal_fraction": round(equal, 6), "min_dice": min(dice.values(), default=None),
            "classes": len(dice)}


def find_ts(arg: str | None) -> str | None:
    for cand in (arg, os.environ.get("TOTALSEG_CLI"), shutil.which("TotalSegmentator"),
                 "/work/tsvenv/bin/TotalSegmentator"):
        if cand and Path(cand).is_file():
            return os.path.abspath(cand)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ts", help="TotalSegmentator executable (of a venv with TotalSegmentator)")
    ap.add_argument("--tasks", nargs="+", default=["total_fast", "total"], choices=list(TASKS))
    ap.add_argument("--shape", nargs=3, type=int, default=[512, 512, 300])
    ap.add_argument("--spacing", nargs=3, type=float, default=[0.8, 0.8, 1.5])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_totalseg")
    ap.add_argument("--only", choices=["ts", "medseg"], help="run one side only")
    ap.add_argument("--make-weights", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ids", nargs="*", type=int, default=[], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.make_weights:
        make_weights(args.make_weights, args.ids)
        return 0
    ts = find_ts(args.ts)
    if ts is None:
        print("skip: TotalSegmentator is not available (give --ts PATH or set TOTALSEG_CLI); "
              "install TotalSegmentator==2.18.0 in a separate venv to run this benchmark")
        return 0
    work = args.work.resolve()
    weights = work / "weights"
    ids = sorted({i for t in args.tasks for i in TASKS[t][1]})
    subprocess.run([str(Path(ts).with_name("python")), __file__, "--make-weights", str(weights),
                    "--ids", *map(str, ids)], check=True)
    tag = "x".join(map(str, args.shape))
    ct = work / f"ct_{tag}.nii.gz"
    make_ct(ct, args.shape, args.spacing)
    home = work / "ts_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(
        {"totalseg_id": "totalseg_BENCH", "send_usage_stats": False, "prediction_counter": 0,
         "statistics_disclaimer_shown": True}))
    env = dict(os.environ, TOTALSEG_HOME_DIR=str(home), TOTALSEG_WEIGHTS_PATH=str(weights))
    # medseg from this checkout (and its plugin shim, where a worktree has one)
    paths = [str(p) for p in (REPO / ".pp", REPO) if p.is_dir()]
    env["PYTHONPATH"] = os.pathsep.join(
        paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    results = {"shape": args.shape, "spacing": args.spacing, "cpus": os.cpu_count(),
               "load_at_start": os.getloadavg()[0], "runs": {}}
    for task in args.tasks:
        flags, _, model = TASKS[task]
        ts_out = work / f"ts_{task}_{tag}.nii.gz"
        ms_out = work / f"medseg_{task}_{tag}"
        row = {}
        if args.only in (None, "ts"):
            ts_out.unlink(missing_ok=True)
            row["totalsegmentator"] = measure(
                [ts, "-i", str(ct), "-o", str(ts_out), "--ml", "--device", "cpu", "-ns", "1",
                 *flags], env, work / f"ts_{task}_{tag}.log")
        if args.only in (None, "medseg"):
            shutil.rmtree(ms_out, ignore_errors=True)
            row["medseg"] = measure(
                [sys.executable, "-m", "medseg.cli", "segment", str(ct), "-o", str(ms_out),
                 "-m", model, "--device", "cpu", "--quiet"], env,
                work / f"medseg_{task}_{tag}.log")
        if ts_out.exists() and ms_out.exists():
            import nibabel as nib

            masks = sorted(p for p in ms_out.rglob("*.nii.gz"))
            if masks:
                a = np.asanyarray(nib.load(masks[0]).dataobj)
                b = np.asanyarray(nib.load(ts_out).dataobj)
                row["agreement"] = agreement(a, b) if a.shape == b.shape else {
                    "shape_mismatch": [list(a.shape), list(b.shape)]}
        if "medseg" in row and "totalsegmentator" in row and not (
                row["medseg"]["rc"] or row["totalsegmentator"]["rc"]):
            t, m = row["totalsegmentator"], row["medseg"]
            row["speedup"] = round(t["wall_s"] / max(m["wall_s"], 1e-9), 2)
            row["cpu_ratio"] = round(t["cpu_s"] / max(m["cpu_s"], 1e-9), 2)
            row["rss_ratio"] = round(m["peak_tree_mb"] / max(t["peak_tree_mb"], 1), 3)
        results["runs"][task] = row
        print(json.dumps({task: row}), flush=True)
    out = work / f"results_{tag}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"{'task':12} {'tool':17} {'wall s':>8} {'cpu s':>8} {'peak PSS MB':>13} "
          f"{'max proc MB':>13}")
    for task, row in results["runs"].items():
        for tool in ("totalsegmentator", "medseg"):
            if tool in row:
                r = row[tool]
                print(f"{task:12} {tool:17} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} "
                      f"{r['peak_tree_mb']:13d} "
                      f"{r['peak_process_mb']:13d}  rc={r['rc']}")
        if "speedup" in row:
            print(f"{task:12} medseg is {row['speedup']}x faster (wall; {row['cpu_ratio']}x in CPU "
                  f"time), peak memory "
                  f"{row['rss_ratio']}x of TotalSegmentator's; agreement {row.get('agreement')}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
