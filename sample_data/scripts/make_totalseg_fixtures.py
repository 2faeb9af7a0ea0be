"""Regenerate sample_data/totalseg/: tiny TotalSegmentator-layout weights, inputs, and the masks
that the real TotalSegmentator 2.18.0 writes for them (the reference for medseg's runtime tests).

This script does NOT run in medseg's environment or in CI. It runs in a throwaway venv that has
TotalSegmentator and nnU-Net installed (CI needs neither: it only reads the committed files):

    python3 -m venv /work/tsvenv
    echo "torch==2.13.0" > /tmp/c.txt
    /work/tsvenv/bin/pip install -c /tmp/c.txt torch==2.13.0 nnunetv2 TotalSegmentator==2.18.0
    # PyPI's torchvision does not load beside the CPU torch 2.13.0 ("operator torchvision::nms does
    # not exist"), and nnU-Net's trainer lookup imports it (through timm) when it resolves
    # nnUNetTrainer_4000epochs_NoMirroring; so, in this venv only:
    /work/tsvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    pip download --no-deps --no-build-isolation pyradiomics==3.0.1 -d /tmp/pyrad
    tar xzf /tmp/pyrad/pyradiomics-3.0.1.tar.gz -C /tmp/pyrad

    nice -n 10 /work/tsvenv/bin/python sample_data/scripts/make_totalseg_fixtures.py \
        --pyradiomics-data /tmp/pyrad/pyradiomics-3.0.1/data all

Steps (each can be run alone: ``inputs``, ``weights [DATASET_ID ...]``, ``run [CASE ...]``):

inputs   CT and MR inputs derived from the pyradiomics 3.0.1 test images (BSD-3-Clause) and
         sample_data/real_mri/itk_t1_head.nii.gz, written non-RAS / oblique / thick-slice /
         zero-bordered (see INPUTS below).
weights  one small nnU-Net v2 model per TotalSegmentator dataset id, in TotalSegmentator's exact
         folder layout (``DatasetNNN_<name>/<trainer>__nnUNetPlans__3d_fullres/{plans.json,
         dataset.json,fold_0/checkpoint_final.pth}``), with TotalSegmentator's target spacings,
         trainer names and class names. The networks are tiny PlainConvUNets built by nnU-Net's
         own ``get_network_from_plans`` from the plans; each is trained for a few hundred steps
         on real CT/MR (preprocessed by nnU-Net's own DefaultPreprocessor, exactly as at
         inference) to a fixed rule of intensity bands per class, so that the outputs are
         structured (several classes of hundreds of voxels) instead of noise. They are NOT
         anatomy models: the labels are intensity bands carrying TotalSegmentator's class names.
run      runs the real ``TotalSegmentator`` CLI (``--ml --device cpu``, usage statistics off
         in ``$TOTALSEG_HOME_DIR/config.json``, weights from ``$TOTALSEG_WEIGHTS_PATH`` = the
         committed folder, so nothing is ever downloaded) for every case in CASES and writes
         ``expected/<case>.nii.gz`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "totalseg"
WEIGHTS = OUT / "weights"
INPUTS = OUT / "inputs"
EXPECTED = OUT / "expected"
TS_VERSION = "2.18.0"
SEED = 20

# ---------------------------------------------------------------------------------------------
# Datasets: id -> folder, trainer, target spacing (x, y, z as in TotalSegmentator's
# map_tasks_config.py; plans.json holds it reversed, z, y, x), modality, which class map names
# the labels, plans format, and the label rule.
#
# A rule is a list of (low, high, class name): a voxel whose value lies in [low, high) gets the
# class (later entries win). For CT the value is HU; for MR it is nnU-Net's z-scored intensity.
# ---------------------------------------------------------------------------------------------
CT_TOTAL_FAST_RULE = [
    (-900, -650, "lung_upper_lobe_left"), (-650, -400, "lung_lower_lobe_right"),
    (-200, -30, "small_bowel"), (-30, 40, "liver"), (40, 150, "spleen"),
    (150, 500, "rib_left_1"), (500, 5000, "vertebrae_L1"),
]
DATASETS = {
    291: dict(folder="Dataset291_TotalSegmentator_part1_organs_1559subj",
              trainer="nnUNetTrainerNoMirroring", spacing=(1.5, 1.5, 1.5), modality="CT",
              classes=("parts", "class_map_part_organs"), fmt="old", patch=(48, 48, 48),
              rule=[(-900, -400, "lung_upper_lobe_left"), (-200, -30, "small_bowel"),
                    (-30, 40, "liver"), (40, 150, "spleen")]),
    292: dict(folder="Dataset292_TotalSegmentator_part2_vertebrae_1532subj",
              trainer="nnUNetTrainerNoMirroring", spacing=(1.5, 1.5, 1.5), modality="CT",
              classes=("parts", "class_map_part_vertebrae"), fmt="old", patch=(48, 48, 48),
              rule=[(150, 500, "vertebrae_T12"), (500, 5000, "vertebrae_L1")]),
    293: dict(folder="Dataset293_TotalSegmentator_part3_cardiac_1559subj",
              trainer="nnUNetTrainerNoMirroring", spacing=(1.5, 1.5, 1.5), modality="CT",
              classes=("parts", "class_map_part_cardiac"), fmt="old", patch=(48, 48, 48),
              rule=[(90, 150, "aorta"), (-650, -500, "pulmonary_vein")]),
    294: dict(folder="Dataset294_TotalSegmentator_part4_muscles_1559subj",
              trainer="nnUNetTrainerNoMirroring", spacing=(1.5, 1.5, 1.5), modality="CT",
              classes=("parts", "class_map_part_muscles"), fmt="old", patch=(48, 48, 48),
              rule=[(-30, 10, "autochthon_right"), (700, 5000, "skull")]),
    295: dict(folder="Dataset295_TotalSegmentator_part5_ribs_1559subj",
              trainer="nnUNetTrainerNoMirroring", spacing=(1.5, 1.5, 1.5), modality="CT",
              classes=("parts", "class_map_part_ribs"), fmt="old", patch=(48, 48, 48),
              rule=[(150, 400, "rib_left_1"), (400, 700, "sternum")]),
    297: dict(folder="Dataset297_TotalSegmentator_total_3mm_1559subj",
              trainer="nnUNetTrainer_4000epochs_NoMirroring", spacing=(3.0, 3.0, 3.0),
              modality="CT", classes=("task", "total"), fmt="old", patch=(48, 48, 48),
              rule=CT_TOTAL_FAST_RULE),
    298: dict(folder="Dataset298_TotalSegmentator_total_6mm_1559subj",
              trainer="nnUNetTrainer_4000epochs_NoMirroring", spacing=(6.0, 6.0, 6.0),
              modality="CT", classes=("task", "total"), fmt="old", patch=(32, 32, 32),
              rule=[(-900, -400, "lung_upper_lobe_left"), (-200, -30, "small_bowel"),
                    (-30, 40, "liver"), (40, 150, "spleen"), (300, 5000, "vertebrae_L1")]),
    850: dict(folder="Dataset850_TotalSegMRI_part1_organs_1088subj",
              trainer="nnUNetTrainer_2000epochs_NoMirroring", spacing=(1.5, 1.5, 1.5),
              modality="MR", classes=("mrparts", "class_map_part_organs"), fmt="new",
              patch=(48, 48, 48),
              rule=[(-0.6, 0.2, "heart"), (0.3, 1.0, "liver"), (1.0, 2.0, "spleen")]),
    851: dict(folder="Dataset851_TotalSegMRI_part2_muscles_1088subj",
              trainer="nnUNetTrainer_2000epochs_NoMirroring", spacing=(1.5, 1.5, 1.5),
              modality="MR", classes=("mrparts", "class_map_part_muscles"), fmt="new",
              patch=(48, 48, 48),
              rule=[(0.6, 1.3, "brain"), (1.8, 99.0, "autochthon_left")]),
    852: dict(folder="Dataset852_TotalSegMRI_total_3mm_1088subj",
              trainer="nnUNetTrainer_2000epochs_NoMirroring", spacing=(3.0, 3.0, 3.0),
              modality="MR", classes=("task", "total_mr"), fmt="new", patch=(48, 48, 48),
              rule=[(-0.6, 0.2, "heart"), (0.3, 1.0, "liver"), (1.0, 2.0, "spleen"),
                    (2.0, 99.0, "brain")]),
    299: dict(folder="Dataset299_body_1559subj", trainer="nnUNetTrainer", spacing=(1.5, 1.5, 1.5),
              modality="CT", classes=("task", "body"), fmt="old", patch=(48, 48, 48),
              rule=[(-400, 150, "body_trunc"), (150, 5000, "body_extremities")]),
    300: dict(folder="Dataset300_body_6mm_1559subj", trainer="nnUNetTrainer",
              spacing=(6.0, 6.0, 6.0), modality="CT", classes=("task", "body"), fmt="old",
              patch=(32, 32, 32),
              rule=[(-400, 150, "body_trunc"), (150, 5000, "body_extremities")]),
    117: dict(folder="Dataset117_lung_airways_arteries_veins_282subj",
              trainer="nnUNetTrainerSkeletonRecall", spacing=(0.703125, 0.703125, 1.0),
              modality="CT", classes=("task", "lung_vessels"), fmt="new", patch=(48, 48, 48),
              rule=[(-1100, -900, "lung_airways"), (-400, -100, "lung_airways_wall"),
                    (-100, 60, "lung_arteries"), (60, 5000, "lung_veins")]),
    8: dict(folder="Dataset008_HepaticVessel", trainer="nnUNetTrainer",
            spacing=(0.8, 0.8, 1.5), modality="CT", classes=("task", "liver_vessels"),
            fmt="new", patch=(32, 64, 64),
            rule=[(60, 150, "liver_vessels"), (150, 5000, "liver_tumor")]),
}

# Foreground intensity statistics written into every CT plans.json (CTNormalization clips to
# the 0.5/99.5 percentiles, then subtracts the mean and divides by the std). The real
# TotalSegmentator plans were not reachable offline; these are representative values of CT
# foreground (organs and bones), not copies of TotalSegmentator's numbers.
CT_INTENSITY = {"max": 3071.0, "mean": 97.3, "median": 60.0, "min": -1024.0,
                "percentile_00_5": -960.0, "percentile_99_5": 1276.0, "std": 232.1}
MR_INTENSITY = {"max": 2000.0, "mean": 300.0, "median": 280.0, "min": 0.0,
                "percentile_00_5": 10.0, "percentile_99_5": 1200.0, "std": 180.0}

# Cases: name -> input file (relative to sample_data/totalseg/inputs, or ../ for other
# sample_data), TotalSegmentator task and flags.
CASES = {
    "ct_lps__total_fast": ("ct_lps_aniso.nii.gz", "total", ["--fast"]),
    "ct_oblique__total_fast": ("ct_oblique.nii.gz", "total", ["--fast"]),
    "ct_zeroborder__total_fast": ("ct_thick_zeroborder.nii.gz", "total", ["--fast"]),
    "ct_lps__total_fastest": ("ct_lps_aniso.nii.gz", "total", ["--fastest"]),
    "ct_lps__total": ("ct_lps_aniso.nii.gz", "total", []),
    "ct_lps__total_roi_liver_spleen": ("ct_lps_aniso.nii.gz", "total",
                                       ["--roi_subset", "liver", "spleen"]),
    "ct_oblique__total": ("ct_oblique.nii.gz", "total", []),
    "ct_oblique__total_roi_liver_spleen": ("ct_oblique.nii.gz", "total",
                                           ["--roi_subset", "liver", "spleen"]),
    "mr_brain__total_mr_fast": ("mr_brain_lps.nii.gz", "total_mr", ["--fast"]),
    "mr_head__total_mr_fast": ("../../real_mri/itk_t1_head.nii.gz", "total_mr", ["--fast"]),
    "mr_brain__total_mr": ("mr_brain_lps.nii.gz", "total_mr", []),
    "ct_lps__body_fast": ("ct_lps_aniso.nii.gz", "body", ["--fast"]),
    "ct_lps__body": ("ct_lps_aniso.nii.gz", "body", []),
    "ct_chest__lung_vessels": ("ct_chest_small.nii.gz", "lung_vessels", []),
    "ct_chest__liver_vessels": ("ct_chest_small.nii.gz", "liver_vessels", []),
}


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def _read_ras(path: Path):
    """A NRRD/NIfTI read with SimpleITK, as (array x,y,z float64, RAS affine)."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    a = sitk.GetArrayFromImage(img).astype(np.float64).transpose(2, 1, 0)
    d = np.array(img.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = d * np.array(img.GetSpacing())[None, :]
    lps[:3, 3] = img.GetOrigin()
    return a, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _block_mean(a, affine, fx, fy, fz=1):
    x, y, z = (s - s % f for s, f in zip(a.shape, (fx, fy, fz), strict=False))
    a = a[:x, :y, :z].reshape(x // fx, fx, y // fy, fy, z // fz, fz).mean(axis=(1, 3, 5))
    aff = affine.copy()
    aff[:3, 3] += aff[:3, 0] * (fx - 1) / 2 + aff[:3, 1] * (fy - 1) / 2 + aff[:3, 2] * (fz - 1) / 2
    aff[:3, 0] *= fx
    aff[:3, 1] *= fy
    aff[:3, 2] *= fz
    return a, aff


def _save(a, affine, name, dtype=np.int16):
    import nibabel as nib

    img = nib.Nifti1Image(np.round(a).astype(dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    INPUTS.mkdir(parents=True, exist_ok=True)
    nib.save(img, INPUTS / name)
    print(f"  {name}: {a.shape} zooms {img.header.get_zooms()} "
          f"axcodes {nib.aff2axcodes(affine)} {os.path.getsize(INPUTS / name) / 1e6:.2f} MB")


def make_inputs(pyrad: Path) -> None:
    from scipy import ndimage

    print("inputs:")
    ct, aff = _read_ras(pyrad / "lung2_image.nrrd")  # 512x512x61, 0.627 mm, 5 mm, stored LPS
    # 1. non-RAS (LPS storage, as read), anisotropic 1.88 x 1.88 x 5 mm, slices 20..55.
    a, af = _block_mean(ct[:, :, 20:56], aff @ _shift(0, 0, 20), 3, 3)
    a, af = _crop_xy(a, af, 5, 167, 18, 155)
    _save(a, af, "ct_lps_aniso.nii.gz")
    # 2. oblique: the same anatomy on a grid rotated 20 deg about S and 12 deg about L,
    # 2.5 x 2.5 x 3.5 mm, stored RAS-like but oblique (trilinear, -1024 outside).
    rot = _rot_z(np.deg2rad(20)) @ _rot_x(np.deg2rad(12))
    sp = np.array([2.5, 2.5, 3.5])
    shape = (112, 96, 50)
    centre = (af @ np.r_[(np.array(a.shape) - 1) / 2, 1])[:3]
    ob = np.eye(4)
    ob[:3, :3] = rot * sp[None, :]
    ob[:3, 3] = centre - ob[:3, :3] @ ((np.array(shape) - 1) / 2)
    vox = np.linalg.inv(aff) @ ob
    grid = np.indices(shape).reshape(3, -1)
    src = vox[:3, :3] @ grid + vox[:3, 3:4]
    b = ndimage.map_coordinates(ct, src, order=1, mode="constant", cval=-1024).reshape(shape)
    _save(b, ob, "ct_oblique.nii.gz")
    # 3. thick slices (10 mm, pairs of 5 mm slices averaged), 2.5 mm in-plane, axes permuted
    # and one flipped (A, L, S storage), and a 6-voxel border of zeros (value 0, not air).
    c, cf = _block_mean(ct[:, :, 18:58], aff @ _shift(0, 0, 18), 4, 4, 2)
    c, cf = _crop_xy(c, cf, 4, 126, 14, 116)
    c = c.transpose(1, 0, 2)[::-1]
    perm = np.eye(4)[[1, 0, 2, 3]]
    cf = cf @ perm.T
    flip = np.eye(4)
    flip[0, 0] = -1
    flip[0, 3] = c.shape[0] - 1
    cf = cf @ flip
    c = np.pad(c, ((6, 6), (6, 6), (0, 0)), constant_values=0)
    cf = cf @ _shift(-6, -6, 0)
    _save(c, cf, "ct_thick_zeroborder.nii.gz")
    # 4. a small chest crop at 1.25 x 1.25 x 5 mm for the subtasks (lung_vessels resamples to
    # 0.7 mm, liver_vessels to nnU-Net's 0.8 mm; both are slow on big volumes).
    d, df = _block_mean(ct[:, :, 14:30], aff @ _shift(0, 0, 14), 2, 2)
    d, df = _crop_xy(d, df, 60, 196, 60, 160)
    _save(d, df, "ct_chest_small.nii.gz")
    # 5. MR: pyradiomics brain1 (T1 with contrast, 256x256x25 at 0.78 x 0.78 x 6.5 mm, stored
    # with a flipped y axis), 2 x 2 in-plane block means.
    m, maff = _read_ras(pyrad / "brain1_image.nrrd")
    m, mf = _block_mean(m, maff, 2, 2)
    _save(m, mf, "mr_brain_lps.nii.gz")


def _shift(i, j, k):
    t = np.eye(4)
    t[:3, 3] = (i, j, k)
    return t


def _crop_xy(a, af, x0, x1, y0, y1):
    return a[x0:x1, y0:y1], af @ _shift(x0, y0, 0)


def _rot_z(t):
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _rot_x(t):
    c, s = np.cos(t), np.sin(t)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------
def _class_names(spec) -> dict:
    from totalsegmentator.map_to_binary import class_map, class_map_5_parts, class_map_parts_mr

    kind, key = spec["classes"]
    if kind == "parts":
        return class_map_5_parts[key]
    if kind == "mrparts":
        return class_map_parts_mr[key]
    return class_map[key]


def _dataset_json(did, spec) -> dict:
    names = _class_names(spec)
    labels = {"background": 0}
    labels.update({name: int(k) for k, name in sorted(names.items())})
    return {"name": spec["folder"].split("_", 1)[1], "channel_names": {"0": spec["modality"]},
            "labels": labels, "numTraining": 1559, "file_ending": ".nii.gz"}


def _plans(did, spec) -> dict:
    sp = [float(s) for s in reversed(spec["spacing"])]  # z, y, x
    patch = list(spec["patch"])
    aniso = max(sp) / min(sp) > 1.5
    if aniso:
        strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
        kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
    else:
        strides = [[1, 1, 1]] + [[2, 2, 2]] * 3
        kernels = [[3, 3, 3]] * 4
    base, cap, n = 8, 32, 4
    conf = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": patch,
        "median_image_size_in_voxels": [round(300 / s) for s in sp],
        "spacing": sp,
        "normalization_schemes": ["CTNormalization" if spec["modality"] == "CT"
                                  else "ZScoreNormalization"],
        "use_mask_for_norm": [False],
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
    }
    if spec["fmt"] == "old":  # nnU-Net <= 2.2 plans, as in the v2.0.0-weights release
        conf.update({
            "UNet_class_name": "PlainConvUNet", "UNet_base_num_features": base,
            "n_conv_per_stage_encoder": [2] * n, "n_conv_per_stage_decoder": [2] * (n - 1),
            "num_pool_per_axis": [sum(s[i] == 2 for s in strides) for i in range(3)],
            "pool_op_kernel_sizes": strides, "conv_kernel_sizes": kernels,
            "unet_max_num_features": cap,
        })
    else:
        conf["architecture"] = {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": n, "features_per_stage": [min(base * 2 ** i, cap) for i in range(n)],
                "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": kernels,
                "strides": strides, "n_conv_per_stage": [2] * n,
                "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        }
    return {
        "dataset_name": spec["folder"],
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": sp,
        "original_median_shape_after_transp": [round(300 / s) for s in sp],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": conf},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": CT_INTENSITY if spec["modality"] == "CT" else MR_INTENSITY},
    }


def _training_images(spec, pyrad: Path, tmp: Path) -> list[Path]:
    """Real images to train on, as NIfTI, cropped where the target spacing is fine."""
    import nibabel as nib

    out = []
    if spec["modality"] == "MR":
        for name in ("brain1_image.nrrd", "brain2_image.nrrd"):
            a, aff = _read_ras(pyrad / name)
            out.append((a, aff, name))
        img = nib.load(ROOT / "real_mri" / "itk_t1_head.nii.gz")
        out.append((np.asanyarray(img.dataobj).astype(np.float64), img.affine, "itk_t1_head"))
    else:
        for name in ("lung2_image.nrrd", "lung1_image.nrrd"):
            a, aff = _read_ras(pyrad / name)
            if min(spec["spacing"]) < 1.2:
                a = a[130:390, 110:330, 8:36]
                aff = aff @ _shift(130, 110, 8)
            else:
                a, aff = _block_mean(a, aff, 2, 2)
            out.append((a, aff, name))
    paths = []
    for a, aff, name in out:
        p = tmp / f"{name.split('.')[0]}.nii.gz"
        nib.save(nib.Nifti1Image(a.astype(np.int16), aff), p)
        paths.append(p)
    return paths


def _label(values: np.ndarray, rule, names: dict) -> np.ndarray:
    ids = {name: int(k) for k, name in names.items()}
    seg = np.zeros(values.shape, np.int64)
    for lo, hi, name in rule:
        seg[(values >= lo) & (values < hi)] = ids[name]
    return seg


def make_weights(pyrad: Path, ids: list[int], steps: int) -> None:
    import nibabel as nib
    import torch
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from totalsegmentator.resampling import change_spacing

    torch.set_num_threads(2)
    for did in ids:
        spec = DATASETS[did]
        t0 = time.time()
        folder = WEIGHTS / spec["folder"] / f"{spec['trainer']}__nnUNetPlans__3d_fullres"
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "fold_0").mkdir(parents=True)
        plans, dj = _plans(did, spec), _dataset_json(did, spec)
        (folder / "plans.json").write_text(json.dumps(plans, indent=4))
        (folder / "dataset.json").write_text(json.dumps(dj, indent=4))
        pm = PlansManager(str(folder / "plans.json"))
        cm = pm.get_configuration("3d_fullres")
        names = _class_names(spec)
        n_out = len(dj["labels"])
        samples = []
        with tempfile.TemporaryDirectory() as td:
            for p in _training_images(spec, pyrad, Path(td)):
                img = nib.as_closest_canonical(nib.load(p))
                if did != 8:  # TotalSegmentator resamples itself before nnU-Net (not task 8)
                    img = change_spacing(img, list(spec["spacing"]), order=1, dtype=np.int32)
                q = Path(td) / "case_0000.nii.gz"
                nib.save(img, q)
                data, _, _ = DefaultPreprocessor(verbose=False).run_case(
                    [str(q)], None, pm, cm, dj)
                x = data[0].astype(np.float32)
                if spec["modality"] == "CT":
                    values = x * CT_INTENSITY["std"] + CT_INTENSITY["mean"]
                else:
                    values = x
                samples.append((x, _label(values, spec["rule"], names)))
        rng = np.random.default_rng(SEED + did)
        patch = np.minimum(np.array(cm.patch_size), 24)  # training tiles: small, CPU-bound
        samples = [_sample(x, y, patch, rng) for x, y in samples]
        print(f"  {did}: {len(samples)} training images ready, {time.time() - t0:.0f} s",
              flush=True)
        net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                     cm.network_arch_init_kwargs_req_import, 1, n_out,
                                     allow_init=True, deep_supervision=False)
        counts = np.bincount(np.concatenate([s.ravel() for _, s, _ in samples]), minlength=n_out)
        weight = torch.tensor(np.where(counts > 0, 1.0 / np.sqrt(counts + 1.0), 0.0),
                              dtype=torch.float32)
        weight = weight / weight[counts > 0].mean()
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        net.train()
        for step in range(steps):
            xs, ys = zip(*[_patch(samples, patch, rng) for _ in range(2)], strict=False)
            xb = torch.from_numpy(np.stack(xs)[:, None])
            yb = torch.from_numpy(np.stack(ys))
            loss = torch.nn.functional.cross_entropy(net(xb), yb, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 20 == 0 or step == steps - 1:
                print(f"  {did} step {step} loss {loss.item():.3f}", flush=True)
        net.eval()
        with torch.no_grad():
            xs, ys = zip(*[_patch(samples, patch, rng) for _ in range(4)], strict=False)
            pred = net(torch.from_numpy(np.stack(xs)[:, None])).argmax(1).numpy()
        acc = float((pred == np.stack(ys)).mean())
        torch.save({
            "network_weights": net.state_dict(),
            "optimizer_state": None,
            "grad_scaler_state": None,
            "logging": {},
            "_best_ema": None,
            "current_epoch": 1,
            "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0,
                          "dataset_json": dj, "device": torch.device("cpu")},
            "trainer_name": spec["trainer"],
            "inference_allowed_mirroring_axes": None,
        }, folder / "fold_0" / "checkpoint_final.pth")
        print(f"  {spec['folder']}: {steps} steps, patch accuracy {acc:.3f}, "
              f"{(folder / 'fold_0' / 'checkpoint_final.pth').stat().st_size / 1e3:.0f} kB, "
              f"{time.time() - t0:.0f} s", flush=True)


def _patch(samples, patch, rng):
    x, y, where = samples[rng.integers(len(samples))]
    if rng.random() < 0.5 and where:
        zyx = where[list(where)[rng.integers(len(where))]]
        c = zyx[rng.integers(len(zyx))]
        lo = np.clip(c - patch // 2, 0, np.array(x.shape) - patch)
    else:
        lo = np.array([rng.integers(0, s - p + 1) for s, p in zip(x.shape, patch, strict=False)])
    sl = tuple(slice(int(a), int(a + p)) for a, p in zip(lo, patch, strict=False))
    return x[sl].copy(), y[sl].copy()


def _sample(x, y, patch, rng):
    """(image, labels, {class: up to 2000 voxel positions}), padded to at least the patch."""
    pad = [(0, max(0, int(p) - s)) for p, s in zip(patch, x.shape, strict=False)]
    if any(b for _, b in pad):
        x = np.pad(x, pad, constant_values=float(x.min()))
        y = np.pad(y, pad)
    where = {}
    for c in np.unique(y[y > 0]):
        zyx = np.argwhere(y == c)
        where[int(c)] = zyx[rng.choice(len(zyx), min(len(zyx), 2000), replace=False)]
    return x, y, where


# ---------------------------------------------------------------------------------------------
# run the real TotalSegmentator
# ---------------------------------------------------------------------------------------------
def _ts_env(home: Path) -> dict:
    """TotalSegmentator's environment: our weights, a home whose config turns statistics off."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "config.json"
    config = json.loads(cfg.read_text()) if cfg.exists() else {
        "totalseg_id": "totalseg_MEDSEGFX", "prediction_counter": 0}
    config.update({"send_usage_stats": False, "statistics_disclaimer_shown": True})
    cfg.write_text(json.dumps(config, indent=4))
    env = dict(os.environ)
    env.update({"TOTALSEG_HOME_DIR": str(home), "TOTALSEG_WEIGHTS_PATH": str(WEIGHTS),
                "OMP_NUM_THREADS": "2", "nnUNet_def_n_proc": "1",
                # nothing may leave the machine: any attempt fails at once
                "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    return env


def ts_command() -> list[str]:
    exe = Path(sys.executable).with_name("TotalSegmentator")
    return [str(exe)] if exe.exists() else [sys.executable, "-m",
                                             "totalsegmentator.bin.TotalSegmentator"]


def run_cases(names: list[str], home: Path) -> None:
    import nibabel as nib

    EXPECTED.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {
        "totalsegmentator_version": TS_VERSION, "cases": {}}
    env = _ts_env(home)
    for name in names:
        inp, task, flags = CASES[name]
        src = (INPUTS / inp).resolve()
        out = EXPECTED / f"{name}.nii.gz"
        cmd = [*ts_command(), "-i", str(src), "-o", str(out), "--ml", "-ta", task,
               "--device", "cpu", "-ns", "1", *flags]
        print("  $", " ".join(cmd[1:]), flush=True)
        t0 = time.time()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        took = time.time() - t0
        if proc.returncode != 0 or not out.exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit(f"TotalSegmentator failed on case {name}")
        seg = np.asanyarray(nib.load(out).dataobj)
        ids, counts = np.unique(seg, return_counts=True)
        classes = {int(i): int(c) for i, c in zip(ids, counts, strict=False) if i}
        print(f"  {name}: {took:.0f} s, classes {classes}", flush=True)
        manifest["cases"][name] = {
            "input": os.path.relpath(src, OUT),
            "task": task,
            "flags": flags,
            "expected": os.path.relpath(out, OUT),
            "voxels_per_class": {str(k): v for k, v in classes.items()},
            "totalsegmentator_seconds": round(took, 1),
        }
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pyradiomics-data", type=Path,
                    default=Path("/tmp/pyrad/pyradiomics-3.0.1/data"))
    ap.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "tsfx_home",
                    help="TOTALSEG_HOME_DIR for the runs (config.json with statistics off)")
    ap.add_argument("--steps", type=int, default=60, help="training steps per network")
    ap.add_argument("step", choices=["inputs", "weights", "run", "all"])
    ap.add_argument("which", nargs="*", help="dataset ids (weights) or case names (run)")
    args = ap.parse_args(argv)
    if args.step in ("inputs", "all"):
        make_inputs(args.pyradiomics_data)
    if args.step in ("weights", "all"):
        ids = [int(w) for w in args.which] if args.step == "weights" and args.which \
            else list(DATASETS)
        make_weights(args.pyradiomics_data, ids, args.steps)
    if args.step in ("run", "all"):
        names = args.which if args.step == "run" and args.which else list(CASES)
        run_cases(names, args.home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
