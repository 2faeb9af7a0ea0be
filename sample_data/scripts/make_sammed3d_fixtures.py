"""Make the SAM-Med3D equivalence fixtures (``sample_data/sammed3d/``) with the authors' code.

Runs in a throwaway environment, never in medseg's: it needs the authors' repository
(``uni-medical/SAM-Med3D``, commit f3de1fa, for ``utils/infer_utils.py``), their model package
``medim`` 0.1.2 (the network their inference builds with ``medim.create_model("SAM-Med3D")``),
torchio 0.20.8 (the release of May 2025, which their ``infer_utils`` calls; later releases
changed ``Resample``'s grid and ``CropOrPad``'s private API), SimpleITK and ``edt``::

    python sample_data/scripts/make_sammed3d_fixtures.py --authors-repo /path/to/SAM-Med3D

It writes

* ``tiny_random/``: a small random-initialised network of the published architecture
  (encoder width 24, 2 blocks, 2 heads, block 1 global, window 14; prompt width 48; the
  decoder as published), saved as the authors' training checkpoints wrap it
  (``{"model_state_dict": ...}``), with its ``sammed3d.json``;
* ``expected_<case>.npz``: for each case, what the authors' pipeline gave on a real scan for
  the listed points: the normalised 128^3 crop (every 4th voxel) and its affine, the points
  in the crop, the decoder's low-resolution logits after the last click, the 128^3 mask and
  the mask on the input's grid.

The authors' validation (``validate_paired_img_gt``) centres the crop on a ground-truth label
and samples clicks from it. Here the label is replaced, after their resampling and
reorientation, by the voxels of the positive points (so the crop is centred on them, as medseg
centres it), and their ``sam_model_infer`` is given the points in order through its
``prompt_generator`` argument; every other step is theirs: ``tio.Resample(1.5 mm)``,
``tio.ToCanonical``, their ``get_roi_from_subject`` (``CropOrPad`` around the label, z-score of
the crop over voxels > 0), ``sam_model_infer`` (clicks fed one at a time with the previous
low-resolution logits) and ``data_postprocess`` (nearest-neighbour back onto the input grid).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1]
OUT = HERE / "sammed3d"
SPACING = (1.5, 1.5, 1.5)
CROP = 128
TINY = dict(encoder_embed_dim=24, encoder_depth=2, encoder_num_heads=2,
            encoder_global_attn_indexes=[1], prompt_embed_dim=48)
#: name -> (image, [(i, j, k, positive), ...] in voxel indices of the input file)
CASES = {
    "t1_head": ("real_mri/itk_t1_head.nii.gz", [(64, 40, 30, True)]),
    "ct_abdomen": ("real_ct/lung2_upper_abdomen.nii.gz",
                   [(70, 62, 12, True), (78, 70, 13, True), (60, 50, 11, False)]),
}


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter drawn at random (zeros and ones of the default init would hide
    mistakes: rel-pos tables, position embeddings and norms all start non-trivial)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim >= 2 and "rel_pos" not in name and "pos_embed" not in name:
                fan_in = int(np.prod(p.shape[1:])) if p.ndim > 2 else p.shape[-1]
                p.copy_(noise / np.sqrt(max(fan_in, 1)))
            elif name.endswith("weight") and p.ndim == 1:
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.2 * noise)


def point_voxels(points, affine_in: np.ndarray, affine_grid: np.ndarray) -> np.ndarray:
    ijk = np.array([[p[0], p[1], p[2], 1.0] for p in points]).T
    grid = np.linalg.inv(affine_grid) @ affine_in @ ijk
    return np.floor(grid[:3].T + 0.5).astype(int)


def run_case(model, name: str, image: Path, points, infer) -> dict:
    import torchio as tio

    _, meta_info = infer.read_arr_from_nifti(str(image), get_meta_info=True)
    img = tio.ScalarImage(image)
    subject = tio.Subject(image=img, label=tio.LabelMap(
        tensor=torch.zeros((1, *img.spatial_shape), dtype=torch.uint8), affine=img.affine))
    meta_info["original_subject_affine"] = subject.image.affine.copy()
    meta_info["original_subject_spatial_shape"] = subject.image.spatial_shape
    resampled = tio.Resample(target=SPACING)(subject)
    canonical = tio.ToCanonical()(resampled)
    # the label's only part in their pipeline is the crop centre: the positive points' voxels
    positive = [p for p in points if p[3]]
    vox = point_voxels(positive, subject.image.affine, canonical.image.affine)
    label = torch.zeros_like(canonical.label.data)
    for i, j, k in vox:
        label[0, i, j, k] = 1
    canonical.label.set_data(label)
    crop = tio.CropOrPad(mask_name="label", target_shape=(CROP,) * 3)
    norm = tio.ZNormalization(masking_method=lambda x: x > 0)
    roi_image, roi_label, meta_info = infer.get_roi_from_subject(canonical, meta_info, crop,
                                                                 norm)
    roi_affine = meta_info["roi_subject_affine"]
    # the points' voxels of the reoriented grid, shifted by the crop's start (so a point's
    # voxel is the one its label marked, whatever the rounding of a tie)
    start = np.rint(np.linalg.inv(canonical.image.affine) @ roi_affine[:, 3])[:3].astype(int)
    roi_points = point_voxels(points, subject.image.affine, canonical.image.affine) - start
    queue = [(torch.tensor(p, dtype=torch.long).reshape(1, 1, 3),
              torch.tensor([[int(pt[3])]], dtype=torch.long))
             for p, pt in zip(roi_points, points, strict=True)]

    def given_points(_prev_mask, _gt):  # their prompt_generator hook: our points, in order
        return queue.pop(0)

    roi_mask, low_res = infer.sam_model_infer(model, roi_image, roi_gt=roi_label,
                                              prompt_generator=given_points,
                                              num_clicks=len(points))
    final_zyx = infer.data_postprocess(roi_mask, meta_info)
    final = final_zyx.transpose(2, 1, 0)  # back to the file's i, j, k order
    logits = low_res.detach().cpu().float().numpy()[0, 0]
    roi = roi_image.numpy()[0, 0]
    print(f"{name}: crop mean {roi.mean():.4f} std {roi.std():.4f}; logits "
          f"{logits.min():.3f}..{logits.max():.3f}, {100 * (logits > 0).mean():.1f} % > 0; "
          f"mask {int(roi_mask.sum())} crop voxels, {int(final.sum())} input voxels")
    return dict(
        image=str(image.relative_to(HERE)), points=np.array([p[:3] for p in points], float),
        positive=np.array([p[3] for p in points], bool), roi_points=roi_points,
        roi_affine=roi_affine, roi_image_every4=roi[::4, ::4, ::4].astype(np.float32),
        roi_image_mean=np.float64(roi.astype(np.float64).mean()),
        roi_image_std=np.float64(roi.astype(np.float64).std()),
        low_res_logits=logits.astype(np.float32),
        roi_mask=np.packbits(roi_mask.astype(bool).ravel()), roi_shape=np.array(roi_mask.shape),
        input_mask=np.packbits(final.astype(bool).ravel()), input_shape=np.array(final.shape),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-repo", required=True, type=Path,
                        help="a checkout of uni-medical/SAM-Med3D (for utils/infer_utils.py)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.authors_repo))
    import medim
    import torchio
    from utils import infer_utils as infer

    torch.manual_seed(0)
    model = medim.create_model("SAM-Med3D", pretrained=False, **TINY)
    randomise(model)
    model.eval()
    folder = OUT / "tiny_random"
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"model_state_dict": state}, folder / "sam_med3d_tiny.pth")
    (folder / "sammed3d.json").write_text(json.dumps({
        "format": "sammed3d", "checkpoint": "sam_med3d_tiny.pth",
        "name": "SAM-Med3D tiny random (test fixture)",
        "licence": "Apache-2.0", "source": "https://github.com/uni-medical/SAM-Med3D",
        "description": "random-initialised network of the SAM-Med3D architecture, made by "
                       "sample_data/scripts/make_sammed3d_fixtures.py; it segments nothing "
                       "meaningful",
    }, indent=2) + "\n")
    versions = {"torch": torch.__version__, "torchio": torchio.__version__,
                "medim": getattr(medim, "__version__", "0.1.2"), "numpy": np.__version__}
    for name, (image, points) in CASES.items():
        torch.manual_seed(233)
        np.random.seed(233)
        result = run_case(model, name, HERE / image, points, infer)
        np.savez_compressed(OUT / f"expected_{name}.npz", **result,
                            versions=json.dumps(versions))
    print("wrote", OUT, versions)


if __name__ == "__main__":
    main()
