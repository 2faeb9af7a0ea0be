"""Training a segmentation network on an MSD / nnU-Net-style dataset into a model bundle.

Patch-based training on preprocessed volumes kept in memory: foreground and rare classes are
oversampled with MONAI ``RandCropByLabelClassesd`` (per-class ratios), augmentation is applied
identically to image and mask, validation computes per-class Dice with sliding-window
inference, the best weights are kept, training stops early when validation stalls, and it
resumes from ``checkpoint.pt``. That training state lives beside the bundle, in
``<parent>/.<bundle name>.resume/`` (:func:`resume_dir`), never in the shipped bundle; it is
removed when training finishes, unless ``keep_resume`` (so a finished run can be extended).
Under ``torchrun`` it runs DistributedDataParallel (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg import __version__
from medseg.engine.segmenter import Segmenter
from medseg.errors import MedsegError, first_line
from medseg.evaluation.metrics import dice
from medseg.io import read_label_map
from medseg.io.atomic import atomic_path, write_text_atomic
from medseg.io.debughooks import pause_point
from medseg.models.base import InferenceSettings
from medseg.models.medseg_bundle.bundle import Bundle, load_bundle, save_bundle
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.models.medseg_bundle.predict import predict_probabilities
from medseg.ops.device import autocast, resolve_device
from medseg.ops.plugin_calls import (
    architecture_label,
    build_architecture,
    checked_forward,
    plugin_call,
)
from medseg.ops.preprocess import (
    Preprocessing,
    canonical_affine,
    canonical_transform,
    ct_statistics,
    percentile_scheme,
    prepare,
    prepare_labels,
)
from medseg.qc.record import training_record
from medseg.registry import Registry, load_registry
from medseg.synth import SynthPatches, SynthSettings, SynthSource
from medseg.training.dataset import Dataset, load_dataset, read_case_image, validate_dataset
from medseg.volume import Volume

CHECKPOINT_NAME = "checkpoint.pt"


def resume_dir(output: str | Path) -> Path:
    """The folder of a run's training state: ``<parent>/.<bundle name>.resume``, beside the
    bundle so that the bundle folder holds only what ships (config and weights)."""
    output = Path(output).absolute()
    return output.parent / f".{output.name}.resume"


def checkpoint_path(output: str | Path) -> Path:
    """Where ``--resume`` finds the training state of the bundle at ``output``."""
    return resume_dir(output) / CHECKPOINT_NAME


@dataclass
class TrainConfig:
    architecture: str = "unet"
    arch_params: dict[str, Any] = field(default_factory=dict)
    loss: str = "dice_focal"
    loss_params: dict[str, Any] = field(default_factory=dict)
    patch_size: tuple[int, ...] | None = None
    target_spacing: tuple[float, ...] | None = None
    iterations: int = 1000
    batch_size: int = 2
    samples_per_volume: int = 2
    lr: float = 2e-3
    weight_decay: float = 1e-5
    val_every: int = 50
    val_fraction: float = 0.2
    patience: int = 8
    seed: int = 0
    device: str | None = None
    #: per-class sampling ratios for RandCropByLabelClassesd (None: equal for all classes)
    class_ratios: list[float] | None = None
    overlap: float = 0.25
    augment: bool = True
    #: voxel axes (of the RAS-canonical grid) to mirror during augmentation. None by default:
    #: a left-right flip makes lateral labels (left/right kidney) unlearnable, as
    #: TotalSegmentator found; pass (0, 1, 2) for nnU-Net-style mirroring of symmetric labels.
    flip_axes: tuple[int, ...] = ()
    #: train on images synthesised from the training label maps (:mod:`medseg.synth`)
    synth: bool = False
    #: intensity scheme instead of the planned one ("percentile"; default with ``synth``)
    intensity: str | None = None


# ---- distributed helpers ----------------------------------------------------------------
def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _init_distributed(device: torch.device) -> bool:
    if _dist_info()[1] <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    from monai.utils import set_determinism

    set_determinism(seed=seed)


# ---- data -------------------------------------------------------------------------------
@dataclass
class PreparedCase:
    case_id: str
    image: torch.Tensor  # C, *grid
    label: torch.Tensor  # 1, *grid (uint8)


def plan_preprocessing(ds: Dataset, volumes: list[Volume], labels: list[np.ndarray],
                       target_spacing: Sequence[float] | None) -> Preprocessing:
    """Median canonical spacing; CT normalisation when the channel is called CT."""

    if target_spacing is None:
        spacings = [np.linalg.norm(canonical_affine(v, canonical_transform(v))[:3, :v.spatial_ndim],
                                   axis=0) for v in volumes]
        target_spacing = tuple(round(float(s), 4) for s in np.median(np.stack(spacings), axis=0))
    is_ct = any(name.strip().lower() == "ct" for name in ds.channel_names.values())
    if is_ct:
        rng = np.random.default_rng(0)
        fg = [v.array[0][lab > 0] for v, lab in zip(volumes, labels, strict=True)]
        samples = np.concatenate([rng.choice(f, size=min(f.size, 100_000), replace=False)
                                  for f in fg if f.size])
        intensity = ct_statistics(samples.astype(np.float64))
    else:
        intensity = {"scheme": "zscore", "nonzero": True}
    return Preprocessing(tuple(float(s) for s in target_spacing), intensity)


def default_patch_size(shapes: list[tuple[int, ...]], spatial_dims: int,
                       divisor: int) -> tuple[int, ...]:
    cap = 64 if spatial_dims == 3 else 256
    median = np.median(np.array(shapes), axis=0)
    return tuple(int(max(divisor, min(cap, (int(m) // divisor) * divisor or divisor)))
                 for m in median)


def _transforms(keys_shape: tuple[int, ...], num_classes: int, ratios: list[float],
                samples: int, augment: bool, spatial_dims: int, flip_axes: Sequence[int]):
    from monai import transforms as T

    chain: list = [
        T.SpatialPadd(keys=("image", "label"), spatial_size=keys_shape, mode="constant"),
        T.ClassesToIndicesd(keys="label", num_classes=num_classes, indices_postfix="_cls_indices"),
        T.RandCropByLabelClassesd(keys=("image", "label"), label_key="label",
                                  spatial_size=keys_shape, ratios=ratios,
                                  num_classes=num_classes, num_samples=samples,
                                  indices_key="label_cls_indices", warn=False),
    ]
    if augment:
        chain += [
            T.RandAffined(keys=("image", "label"), prob=0.25, mode=("bilinear", "nearest"),
                          rotate_range=(0.26,) * (1 if spatial_dims == 2 else 3),
                          scale_range=(0.15,) * spatial_dims, padding_mode="zeros"),
            *[T.RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=a)
              for a in flip_axes],
            T.RandScaleIntensityd(keys="image", factors=0.1, prob=0.3),
            T.RandShiftIntensityd(keys="image", offsets=0.1, prob=0.3),
            T.RandGaussianNoised(keys="image", prob=0.15, std=0.05),
        ]
    chain.append(T.DeleteItemsd(keys="label_cls_indices"))
    return T.Compose(chain)


def _with_intensity(pre: Preprocessing, scheme: str, ds: Dataset) -> Preprocessing:
    from dataclasses import replace


    if scheme != "percentile":
        raise MedsegError(f"{ds.json_path}: unknown intensity scheme {scheme!r} "
                          "(available: percentile)")
    return replace(pre, intensity=percentile_scheme())


def _synth_settings():

    return SynthSettings()


def _synth_loader(cases: list[PreparedCase], pre: Preprocessing, patch, cfg: TrainConfig,
                  rank: int, spatial_dims: int, num_classes: int):
    """Endless batches of synthetic patches drawn from the cases' label maps (and images)."""
    from monai.data import DataLoader


    if spatial_dims != 3:
        raise MedsegError("--synth needs 3D label maps")
    spacing = pre.target_spacing or (1.0, 1.0, 1.0)
    settings = _synth_settings()
    sources = [SynthSource.build(c.label[0], spacing, np.eye(4), num_classes - 1,
                                 image=c.image[0], pad_mm=settings.pad_mm) for c in cases]
    stream = SynthPatches(sources, patch, pre.intensity, samples=cfg.samples_per_volume,
                          seed=cfg.seed + 1000 * rank, settings=settings)
    return DataLoader(stream, batch_size=cfg.batch_size, num_workers=0)


def _dice_per_class(pred: np.ndarray, ref: np.ndarray, values: Sequence[int]) -> dict[int, float]:

    return {int(v): float(dice(pred == v, ref == v)) for v in values}


# ---- main entry -------------------------------------------------------------------------
def train(dataset_dir: str | Path, output: str | Path, config: TrainConfig | None = None, *,
          init_bundle: str | Path | None = None, resume: bool = False,
          registry: Registry | None = None, progress: bool = True,
          command_line: str | None = None, keep_resume: bool = False) -> Bundle | None:
    """Train and write a model bundle to ``output``; returns it (None on non-zero ranks).

    While it trains, the state ``resume`` continues from is kept in :func:`resume_dir`; a
    finished run removes it (and a ``checkpoint.pt`` an older medseg left in the bundle)
    unless ``keep_resume``."""
    cfg = config or TrainConfig()
    reg = registry or load_registry()
    arch_spec = reg.architectures.get(cfg.architecture)
    loss_spec = reg.losses.get(cfg.loss)
    ds = load_dataset(dataset_dir)
    validate_dataset(ds)
    device = resolve_device(cfg.device)
    distributed = _init_distributed(device)
    rank, world = _dist_info()
    if distributed and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    output = Path(output)
    _seed_everything(cfg.seed)

    label_values = sorted(ds.labels.values())
    if label_values != list(range(len(label_values))):
        raise MedsegError(f"{ds.json_path}: labels must be 0..K-1, got {label_values}")
    num_classes = len(label_values)

    volumes = [read_case_image(c) for c in ds.training]
    label_maps = [read_label_map(c.label) for c in ds.training if c.label is not None]
    spatial_dims = volumes[0].spatial_ndim
    pre = plan_preprocessing(ds, volumes, [lm.data for lm in label_maps], cfg.target_spacing)
    if cfg.intensity or cfg.synth:
        pre = _with_intensity(pre, cfg.intensity or "percentile", ds)
    cases = []
    for case, vol, lm in zip(ds.training, volumes, label_maps, strict=True):
        prepared = prepare(vol, pre)
        cases.append(PreparedCase(case.case_id, prepared.image,
                                  prepare_labels(lm.array, prepared).to(torch.uint8)))
    # what the training data looked like, for quality flags (medseg.qc); the random contrasts
    # of synthesised images say nothing about real intensities, so those keep classes/extent
    record = training_record(zip(volumes, label_maps, strict=True), ds.label_names,
                             intensity=not cfg.synth)
    del volumes, label_maps

    order = np.random.default_rng(cfg.seed).permutation(len(cases))
    n_val = max(1, round(cfg.val_fraction * len(cases))) if len(cases) > 1 else 0
    val_cases = [cases[i] for i in order[:n_val]] or cases
    train_cases = [cases[i] for i in order[n_val:]] or cases

    patch = tuple(cfg.patch_size) if cfg.patch_size else default_patch_size(
        [tuple(c.image.shape[1:]) for c in train_cases], spatial_dims, arch_spec.size_divisor)
    params = {**arch_spec.defaults, **cfg.arch_params}
    if cfg.architecture == "dynunet":
        params.setdefault("patch_size", list(patch))
        params.setdefault("spacing", list(pre.target_spacing or [1.0] * spatial_dims))
    arch_label = architecture_label(reg, cfg.architecture)
    net = build_architecture(reg, cfg.architecture, spatial_dims=spatial_dims,
                             in_channels=ds.n_channels, out_channels=num_classes, **params)
    if init_bundle is not None:
        base = load_bundle(init_bundle, reg)
        if base.config["architecture"]["name"] != cfg.architecture or \
                len(base.labels) != num_classes:
            raise MedsegError(f"{base.path}: cannot fine-tune: bundle has architecture "
                              f"{base.config['architecture']['name']!r} with "
                              f"{len(base.labels)} classes")
        net.load_state_dict(base.load_weights())
    net = net.to(device)
    loss_label = f"loss {cfg.loss!r} of plugin {reg.losses.providers.get(cfg.loss, '?')!r}"
    loss_fn = plugin_call(loss_label, loss_spec.factory, num_classes=num_classes,
                          **{**loss_spec.defaults, **cfg.loss_params})
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None

    state: dict[str, Any] = {"iteration": 0, "best": -1.0, "stale": 0, "best_dice": {},
                             "history": [], "training_record": record}
    ckpt_path = checkpoint_path(output)
    legacy = output / CHECKPOINT_NAME  # where medseg kept it before issue 25
    best: list = []  # [config, state dict] of the best bundle, kept in the checkpoint
    if resume:
        if not ckpt_path.is_file() and legacy.is_file():
            ckpt_path = legacy
        if not ckpt_path.is_file():
            raise MedsegError(f"{ckpt_path}: no checkpoint to resume from (a finished run "
                              "removes it unless trained with --keep-resume)")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = first_line(exc, 160)
            raise MedsegError(f"{ckpt_path}: checkpoint does not fit this architecture and "
                              f"parameters (made by another training run?): {first}") from None
        state.update(json.loads(ckpt["state_json"]))
        repair_bundle(output, ckpt)
        if "best_model" in ckpt:
            best[:] = [json.loads(ckpt["best_config_json"]), ckpt["best_model"]]
    model = net
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)

    from monai.data import CacheDataset, DataLoader, list_data_collate

    ratios = list(cfg.class_ratios) if cfg.class_ratios else [1.0] * num_classes
    if len(ratios) != num_classes:
        raise MedsegError(f"--class-ratios needs {num_classes} values, got {len(ratios)}")
    if any(not 0 <= a < spatial_dims for a in cfg.flip_axes):
        raise MedsegError(f"--flip-axes must be axes 0..{spatial_dims - 1}, got {cfg.flip_axes}")
    xform = _transforms(patch, num_classes, ratios, cfg.samples_per_volume, cfg.augment,
                        spatial_dims, cfg.flip_axes)
    my_cases = train_cases[rank::world] if distributed and len(train_cases) >= world \
        else train_cases
    if cfg.synth:
        loader = _synth_loader(my_cases, pre, patch, cfg, rank, spatial_dims, num_classes)
    else:
        data = CacheDataset([{"image": c.image, "label": c.label} for c in my_cases], xform,
                            progress=False, num_workers=0)
        xform.set_random_state(seed=cfg.seed + 1000 * rank)
        loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, num_workers=0,
                            collate_fn=list_data_collate,
                            generator=torch.Generator().manual_seed(cfg.seed + rank))

    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        # what is about to run, before the first (possibly slow) iteration
        print(f"training {ds.name}: {len(train_cases)} training and {len(val_cases)} "
              f"validation cases, spacing "
              f"{' x '.join(f'{v:g}' for v in pre.target_spacing or ()) or 'as stored'} "
              f"mm, patch {' x '.join(map(str, patch))}, {cfg.architecture}, loss {cfg.loss}, "
              f"device {device}, {cfg.iterations} iterations (validation every "
              f"{cfg.val_every})", file=sys.stderr)
        bar = tqdm(total=cfg.iterations, initial=state["iteration"], desc="train",
                   unit="it", dynamic_ncols=True, file=sys.stderr)
    t0 = time.time()
    stop = False
    while state["iteration"] < cfg.iterations and not stop:
        for batch in loader:
            if state["iteration"] >= cfg.iterations:
                break
            model.train()
            lr = cfg.lr * (1 - state["iteration"] / cfg.iterations) ** 0.9
            for g in optimizer.param_groups:
                g["lr"] = lr
            x = batch["image"].to(device).float()
            y = batch["label"].to(device).long()
            optimizer.zero_grad(set_to_none=True)
            with autocast(device):
                logits = model(x) if state["history"] else \
                    checked_forward(model, x, num_classes, arch_label)
                if logits.ndim == x.ndim + 1:  # DynUNet deep supervision
                    logits = logits[:, 0]
                loss = loss_fn(logits.float(), y) if state["history"] else \
                    plugin_call(loss_label, loss_fn, logits.float(), y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
                optimizer.step()
            state["iteration"] += 1
            loss_value = float(loss.detach())
            state["history"].append(round(loss_value, 5))
            if bar is not None:
                bar.update(1)
                # the best validation Dice so far; none before the first validation
                bar.set_postfix(loss=f"{loss_value:.4f}", val_dice=(
                    f"{state['best']:.3f}" if state["best"] >= 0 else "pending"))
            last = state["iteration"] >= cfg.iterations
            if state["iteration"] % cfg.val_every == 0 or last:
                stop = _validate_and_save(net, val_cases, label_values, patch, pre, cfg, ds,
                                          state, output, optimizer, device, rank, distributed,
                                          spatial_dims, params, command_line, best)
                if stop:
                    break
    if bar is not None:
        bar.close()
    state["seconds"] = round(time.time() - t0, 1)
    if distributed:
        _write_rank_checksum(net, output, rank)
        import torch.distributed as dist

        dist.barrier()
    if rank != 0:
        return None
    bundle = _finalize(load_bundle(output, reg), ds, state, reg, cfg)
    if not keep_resume:  # finished: the training state goes, the bundle ships alone
        shutil.rmtree(resume_dir(output), ignore_errors=True)
        legacy.unlink(missing_ok=True)
    return bundle


def _bundle_config(ds: Dataset, cfg: TrainConfig, pre: Preprocessing, patch, spatial_dims: int,
                   params: dict[str, Any], state: dict[str, Any], command_line: str | None
                   ) -> dict[str, Any]:
    return {
        "name": ds.name,
        "architecture": {"name": cfg.architecture, "params": params},
        "spatial_dims": spatial_dims,
        "in_channels": ds.n_channels,
        "channel_names": {str(k): v for k, v in ds.channel_names.items()},
        "labels": dict(ds.labels),
        "patch_size": list(patch),
        "preprocessing": pre.to_dict(),
        "inference": {"overlap": cfg.overlap, "postprocessors": []},
        "training_record": state.get("training_record"),
        "training": {
            "command": command_line,
            "dataset": str(ds.root),
            "medseg_version": __version__,
            "torch_version": torch.__version__,
            "config": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in asdict(cfg).items()},
            "best_iteration": state["iteration"],
            "best_val_mean_dice": round(state["best"], 5),
            "val_dice": {ds.label_names[int(k)]: v for k, v in state["best_dice"].items()},
            "loss_history_every_10": state["history"][::10],
            **({"synth": _synth_settings().to_dict()} if cfg.synth else {}),
        },
    }


def _validate_and_save(net, val_cases, label_values, patch, pre, cfg, ds, state, output,
                       optimizer, device, rank, distributed, spatial_dims, params,
                       command_line, best: list) -> bool:
    stop_flag = torch.zeros(1)
    if rank == 0:
        fake_bundle = Bundle(output, {"patch_size": list(patch), "labels": dict(ds.labels),
                                      "spatial_dims": spatial_dims})
        settings = InferenceSettings(overlap=cfg.overlap, sw_batch_size=2)
        net.eval()
        per_case = []
        for c in val_cases:
            probs = predict_probabilities(net, c.image, fake_bundle, settings, device)
            pred = probs.argmax(0).numpy()
            per_case.append(_dice_per_class(pred, c.label[0].numpy(), label_values[1:]))
        mean_per_class = {v: float(np.nanmean([d[v] for d in per_case])) for v in
                          label_values[1:]}
        mean = float(np.nanmean(list(mean_per_class.values())))
        if mean > state["best"] + 1e-4:
            state["best"], state["stale"] = mean, 0
            state["best_dice"] = {str(k): round(v, 5) for k, v in mean_per_class.items()}
            config = _bundle_config(ds, cfg, pre, patch, spatial_dims, params, state,
                                    command_line)
            save_bundle(output, config, net.state_dict())
            best[:] = [config, {k: v.detach().cpu().clone() for k, v in
                                net.state_dict().items()}]
        else:
            state["stale"] += 1
        _save_checkpoint(output, net, optimizer, state, best)
        if state["stale"] >= cfg.patience:
            stop_flag[0] = 1
    if distributed:
        import torch.distributed as dist

        dist.broadcast(stop_flag, src=0)
    return bool(stop_flag[0])


def _save_checkpoint(output: Path, net, optimizer, state, best: list | None = None) -> None:
    """The training state; with the best bundle's config and weights, so ``--resume`` can
    repair a bundle a killed run left inconsistent (:func:`repair_bundle`)."""

    ckpt = {"model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "state_json": json.dumps(state)}
    if best:
        ckpt["best_config_json"] = json.dumps(best[0])
        ckpt["best_model"] = best[1]
    path = checkpoint_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    pause_point("training-checkpoint-written")


def repair_bundle(output: Path, ckpt: dict[str, Any]) -> bool:
    """Verify the bundle at ``output``; when it is missing or inconsistent (weights that do
    not match its config, after a killed run) rewrite it from the best weights and config
    the checkpoint keeps. Returns whether it was repaired."""
    import warnings

    try:
        load_bundle(output).load_weights()
        return False
    except MedsegError as exc:
        problem = str(exc)
    if "best_model" not in ckpt or "best_config_json" not in ckpt:
        raise MedsegError(f"{output}: the bundle is not usable ({problem}) and the checkpoint "
                          "holds no best weights to repair it from")
    config = json.loads(ckpt["best_config_json"])
    config.pop("weights", None)
    config.pop("format_version", None)
    save_bundle(output, config, ckpt["best_model"])
    warnings.warn(f"{output}: bundle repaired from the checkpoint's best weights ({problem})",
                  stacklevel=2)
    return True


def _write_rank_checksum(net, output: Path, rank: int) -> None:
    """Per-rank weight fingerprint, so DDP synchronisation can be checked."""

    flat = torch.cat([p.detach().float().flatten().cpu() for p in net.parameters()])
    write_text_atomic(output / f"ddp_rank{rank}.json", json.dumps({
        "rank": rank, "sum": float(flat.double().sum()),
        "abs_sum": float(flat.double().abs().sum()), "numel": int(flat.numel()),
        "first": [float(v) for v in flat[:8]],
    }))


def _finalize(bundle: Bundle, ds: Dataset, state: dict[str, Any], reg: Registry,
              cfg: TrainConfig) -> Bundle:
    """Score held-out labelled test cases with the saved best bundle; record in the config."""
    config = dict(bundle.config)
    training = dict(config["training"])
    training["seconds"] = state.get("seconds")
    training["iterations_done"] = state["iteration"]
    training["loss_history_every_10"] = state["history"][::10]
    labelled = [c for c in ds.test if c.label is not None]
    if labelled:
        settings = InferenceSettings(device=cfg.device, overlap=cfg.overlap)
        model = MedsegBundleModel(bundle, reg, resolve_device(cfg.device))
        seg = Segmenter(model, settings, reg)
        per_case = {}
        for case in labelled:
            result = seg(read_case_image(case), where=str(case.images[0]))
            ref = read_label_map(case.label).data  # type: ignore[arg-type]
            per_case[case.case_id] = {ds.label_names[v]: round(d, 5) for v, d in
                                      _dice_per_class(result.labels.data, ref,
                                                      bundle.label_values[1:]).items()}
        names = [ds.label_names[v] for v in bundle.label_values[1:]]
        training["test_dice"] = {n: round(float(np.nanmean([c[n] for c in per_case.values()])), 5)
                                 for n in names}
        training["test_dice_per_case"] = per_case
    config["training"] = training

    write_text_atomic(bundle.path / "config.json", json.dumps(config, indent=2) + "\n")
    return load_bundle(bundle.path, reg)
