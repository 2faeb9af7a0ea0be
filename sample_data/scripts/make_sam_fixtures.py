"""Make the MedSAM equivalence fixtures in ``sample_data/sam/`` with the authors' own code.

Run in a throwaway venv that has Meta's ``segment-anything`` (1.0), torch + torchvision,
scikit-image and SimpleITK (not medseg's environment)::

    pip install --no-deps segment-anything==1.0
    python sample_data/scripts/make_sam_fixtures.py

1. Builds a small random-initialised SAM with ``segment_anything.modeling`` (ImageEncoderViT
   with windowed and global attention and relative positions, PromptEncoder, MaskDecoder with
   its TwoWayTransformer) at SAM's 1024 x 1024 input and 16-pixel patches, every parameter
   and buffer drawn at random (relative positions included), and saves its state dict
   (``tiny_medsam/tiny_medsam.pth``) with a ``sam.json``.
2. Runs MedSAM's inference on real slices of ``sample_data/real_ct`` and ``real_mri`` exactly
   as the authors' scripts do: the volume read by SimpleITK, prepared by ``pre_CT_MR.py``'s
   rules (CT: window level 40 / width 400, min-max to 0-255, uint8; MR: 0.5-99.5th percentiles
   of the non-zero voxels, min-max, zeros kept, uint8), then per slice
   ``MedSAM_Inference.py``: 3 channels, ``skimage.transform.resize(..., (1024, 1024),
   order=3, preserve_range=True, anti_aliasing=True).astype(uint8)``, min-max to [0, 1],
   ``image_encoder``, the box scaled to 1024, ``prompt_encoder(points=None, boxes=...)``,
   ``mask_decoder(multimask_output=False)``, sigmoid, bilinear to the slice, ``> 0.5``.
   Point prompts go through the same ``prompt_encoder`` (``points=(coords, labels)``), scaled
   like the box.
3. Propagates one 2-D box through slices 8-15 of the CT as ``medsam_infer_3Dbox_adrenal.py`` does
   (next box = bounding box of the previous mask resized to 1024 by nearest neighbour, widened
   by 5 pixels), stopping where the mask vanishes (medseg's rule).
4. Checks that resizing one channel gives skimage's three-channel result pixel for pixel.
5. For every case, the same decoder call with ``multimask_output=True``: SAM's three masks for
   an ambiguous prompt, which medseg offers as answers 2-4 (``<name>_multimask_logits``).

Writes ``fixtures.npz`` (low-resolution logits and masks per case) and ``fixtures.json``
(the cases: file, slice axis and index in SimpleITK's array, prompts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam
from segment_anything.modeling import TwoWayTransformer
from skimage import transform
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "sample_data" / "sam"
SIZE = 1024
PROMPT_DIM = 32
DECODER_HEADS = 4


def build_tiny_sam(seed: int = 7) -> Sam:
    torch.manual_seed(seed)
    from functools import partial
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=SIZE, patch_size=16, in_chans=3, embed_dim=32, depth=3, num_heads=2,
            mlp_ratio=4.0, out_chans=PROMPT_DIM, qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_abs_pos=True,
            use_rel_pos=True, rel_pos_zero_init=True, window_size=14, global_attn_indexes=(1,)),
        prompt_encoder=PromptEncoder(embed_dim=PROMPT_DIM, image_embedding_size=(64, 64),
                                     input_image_size=(SIZE, SIZE), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_DIM, mlp_dim=64,
                                          num_heads=DECODER_HEADS),
            transformer_dim=PROMPT_DIM, iou_head_depth=3, iou_head_hidden_dim=32),
    )
    with torch.no_grad():  # everything random, so that every tensor matters
        for name, p in sam.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif p.ndim == 1:  # norm weights
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                fan_in = max(1, p[0].numel()) if p.ndim > 1 else 1
                p.copy_(torch.randn_like(p) / np.sqrt(fan_in))
        for name, p in sam.named_parameters():
            if "rel_pos" in name or "pos_embed" in name or "embeddings" in name \
                    or name.endswith(("iou_token.weight", "mask_tokens.weight",
                                      "not_a_point_embed.weight", "no_mask_embed.weight")):
                p.copy_(0.5 * torch.randn_like(p))
    return sam.eval()


def ct_uint8(image: np.ndarray) -> np.ndarray:
    lo, hi = 40 - 400 / 2, 40 + 400 / 2
    pre = np.clip(image, lo, hi)
    pre = (pre - np.min(pre)) / (np.max(pre) - np.min(pre)) * 255.0
    return np.uint8(pre)


def mr_uint8(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image[image > 0], 0.5), np.percentile(image[image > 0], 99.5)
    pre = np.clip(image, lo, hi)
    pre = (pre - np.min(pre)) / (np.max(pre) - np.min(pre)) * 255.0
    pre[image == 0] = 0
    return np.uint8(pre)


def model_input(img_2d: np.ndarray) -> torch.Tensor:
    img_3c = np.repeat(img_2d[:, :, None], 3, axis=-1)
    img = transform.resize(img_3c, (SIZE, SIZE), order=3, preserve_range=True,
                           anti_aliasing=True).astype(np.uint8)
    one = transform.resize(img_2d, (SIZE, SIZE), order=3, preserve_range=True,
                           anti_aliasing=True).astype(np.uint8)
    if not all(np.array_equal(one, img[..., c]) for c in range(3)):
        sys.exit("one-channel resize differs from skimage's three-channel resize")
    img = (img - img.min()) / np.clip(img.max() - img.min(), a_min=1e-8, a_max=None)
    return torch.tensor(img).float().permute(2, 0, 1).unsqueeze(0)


@torch.no_grad()
def infer(sam: Sam, img_2d: np.ndarray, box=None, points=None, box_is_1024=False,
          multimask: bool = False):
    """MedSAM_Inference.py's steps; returns low-res logits (B, 1, 256, 256; B, 3, ... with
    ``multimask``) and the mask (of the first logits)."""
    H, W = img_2d.shape
    emb = sam.image_encoder(model_input(img_2d))
    boxes = pts = None
    if box is not None:
        box_np = np.array(box, dtype=float).reshape(-1, 4)
        box_1024 = box_np if box_is_1024 else box_np / np.array([W, H, W, H]) * SIZE
        boxes = torch.as_tensor(box_1024, dtype=torch.float)[:, None, :]
    if points is not None:
        p = np.array(points, dtype=float).reshape(-1, 3)
        xy = p[:, :2] / np.array([W, H]) * SIZE
        n = 1 if boxes is None else boxes.shape[0]
        pts = (torch.as_tensor(xy, dtype=torch.float)[None].expand(n, -1, -1),
               torch.as_tensor(p[:, 2], dtype=torch.float)[None].expand(n, -1))
    sparse, dense = sam.prompt_encoder(points=pts, boxes=boxes, masks=None)
    logits, _ = sam.mask_decoder(image_embeddings=emb,
                                 image_pe=sam.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse,
                                 dense_prompt_embeddings=dense, multimask_output=multimask)
    prob = F.interpolate(torch.sigmoid(logits), size=(H, W), mode="bilinear",
                         align_corners=False)
    mask = (prob.amax(dim=(0, 1)).numpy() > 0.5).astype(np.uint8)
    return logits.numpy(), mask


def get_bbox_1024(mask: np.ndarray, shift: int = 5) -> np.ndarray:
    """medsam_infer_3Dbox_adrenal.py: the previous mask to 1024 by nearest neighbour (an exact
    8x here), then its bounding box widened by ``shift``."""
    h, w = mask.shape
    big = mask[np.floor(np.arange(SIZE) * h / SIZE).astype(int)][
        :, np.floor(np.arange(SIZE) * w / SIZE).astype(int)]
    ys, xs = np.where(big > 0)
    return np.array([max(0, xs.min() - shift), max(0, ys.min() - shift),
                     min(SIZE, xs.max() + shift), min(SIZE, ys.max() + shift)])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model_dir = OUT / "tiny_medsam"
    model_dir.mkdir(exist_ok=True)
    sam = build_tiny_sam()
    torch.save(sam.state_dict(), model_dir / "tiny_medsam.pth")
    (model_dir / "sam.json").write_text(json.dumps({
        "format": "sam", "variant": "medsam_tiny_random", "checkpoint": "tiny_medsam.pth",
        "name": "tiny_medsam", "licence": "Apache-2.0",
        "source": "random weights, made by sample_data/scripts/make_sam_fixtures.py",
        "architecture": {"decoder_heads": DECODER_HEADS},
        "pipeline": {"intensity": "auto", "slice_axis": "axial", "propagate": True}},
        indent=2) + "\n")
    ct_path = "sample_data/real_ct/lung2_upper_abdomen.nii.gz"
    mr_path = "sample_data/real_mri/itk_t1_head.nii.gz"
    ct = ct_uint8(sitk.GetArrayFromImage(sitk.ReadImage(str(ROOT / ct_path))))  # Z, Y, X
    mr = mr_uint8(sitk.GetArrayFromImage(sitk.ReadImage(str(ROOT / mr_path))))
    # (name, file, sitk array, sitk axis (0 = z, 1 = y), index, box x0 y0 x1 y1, points)
    cases = [
        ("ct_box", ct_path, ct, 0, 12, [30, 40, 95, 100], None),
        ("ct_box_points", ct_path, ct, 0, 8, [20, 30, 70, 90], [[45, 60, 1], [30, 40, 0]]),
        ("mr_coronal_box", mr_path, mr, 0, 31, [30, 20, 100, 110], None),
        ("mr_axial_points", mr_path, mr, 1, 70, None, [[64, 30, 1], [64, 50, 1], [10, 10, 0]]),
    ]
    arrays, manifest = {}, {"cases": [], "propagation": None}
    for name, path, vol, axis, index, box, points in cases:
        img = vol[index] if axis == 0 else vol[:, index, :]
        logits, mask = infer(sam, img, box, points)
        arrays[f"{name}_logits"] = logits.astype(np.float32)
        several, _ = infer(sam, img, box, points, multimask=True)
        arrays[f"{name}_multimask_logits"] = several.astype(np.float32)
        arrays[f"{name}_mask"] = np.packbits(mask.astype(bool))
        manifest["cases"].append({"name": name, "file": path, "sitk_axis": axis,
                                  "index": index, "box": box, "points": points,
                                  "shape": list(img.shape),
                                  "foreground": float(mask.mean())})
        print(name, "foreground", round(float(mask.mean()), 3), "logits",
              float(logits.min()), float(logits.max()))
    # propagation through slices 8-15 of the CT (prepared as a whole) from a 2-D box on 12
    first, last, seed, box = 8, 15, 12, [30, 40, 95, 100]
    part = ct[first:last + 1]
    seg = np.zeros(part.shape, dtype=np.uint8)
    _, seg[seed - first] = infer(sam, part[seed - first], box)
    done = [seed]
    for step in (1, -1):
        z = seed - first
        while 0 <= z + step < part.shape[0] and seg[z].any():
            b = get_bbox_1024(seg[z])
            z += step
            _, seg[z] = infer(sam, part[z], b, box_is_1024=True)
            done.append(z + first)
    arrays["propagation_mask"] = np.packbits(seg.astype(bool))
    manifest["propagation"] = {"file": ct_path, "sitk_axis": 0, "slab": [first, last],
                               "index": seed, "box": box, "shape": list(seg.shape),
                               "slices": sorted(done), "foreground": float(seg.mean())}
    print("propagation slices", sorted(done), "foreground", round(float(seg.mean()), 3))
    np.savez_compressed(OUT / "fixtures.npz", **arrays)
    (OUT / "fixtures.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
