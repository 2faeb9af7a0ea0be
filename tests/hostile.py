"""Hostile names for the hardening tests (issue 16) and a tiny bundle whose classes carry them.

The names are those of the attack: markdown that loads a remote image or turns a message into
a link, HTML, emphasis, and spreadsheet formulas (OWASP CSV injection)."""

from __future__ import annotations

from pathlib import Path

#: markdown and HTML that must render as text in the UI
MARKDOWN_NAMES = ("![x](https://host/)", "[re-authenticate](https://host/)", "<img src=x>",
                  "*bold*")
#: cells a spreadsheet would run as formulas
FORMULA_NAMES = ('=HYPERLINK("https://host/","x")', "+1+cmd", "-2+3", "@SUM(A1)")


def write_named_bundle(path: Path, names: tuple[str, ...]) -> Path:
    """A 3D U-Net bundle (seeded, untrained, about 10 kB) whose classes 1..n are ``names``."""
    import torch

    from medseg.models.medseg_bundle.bundle import save_bundle
    from medseg.registry import load_registry

    params = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    torch.manual_seed(0)
    net = load_registry().architectures.get("unet").factory(
        spatial_dims=3, in_channels=1, out_channels=len(names) + 1, **params)
    labels = {"background": 0, **{name: i + 1 for i, name in enumerate(names)}}
    save_bundle(path, {
        "name": "Hostile", "architecture": {"name": "unet", "params": params},
        "spatial_dims": 3, "in_channels": 1, "labels": labels, "patch_size": [16, 16, 16],
        "preprocessing": {"target_spacing": [2.0, 2.0, 2.0], "intensity": {"scheme": "zscore"},
                          "orientation": "RAS"},
        "inference": {"overlap": 0.0, "postprocessors": []},
    }, net.state_dict())
    return path
