"""``medseg plugins new NAME``: write a ready-to-install plugin distribution.

The skeleton is a complete, working plugin: a ``pyproject.toml`` declaring the ``medseg``
entry point, one architecture (a small two-level U-Net in plain torch, 2D and 3D), one loss
(soft Dice + cross-entropy), one postprocessor (removes classes below a total volume) and a
test that trains the architecture for two iterations and segments a synthetic volume. It
installs with ``pip install -e DIR`` and its tests pass unmodified (``python -m pytest DIR``).

Component names are prefixed with the plugin's module name so they cannot clash with the
built-ins or with other plugins.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from medseg import __version__
from medseg.errors import MedsegError

#: lower case, digits and single hyphens (stays the same under PEP 503 normalisation)
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def module_name(name: str) -> str:
    """The importable package name of a plugin distribution: ``medseg-acme`` ->
    ``medseg_acme``."""
    return name.lower().replace("-", "_")


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise MedsegError(f"plugin name {name!r} must start with a lower-case letter and use "
                          "only lower-case letters, digits and single '-' (e.g. medseg-acme)")
    return name


def _short_name(module: str) -> str:
    """Prefix for component names: the module name without a leading ``medseg_``."""
    return module[len("medseg_"):] if module.startswith("medseg_") and module != "medseg_" \
        else module


PYPROJECT = """\
[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "A medseg plugin: $short architecture, loss and postprocessor."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["medseg>=$medseg_version", "torch", "numpy"]

[project.optional-dependencies]
test = ["pytest>=8"]

# medseg loads every module named in this entry-point group and calls its @hookimpl functions.
[project.entry-points.medseg]
$short = "$module.plugin"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = ["--strict-config", "--strict-markers"]
"""

README = """\
# $name

A medseg plugin created by `medseg plugins new $name`.

It registers, through the `medseg` entry-point group (`$short = "$module.plugin"`):

| kind | name | what |
| --- | --- | --- |
| architecture | `${short}_unet` | a two-level U-Net in plain torch, 2D and 3D |
| loss | `${short}_dice_ce` | soft Dice + cross-entropy |
| postprocessor | `${short}_min_volume` | drops classes below `min_volume_mm3` in total |

```bash
pip install -e .
python -m pytest                       # the plugin's own tests
medseg plugins                         # lists the three components
medseg train DATASET -o model --arch ${short}_unet --loss ${short}_dice_ce
medseg segment scan.nii.gz -o out -m model \\
    --postprocess '${short}_min_volume:{"min_volume_mm3": 100}'
```

Edit `$module/plugin.py`; see medseg's `docs/plugins.md` for every hook.
"""

INIT = '''\
"""$name: a medseg plugin (hooks in :mod:`$module.plugin`)."""

__version__ = "0.1.0"
'''

PLUGIN = '''\
"""medseg hooks of $name: one architecture, one loss, one postprocessor.

medseg finds this module through the entry point ``$short = "$module.plugin"`` in the
``medseg`` group (see pyproject.toml) and calls the functions marked ``@hookimpl``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from medseg.hookspecs import hookimpl
from medseg.specs import ArchitectureSpec, LossSpec, PostprocessorSpec
from torch import nn
from torch.nn import functional as F


# ---- architecture: logits B, C_out, *spatial from images B, C_in, *spatial -----------------
def _block(dims: int, cin: int, cout: int) -> nn.Module:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    norm = nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d
    return nn.Sequential(conv(cin, cout, 3, padding=1), norm(cout, affine=True),
                         nn.LeakyReLU(0.01, inplace=True),
                         conv(cout, cout, 3, padding=1), norm(cout, affine=True),
                         nn.LeakyReLU(0.01, inplace=True))


class TwoLevelUNet(nn.Module):
    """Encoder block, one 2x downsampling, bottleneck, upsampling, skip, decoder block."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 features: int = 16) -> None:
        super().__init__()
        dims = spatial_dims
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        up = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        self.enc = _block(dims, in_channels, features)
        self.down = conv(features, 2 * features, 2, stride=2)
        self.bottom = _block(dims, 2 * features, 2 * features)
        self.up = up(2 * features, features, 2, stride=2)
        self.dec = _block(dims, 2 * features, features)
        self.head = conv(features, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc(x)
        h = self.up(self.bottom(self.down(skip)))
        return self.head(self.dec(torch.cat([h, skip], dim=1)))


def two_level_unet(*, spatial_dims: int, in_channels: int, out_channels: int,
                   features: int = 16) -> nn.Module:
    return TwoLevelUNet(spatial_dims, in_channels, out_channels, features)


# ---- loss: logits B, C, *spatial and integer target B, 1, *spatial -> scalar ---------------
class DiceCE:
    """Soft Dice over the foreground classes plus cross-entropy (equal weights)."""

    def __init__(self, num_classes: int, smooth: float = 1e-5) -> None:
        self.num_classes = num_classes
        self.smooth = smooth

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels = target[:, 0].long()
        ce = F.cross_entropy(logits, labels)
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(labels, self.num_classes).movedim(-1, 1).to(probs.dtype)
        axes = [0, *range(2, logits.ndim)]
        inter = (probs * onehot).sum(axes)
        total = probs.sum(axes) + onehot.sum(axes)
        dice = (2 * inter + self.smooth) / (total + self.smooth)
        return ce + (1 - dice[1:].mean() if self.num_classes > 1 else 0.0)


def dice_ce(*, num_classes: int, smooth: float = 1e-5) -> DiceCE:
    return DiceCE(num_classes, smooth)


# ---- postprocessor: pure function on an integer label array X, Y[, Z] ----------------------
def min_volume(labels: np.ndarray, *, spacing: Sequence[float] | None = None,
               classes: Iterable[int] | None = None, min_volume_mm3: float = 0.0) -> np.ndarray:
    """Set a class to background where its total volume is below ``min_volume_mm3``."""
    voxel_mm3 = float(np.prod(spacing)) if spacing is not None else 1.0
    out = labels.copy()
    values = [int(v) for v in np.unique(labels) if v != 0]
    if classes is not None:
        values = [v for v in values if v in set(classes)]
    for value in values:
        mask = labels == value
        if mask.sum() * voxel_mm3 < min_volume_mm3:
            out[mask] = 0
    return out


# ---- hooks ---------------------------------------------------------------------------------
@hookimpl
def medseg_register_architectures() -> list[ArchitectureSpec]:
    return [ArchitectureSpec(name="${short}_unet", factory=two_level_unet,
                             description="two-level U-Net in plain torch ($name)",
                             defaults={"features": 16}, spatial_dims=(2, 3), size_divisor=2)]


@hookimpl
def medseg_register_losses() -> list[LossSpec]:
    return [LossSpec(name="${short}_dice_ce", factory=dice_ce,
                     description="soft Dice + cross-entropy ($name)")]


@hookimpl
def medseg_register_postprocessors() -> list[PostprocessorSpec]:
    return [PostprocessorSpec(name="${short}_min_volume", fn=min_volume,
                              description="remove classes below a total volume ($name)",
                              defaults={"min_volume_mm3": 0.0})]
'''

TEST = '''\
"""Tests of $name: registration, shapes, purity, and a two-iteration training run."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from medseg.engine.segmenter import Segmenter
from medseg.io import read_image
from medseg.models.base import InferenceSettings
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.plugins import get_plugin_manager
from medseg.registry import build_registry
from medseg.training.train import TrainConfig, train

from $module.plugin import dice_ce, min_volume, two_level_unet

PLUGIN = "$name:$short"


@pytest.fixture
def registry():
    return build_registry(get_plugin_manager())


def test_components_are_registered(registry):
    assert registry.architectures.providers["${short}_unet"] == PLUGIN
    assert registry.losses.providers["${short}_dice_ce"] == PLUGIN
    assert registry.postprocessors.providers["${short}_min_volume"] == PLUGIN


@pytest.mark.parametrize("shape", [(12, 16), (8, 12, 16)])
def test_architecture_keeps_spatial_size(shape):
    net = two_level_unet(spatial_dims=len(shape), in_channels=2, out_channels=3, features=4)
    assert net(torch.zeros(1, 2, *shape)).shape == (1, 3, *shape)


def test_loss_is_low_for_the_right_answer():
    target = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    target[..., :2] = 1
    right = torch.where(target.bool(), 1.0, -1.0).repeat(1, 2, 1, 1) * 10
    right[:, 0] *= -1
    loss = dice_ce(num_classes=2)
    assert float(loss(right, target)) < 0.01 < float(loss(-right, target))


def test_postprocessor_is_pure_and_uses_spacing():
    labels = np.zeros((6, 6, 6), dtype=np.uint8)
    labels[:2, :2, :2] = 1  # 8 voxels
    labels[3:, 3:, 3:] = 2  # 27 voxels
    out = min_volume(labels, spacing=(2.0, 1.0, 1.0), min_volume_mm3=20.0)
    assert out.dtype == labels.dtype and out.shape == labels.shape
    assert set(np.unique(out)) == {0, 2}
    assert set(np.unique(labels)) == {0, 1, 2}  # input untouched


def test_trains_and_segments(tmp_path, registry):
    root = tmp_path / "Dataset900_Balls"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    grid = np.indices((16, 16, 16))
    for i in range(2):
        ball = ((grid - rng.uniform(6, 10, 3)[:, None, None, None]) ** 2).sum(0) < 16
        image = ball * 10.0 + rng.normal(0, 1, ball.shape)
        nib.save(nib.Nifti1Image(image.astype(np.float32), np.eye(4)),
                 str(root / "imagesTr" / f"ball{i}_0000.nii.gz"))
        nib.save(nib.Nifti1Image(ball.astype(np.uint8), np.eye(4)),
                 str(root / "labelsTr" / f"ball{i}.nii.gz"))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MR"}, "labels": {"background": 0, "ball": 1},
        "numTraining": 2, "file_ending": ".nii.gz"}))
    bundle = train(root, tmp_path / "model", TrainConfig(
        architecture="${short}_unet", arch_params={"features": 4}, loss="${short}_dice_ce",
        iterations=2, val_every=2, patch_size=(16, 16, 16), batch_size=1,
        samples_per_volume=1, augment=False), registry=registry, progress=False)
    image = read_image(root / "imagesTr" / "ball0_0000.nii.gz")
    settings = InferenceSettings(postprocessors=[("${short}_min_volume", {"min_volume_mm3": 1})])
    result = Segmenter(MedsegBundleModel(bundle, registry), settings, registry)(image)
    assert result.labels.same_grid(image)
'''

GITIGNORE = """\
__pycache__/
*.egg-info/
build/
dist/
"""


def plugin_files(name: str) -> dict[str, str]:
    """Relative path -> text of every file of the skeleton for distribution ``name``."""
    validate_name(name)
    module = module_name(name)
    values = {"name": name, "module": module, "short": _short_name(module),
              "medseg_version": __version__}
    templates = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        ".gitignore": GITIGNORE,
        f"{module}/__init__.py": INIT,
        f"{module}/plugin.py": PLUGIN,
        "tests/test_plugin.py": TEST,
    }
    return {path: Template(text).substitute(values) for path, text in templates.items()}


def create_plugin(name: str, output: str | Path = ".", *, force: bool = False) -> Path:
    """Write the skeleton of plugin ``name`` into ``output/name`` and return that folder.

    Refuses to write into an existing non-empty folder unless ``force``.
    """
    files = plugin_files(name)
    target = Path(output) / name
    if target.exists() and any(target.iterdir()) and not force:
        raise MedsegError(f"{target}: folder exists and is not empty (use --force)")
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target
