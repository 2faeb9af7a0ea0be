"""Benchmark: medseg inference vs a straightforward MONAI pipeline on the same bundle.

Both run in this one process on the same volume and network weights:

* baseline: MONAI dictionary transforms as in the MONAI tutorials (LoadImaged,
  EnsureChannelFirstd, Orientationd RAS, intensity normalisation as the bundle's, Spacingd
  to the bundle spacing with ``scale_extent=True``, the bundle's grid),
  ``sliding_window_inference`` (overlap 0.5, Gaussian),
  softmax, ``Invertd`` of the probabilities back to the input grid, argmax, SaveImaged;
* medseg: ``read_image`` -> ``Segmenter`` (bundle overlap, per-class resampling with a
  running argmax) -> ``write_image``.

Peak memory is the highest resident set size seen by a sampling thread during each run,
minus the resident size just before it. Prints time, peak memory, their ratios, and the
Dice of each mask against the reference label plus the Dice between the two masks.

    python bench/bench_inference.py [--model brain_tissue] [--upsample 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.evaluation.metrics import dice
from medseg.io import read_image, read_label_map, write_image
from medseg.models.medseg_bundle.bundle import load_bundle
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.volume import LabelMap, Volume

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class PeakMemory:
    def __enter__(self):
        self.start = rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())

    @property
    def used(self) -> int:
        return self.peak - self.start


def monai_baseline(image_path: Path, out_dir: Path, bundle, net) -> Path:
    from monai import transforms as T
    from monai.inferers import sliding_window_inference

    pre = bundle.preprocessing
    intensity = pre.intensity
    steps = [
        T.LoadImaged(keys="image", image_only=False),
        T.EnsureChannelFirstd(keys="image"),
        T.Orientationd(keys="image", axcodes="RAS"),
    ]
    # intensity normalisation before resampling, as the bundle's recipe (and training) does
    if intensity["scheme"] == "ct":
        lo, hi = intensity["clip"]
        steps += [T.ScaleIntensityRanged(keys="image", a_min=lo, a_max=hi, b_min=lo, b_max=hi,
                                         clip=True),
                  T.NormalizeIntensityd(keys="image", subtrahend=intensity["mean"],
                                        divisor=intensity["std"])]
    else:
        steps.append(T.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True))
    # scale_extent=True keeps the field of view's outer edges, which is the grid the bundle was
    # trained on (medseg.ops.preprocess); with the default (first voxel centre anchored) the
    # baseline samples a grid shifted by up to half a model voxel and loses ~0.015 Dice.
    steps.append(T.Spacingd(keys="image", pixdim=pre.target_spacing, mode="bilinear",
                            scale_extent=True))
    preprocess = T.Compose(steps)
    data = preprocess({"image": str(image_path)})
    with torch.inference_mode():
        logits = sliding_window_inference(data["image"][None].float(), bundle.patch_size, 2,
                                          net, overlap=0.5, mode="gaussian")
        data["pred"] = torch.softmax(logits, 1)[0]
    post = T.Compose([
        T.Invertd(keys="pred", transform=preprocess, orig_keys="image", nearest_interp=False,
                  to_tensor=True),
        T.AsDiscreted(keys="pred", argmax=True),
        T.SaveImaged(keys="pred", meta_keys="image_meta_dict", output_dir=str(out_dir),
                     output_postfix="monai", separate_folder=False, print_log=False,
                     output_dtype=np.uint8, resample=False),
    ])
    post(data)
    return next(out_dir.glob("*_monai.nii.gz"))


def medseg_run(image_path: Path, out_dir: Path, segmenter) -> Path:
    image = read_image(image_path)
    result = segmenter(image)
    return write_image(result.labels, out_dir / "medseg.nii.gz", reference=image)


def upsampled_case(bundle_name: str, factor: float, tmp: Path) -> tuple[Path, Path]:
    """A bundled test case resampled to a finer grid (a realistic acquisition size)."""
    roots = {"brain_tissue": ("sample_data/Dataset001_BrainTissue", "brain_100"),
             "abdomen_ct": ("sample_data/Dataset002_AbdomenCT", "abdomen_101")}
    root, case = roots[bundle_name]
    img = read_image(f"{root}/imagesTs/{case}_0000.nii.gz")
    lab = read_label_map(f"{root}/labelsTs/{case}.nii.gz")
    if factor == 1:
        return Path(f"{root}/imagesTs/{case}_0000.nii.gz"), Path(f"{root}/labelsTs/{case}.nii.gz")
    shape = tuple(round(s * factor) for s in img.spatial_shape)
    zoom = np.array(img.spatial_shape) / np.array(shape)
    m = np.diag([*zoom, 1.0])
    m[:3, 3] = 0.5 * (zoom - 1)
    data = ndimage.affine_transform(img.data.astype(np.float32), m[:3, :3], offset=m[:3, 3],
                                    output_shape=shape, order=1)
    labels = ndimage.affine_transform(lab.data, m[:3, :3], offset=m[:3, 3], output_shape=shape,
                                      order=0)
    affine = img.affine @ m
    write_image(Volume.from_spatial(data.astype(np.int16), affine), tmp / "image.nii.gz")
    write_image(LabelMap.from_spatial(labels.astype(np.uint8), affine), tmp / "label.nii.gz")
    return tmp / "image.nii.gz", tmp / "label.nii.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="brain_tissue")
    ap.add_argument("--upsample", type=float, default=2.0,
                    help="resample the test case to this many times finer voxels per axis")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sw-batch-size", type=int, default=2,
                    help="medseg's sliding-window batch (the baseline keeps 2)")
    args = ap.parse_args()
    torch.manual_seed(0)
    bundle = load_bundle(args.model)
    segmenter = Segmenter(MedsegBundleModel(bundle), InferenceSettings(device="cpu",
                                                    sw_batch_size=args.sw_batch_size))
    net = segmenter.models[0].net
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        image_path, label_path = upsampled_case(args.model, args.upsample, tmp)
        ref = read_label_map(label_path).data
        print(f"model {bundle.name} ({bundle.config['architecture']['name']}), input "
              f"{read_image(image_path).spatial_shape}, torch threads {torch.get_num_threads()}")
        times: dict[str, list[float]] = {"monai": [], "medseg": []}
        mems: dict[str, list[int]] = {"monai": [], "medseg": []}
        outputs: dict[str, Path] = {}
        for r in range(args.repeats):
            order = ["monai", "medseg"] if r % 2 == 0 else ["medseg", "monai"]
            for name in order:
                out = tmp / f"{name}_{r}"
                out.mkdir()
                with PeakMemory() as pm:
                    t0 = time.perf_counter()
                    if name == "monai":
                        outputs[name] = monai_baseline(image_path, out, bundle, net)
                    else:
                        outputs[name] = medseg_run(image_path, out, segmenter)
                    times[name].append(time.perf_counter() - t0)
                mems[name].append(pm.used)
        masks = {k: read_label_map(v).data for k, v in outputs.items()}
        values = [v for v in bundle.label_names if v]
        print(f"{'':8} {'time s':>8} {'peak MiB':>9}  Dice vs reference per class")
        mean_dice = {}
        for name in ("monai", "medseg"):
            per = [dice(masks[name] == v, ref == v) for v in values]
            mean_dice[name] = float(np.mean(per))
            print(f"{name:8} {statistics.median(times[name]):8.2f} "
                  f"{statistics.median(mems[name]) / 2**20:9.1f}  "
                  + " ".join(f"{bundle.label_names[v]}={d:.4f}" for v, d in zip(values, per,
                                                                                 strict=True))
                  + f"  mean={mean_dice[name]:.4f}")
        speed = statistics.median(times["monai"]) / statistics.median(times["medseg"])
        memory = statistics.median(mems["medseg"]) / statistics.median(mems["monai"])
        agree = np.mean([dice(masks["medseg"] == v, masks["monai"] == v) for v in values])
        print(f"speed-up (monai time / medseg time): {speed:.2f}x   target >= 1.5x")
        print(f"peak memory ratio (medseg / monai): {memory:.2f}   target <= 0.6")
        print(f"mean Dice difference (medseg - monai): "
              f"{mean_dice['medseg'] - mean_dice['monai']:+.4f}   target within 0.005")
        print(f"Dice between the two masks (mean over classes): {agree:.4f}")


if __name__ == "__main__":
    main()
