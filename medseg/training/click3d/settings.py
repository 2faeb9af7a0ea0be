"""The settings of a click3d training run (:func:`.loop.train`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from medseg.models.click3d.config import CropPolicy


@dataclass(frozen=True)
class TrainSettings:
    seconds: float = 2400.0
    max_iterations: int = 100_000
    batch: int = 4
    lr: float = 2e-3
    p_synthetic: float = 0.5
    #: probability that a synthetic target is drawn large (see :func:`.shapes.synthetic_crop`)
    p_large: float = 0.0
    #: probability that a crop comes from a synthetic head with skull (:mod:`.heads`)
    p_head: float = 0.0
    #: a new synthetic head replaces the oldest in the pool every this many iterations
    head_refresh_every: int = 6
    #: probabilities of 0, 1, 2, 3 correcting rounds before the training step
    rounds: tuple[float, ...] = (0.4, 0.25, 0.2, 0.15)
    margin_range: tuple[float, float] = (1.1, 2.2)
    channels: tuple[int, ...] = (16, 32, 64, 128, 128)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 1
    sigma_voxels: float = 2.0
    crop: CropPolicy = field(default_factory=lambda: CropPolicy(
        size=48, coarse_spacing_mm=4.0, min_spacing_mm=0.7, max_spacing_mm=5.0, margin=1.4))
    validate_every: int = 100
    checkpoint_every: int = 200
    seed: int = 0
    threads: int = 1
    #: where the network runs: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``
    device: str = "auto"
    #: processes drawing crops (:mod:`.feed`); 0: drawn in the training process
    workers: int = 0
