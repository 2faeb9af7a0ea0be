"""``medseg train DATASET -o BUNDLE``: train a model bundle on an MSD/nnU-Net dataset."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from medseg.registry import load_registry
from medseg.training.train import TrainConfig, train


def _json_dict(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, unless it is None/False/empty (said in words)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default in ([], {}):
            return action.help or ""
        return super()._get_help_string(action)


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model bundle on a dataset folder",
                       formatter_class=_Defaults)
    p.add_argument("dataset", help="folder with dataset.json, imagesTr/, labelsTr/")
    p.add_argument("-o", "--output", required=True, help="bundle folder to write")
    p.add_argument("--arch", default="unet", help="registered architecture name")
    p.add_argument("--arch-params", type=_json_dict, default={}, help="JSON object")
    p.add_argument("--loss", default="dice_focal", help="registered loss name")
    p.add_argument("--loss-params", type=_json_dict, default={},
                   help='JSON object, e.g. \'{"alpha": 0.75, "gamma": 2}\'')
    p.add_argument("--patch-size", type=int, nargs="+", default=None,
                   help="patch size in voxels (default: planned from the dataset)")
    p.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="target spacing in mm (default: median of the dataset)")
    p.add_argument("--iterations", type=int, default=1000, help="training iterations")
    p.add_argument("--batch-size", type=int, default=2, help="patches per iteration")
    p.add_argument("--samples-per-volume", type=int, default=2,
                   help="patches drawn from each volume loaded")
    p.add_argument("--lr", type=float, default=2e-3,
                   help="initial learning rate (AdamW, polynomial decay)")
    p.add_argument("--val-every", type=int, default=50, help="iterations between validations")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the cases held out for validation")
    p.add_argument("--patience", type=int, default=8, help="validations without improvement")
    p.add_argument("--class-ratios", type=float, nargs="+", default=None,
                   help="patch sampling ratio per class (background first)")
    p.add_argument("--seed", type=int, default=0, help="random seed (split, sampling, init)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--no-augment", action="store_true", help="no data augmentation")
    p.add_argument("--flip-axes", type=int, nargs="*", default=[],
                   help="voxel axes to mirror in augmentation (default none: keeps left/right "
                        "labels learnable)")
    p.add_argument("--synth", action="store_true",
                   help="train on images synthesised from the label maps (random contrast, "
                        "head, resolution, bias, skull stripping; 3D brain label maps)")
    p.add_argument("--intensity", choices=["percentile"], default=None,
                   help="intensity normalisation instead of the planned one (default with "
                        "--synth: percentile)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its training state, kept beside the "
                        "bundle in PARENT/.NAME.resume/checkpoint.pt while it trains (never in "
                        "the bundle); a finished run removes it")
    p.add_argument("--keep-resume", action="store_true",
                   help="keep the training state when the run finishes, so that --resume "
                        "with more --iterations can extend it")
    p.add_argument("--init", default=None, help="fine-tune from this bundle's weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def portable(arg: str) -> str:
    """A command-line word as the bundle records it: an absolute path of the training machine
    becomes relative to the working folder when inside it, else only its last two parts."""
    path = Path(arg)
    if not path.is_absolute():
        return arg
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(Path("...", *path.parts[-2:]))


def run(args) -> int:
    cfg = TrainConfig(
        architecture=args.arch, arch_params=args.arch_params, loss=args.loss,
        loss_params=args.loss_params,
        patch_size=tuple(args.patch_size) if args.patch_size else None,
        target_spacing=tuple(args.spacing) if args.spacing else None,
        iterations=args.iterations, batch_size=args.batch_size,
        samples_per_volume=args.samples_per_volume, lr=args.lr, val_every=args.val_every,
        val_fraction=args.val_fraction, patience=args.patience, seed=args.seed,
        device=args.device, class_ratios=args.class_ratios, augment=not args.no_augment,
        flip_axes=tuple(args.flip_axes), synth=args.synth, intensity=args.intensity,
    )
    command = "medseg " + " ".join(shlex.quote(portable(a)) for a in sys.argv[1:]) \
        if sys.argv and sys.argv[0].endswith("medseg") else None
    bundle = train(args.dataset, args.output, cfg, init_bundle=args.init, resume=args.resume,
                   registry=load_registry(args.plugins_dir, fresh=True),
                   progress=not args.quiet, command_line=command,
                   keep_resume=args.keep_resume)
    if bundle is not None:
        t = bundle.config["training"]
        print(f"wrote {bundle.path}: best validation mean Dice {t['best_val_mean_dice']:.4f}")
        for name, value in t.get("val_dice", {}).items():
            print(f"  val  {name:<20} {value:.4f}")
        for name, value in t.get("test_dice", {}).items():
            print(f"  test {name:<20} {value:.4f}")
    return 0
