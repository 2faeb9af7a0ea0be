"""The shape of a SAM network, read from its state dict (and ``sam.json`` where the weights do
not say).

Everything but the numbers of attention heads is in the tensor shapes of a SAM/MedSAM state
dict: the ViT's width, depth, patch size and input size (``pos_embed``), its window size and
which blocks attend globally (a block's relative-position table has ``2 * size - 1`` rows: the
window's, or the whole token grid's), the head width (the relative-position tables' columns),
the prompt width, the decoder's depth, MLP width and attention downsampling. The decoder's head
count is not in the weights: it comes from ``sam.json`` (``architecture.decoder_heads``),
default 8 as in every published SAM; so does the encoder's when the weights carry no
relative-position tables (default 12, ViT-B).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medseg.errors import InputError

ENC = "image_encoder."
PROMPT = "prompt_encoder."
DEC = "mask_decoder."
#: ViT-B's encoder heads and SAM's decoder heads (not recorded in the weights)
DEFAULT_ENCODER_HEADS = 12
DEFAULT_DECODER_HEADS = 8
#: ``sam.json`` ``architecture`` keys that may supply what the weights do not
ARCHITECTURE_KEYS = ("encoder_heads", "decoder_heads")


@dataclass(frozen=True)
class SamConfig:
    """Hyper-parameters of one SAM network (ViT image encoder, prompt encoder, mask decoder)."""

    image_size: int = 1024
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    encoder_heads: int = 12
    mlp_dim: int = 3072
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    use_rel_pos: bool = True
    use_abs_pos: bool = True
    qkv_bias: bool = True
    prompt_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    attention_downsample: int = 2
    num_mask_tokens: int = 4
    iou_head_depth: int = 3
    iou_head_hidden: int = 256

    @property
    def grid(self) -> int:
        """Tokens per side of the image embedding (64 for 1024 / 16)."""
        return self.image_size // self.patch_size

    @property
    def low_res(self) -> int:
        """Side of the decoder's mask logits (4 x the token grid: 256)."""
        return 4 * self.grid

    def summary(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "patch_size": self.patch_size,
                "embed_dim": self.embed_dim, "depth": self.depth,
                "encoder_heads": self.encoder_heads, "window_size": self.window_size,
                "global_attn_indexes": list(self.global_attn_indexes),
                "prompt_dim": self.prompt_dim, "decoder_heads": self.decoder_heads}


def _shape(sd: Mapping[str, torch.Tensor], key: str, path: Path) -> tuple[int, ...]:
    value = sd.get(key)
    if not isinstance(value, torch.Tensor):
        raise InputError(path, f"is not a SAM state dict: it has no tensor {key!r}")
    return tuple(value.shape)


def _count(sd: Mapping[str, Any], prefix: str) -> int:
    """How many numbered children ``prefix<N>.`` the state dict has (0..N-1 all present)."""
    found = {int(k[len(prefix):].split(".", 1)[0]) for k in sd
             if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0].isdigit()}
    return len(found) if found == set(range(len(found))) else -1


def _positive_int(value: Any, name: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(path, f"architecture.{name} must be a positive integer, got {value!r}")
    return value


def config_from_state_dict(sd: Mapping[str, torch.Tensor], path: Path,
                           architecture: Mapping[str, Any] | None = None) -> SamConfig:
    """The :class:`SamConfig` the tensors of ``sd`` fit (``path`` names the checkpoint in
    errors; ``architecture`` holds ``sam.json``'s head counts)."""
    arch = dict(architecture or {})
    patch_shape = _shape(sd, ENC + "patch_embed.proj.weight", path)
    if len(patch_shape) != 4:
        raise InputError(path, f"has a {len(patch_shape) - 2}-D patch embedding "
                               f"{patch_shape}: not a 2-D SAM (SAM-Med3D is its own format)")
    embed, in_chans, patch, patch_w = patch_shape
    if patch != patch_w:
        raise InputError(path, f"has a non-square patch embedding ({patch}x{patch_w})")
    depth = _count(sd, ENC + "blocks.")
    if depth < 1:
        raise InputError(path, "is not a SAM state dict: its image encoder has no complete "
                               "run of blocks.0, blocks.1, ...")
    use_abs = ENC + "pos_embed" in sd
    if use_abs:
        pos = _shape(sd, ENC + "pos_embed", path)
        if len(pos) != 4 or pos[1] != pos[2] or pos[3] != embed:
            raise InputError(path, f"image_encoder.pos_embed has shape {pos}, expected "
                                   f"(1, n, n, {embed})")
        image_size = pos[1] * patch
    else:
        image_size = _positive_int(arch.get("image_size", 1024), "image_size", path)
    grid = image_size // patch
    use_rel = ENC + "blocks.0.attn.rel_pos_h" in sd
    windows: list[int] = []
    head_dim = None
    for i in range(depth):
        if not use_rel:
            break
        rows, head_dim = _shape(sd, f"{ENC}blocks.{i}.attn.rel_pos_h", path)
        windows.append((rows + 1) // 2)
    global_idx = tuple(i for i, w in enumerate(windows) if w == grid)
    local = sorted({w for w in windows if w != grid})
    if len(local) > 1:
        raise InputError(path, f"its encoder blocks use several window sizes {local}")
    window = local[0] if local else 0
    if head_dim:
        heads = embed // head_dim
        if heads * head_dim != embed:
            raise InputError(path, f"relative-position tables of width {head_dim} do not divide"
                                   f" the embedding width {embed}")
    else:
        heads = _positive_int(arch.get("encoder_heads", DEFAULT_ENCODER_HEADS),
                              "encoder_heads", path)
        if not use_rel:
            window = _positive_int(arch.get("window_size", 14), "window_size", path)
            global_idx = tuple(int(i) for i in arch.get("global_attn_indexes", ()))
    mlp_dim = _shape(sd, f"{ENC}blocks.0.mlp.lin1.weight", path)[0]
    prompt_dim = _shape(sd, ENC + "neck.0.weight", path)[0]
    gauss = _shape(sd, PROMPT + "pe_layer.positional_encoding_gaussian_matrix", path)
    if gauss != (2, prompt_dim // 2):
        raise InputError(path, f"prompt_encoder positional matrix has shape {gauss}, expected "
                               f"(2, {prompt_dim // 2})")
    mask_in = _shape(sd, PROMPT + "mask_downscaling.3.weight", path)[0]
    dec_depth = _count(sd, DEC + "transformer.layers.")
    if dec_depth < 1:
        raise InputError(path, "is not a SAM state dict: its mask decoder has no transformer "
                               "layers")
    internal = _shape(sd, DEC + "transformer.final_attn_token_to_image.q_proj.weight", path)[0]
    dec_heads = _positive_int(arch.get("decoder_heads", DEFAULT_DECODER_HEADS),
                              "decoder_heads", path)
    if internal % dec_heads:
        raise InputError(path, f"decoder attention width {internal} is not a multiple of "
                               f"decoder_heads {dec_heads} (set architecture.decoder_heads in "
                               "sam.json)")
    iou_depth = _count(sd, DEC + "iou_prediction_head.layers.")
    return SamConfig(
        image_size=image_size, patch_size=patch, in_chans=in_chans, embed_dim=embed,
        depth=depth, encoder_heads=heads, mlp_dim=mlp_dim, window_size=window,
        global_attn_indexes=global_idx, use_rel_pos=use_rel, use_abs_pos=use_abs,
        qkv_bias=ENC + "blocks.0.attn.qkv.bias" in sd, prompt_dim=prompt_dim,
        mask_in_chans=mask_in, decoder_depth=dec_depth, decoder_heads=dec_heads,
        decoder_mlp_dim=_shape(sd, DEC + "transformer.layers.0.mlp.lin1.weight", path)[0],
        attention_downsample=max(1, prompt_dim // internal),
        num_mask_tokens=_shape(sd, DEC + "mask_tokens.weight", path)[0],
        iou_head_depth=max(iou_depth, 1),
        iou_head_hidden=_shape(sd, DEC + "iou_prediction_head.layers.0.weight", path)[0],
    )
