"""Small TotalSegmentator-layout weight folders written by tests.

``write_release(root, release, labels, spacing)`` writes ``<folder>/<trainer>__nnUNetPlans__
3d_fullres/`` with a ``plans.json`` (a tiny PlainConvUNet, the task's target spacing, CT
intensity properties), a ``dataset.json`` with the part's class names and a
``fold_0/checkpoint_final.pth`` whose network answers one class everywhere (``constant``: its
last layer has zero weights and a bias that picks that class). Such networks make the steps
around nnU-Net checkable: which parts ran, how they merged, where a crop went, which class ids
came out. (Agreement with TotalSegmentator itself is checked on the trained fixtures in
``sample_data/totalseg``.)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from medseg.models.nnunet.network import build_network
from medseg.models.nnunet.plans import read_plans
from medseg.models.totalseg.tasks import WeightsRelease

TEMPLATE = (Path(__file__).resolve().parent / "fixtures" / "nnunet" / "Dataset501_PhantomCT"
            / "nnUNetTrainer_50epochs__nnUNetPlans__3d_fullres" / "plans.json")
#: CT intensity properties of the template (mean 100, std 400 after clipping)
INTENSITY = {"0": {"max": 3000.0, "mean": 100.0, "median": 80.0, "min": -1024.0,
                   "percentile_00_5": -1000.0, "percentile_99_5": 2000.0, "std": 400.0}}


def _plans(dataset: str, spacing_zyx: list[float]) -> dict:
    plans = json.loads(TEMPLATE.read_text())
    plans["dataset_name"] = dataset
    plans["transpose_forward"] = [0, 1, 2]
    plans["transpose_backward"] = [0, 1, 2]
    plans["foreground_intensity_properties_per_channel"] = INTENSITY
    config = plans["configurations"]["3d_fullres"]
    config["spacing"] = spacing_zyx
    config["patch_size"] = [16, 16, 16]
    arch = config["architecture"]["arch_kwargs"]
    arch.update(n_stages=3, features_per_stage=[4, 8, 8], kernel_sizes=[[3, 3, 3]] * 3,
                strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], n_conv_per_stage=[1, 1, 1],
                n_conv_per_stage_decoder=[1, 1])
    plans["configurations"] = {"3d_fullres": config}
    return plans


def write_release(root: Path, release: WeightsRelease, labels: dict[int, str],
                  spacing_xyz: tuple[float, float, float], constant: int) -> Path:
    """A trainer folder for ``release`` under ``root`` whose network answers the part label
    ``constant`` everywhere."""
    folder = root / release.folder / release.trainer_folder
    (folder / "fold_0").mkdir(parents=True)
    plans = _plans(release.folder, [float(spacing_xyz[2]), float(spacing_xyz[1]),
                                    float(spacing_xyz[0])])
    (folder / "plans.json").write_text(json.dumps(plans))
    names = {"background": 0, **{n: int(v) for v, n in sorted(labels.items())}}
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": names, "numTraining": 1,
        "file_ending": ".nii.gz"}))
    parsed = read_plans(folder / "plans.json")
    net = build_network(parsed.configuration("3d_fullres").architecture, folder / "plans.json",
                        1, len(names))
    state = net.state_dict()
    head = [k for k in state if k.startswith("decoder.seg_layers.") and k.endswith(".weight")]
    last = sorted(head)[-1]
    weight = torch.zeros_like(state[last])
    bias = torch.full_like(state[last.replace(".weight", ".bias")], -10.0)
    bias[constant] = 10.0
    state[last] = weight
    state[last.replace(".weight", ".bias")] = bias
    torch.save({"network_weights": state, "init_args": {"configuration": "3d_fullres"},
                "trainer_name": release.trainer, "inference_allowed_mirroring_axes": None},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder

