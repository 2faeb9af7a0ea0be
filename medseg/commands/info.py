"""``medseg info FILE_OR_DIR``: format, geometry, intensities, labels."""

from __future__ import annotations

import json
from pathlib import Path

from medseg.io.describe import describe_file
from medseg.models.base import ModelInfo
from medseg.models.catalog import find_model, sniff_format
from medseg.models.loading import describe_model
from medseg.registry import load_registry


def register(sub) -> None:
    p = sub.add_parser("info", help="describe an image, DICOM series, label map or model")
    p.add_argument("path", help="NIfTI, DICOM folder/zip/file, NRRD/MHA, 2D image, or a model "
                                "folder of any format")
    p.add_argument("--series", default=None, help="SeriesInstanceUID when a folder has several")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    registry = load_registry(args.plugins_dir, fresh=True)
    path = Path(args.path)
    if (path.is_dir() and sniff_format(path, registry)) or (
            not path.exists() and find_model(args.path, registry) is not None):
        return print_model(describe_model(args.path, registry), args.json)
    options = {"series": args.series} if args.series else {}
    info = describe_file(args.path, registry, **options)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}")
    print(f"  format       {info['format']}")
    channels = "" if info["channels"] == 1 else f" ({info['channels']} channels)"
    print(f"  shape        {' x '.join(map(str, info['shape']))}{channels}")
    print(f"  spacing      {' x '.join(f'{s:g}' for s in info['spacing_mm'])} mm")
    origin = ", ".join(f"{o + 0.0:g}" for o in info["origin_mm"])  # + 0.0: no "-0"
    print(f"  origin       {origin} mm (RAS)")
    print(f"  orientation  {info['orientation']}")
    print(f"  dtype        {info['dtype']}")
    lo, hi = info["intensity_range"]
    print(f"  intensities  {lo:g} .. {hi:g}")
    if "labels" in info:
        print("  labels (background 0 left out)")
        for value, item in info["labels"].items():
            name = f"  {item['name']}" if "name" in item else ""
            print(f"    {value:>5}  {item['voxels']:>10} voxels  {item['volume_ml']:>10.3f} mL"
                  f"{name}")
    return 0


#: details printed one item a line, every one (a MONAI bundle's trust items and modules)
LISTED_DETAILS = ("code", "modules")


def print_model(info: ModelInfo, as_json: bool) -> int:
    """A model folder: format, classes, grid, folds and where it came from."""
    d = info.to_dict()
    if as_json:
        print(json.dumps(d, indent=2))
        return 0
    print(info.name)
    print(f"  format       {info.format}")
    print(f"  source       {info.source}")
    if info.modality or info.channel_names:
        print(f"  input        {info.modality or ''} {', '.join(info.channel_names)}".rstrip())
    print(f"  channels     {info.in_channels} in, {len(info.labels)} classes out "
          f"({info.spatial_dims}D)")
    if info.spacing:
        print(f"  spacing      {' x '.join(f'{s:g}' for s in info.spacing)} mm")
    if info.patch_size:
        print(f"  patch size   {' x '.join(map(str, info.patch_size))}")
    if info.folds:
        print(f"  folds        {', '.join(info.folds)}")
    if info.prompts:
        print(f"  prompts      {', '.join(info.prompts)} (segments what it is pointed at: "
              "medseg segment --point/--box)")
        if info.answers > 1:
            print(f"  answers      {info.answers} to each prompt (--answer K; 1 is the default)")
    for key, value in info.details.items():
        if key in LISTED_DETAILS and isinstance(value, list):
            print(f"  {key:<12} {len(value)} item{'s' if len(value) != 1 else ''}")
            for item in value:
                print(f"    {item}")
            continue
        if isinstance(value, dict):  # e.g. segment codes per class: too long for a line
            print(f"  {key:<12} {len(value)} entries (see --json)")
        elif isinstance(value, tuple) and value:  # one line each (e.g. weight folders)
            print(f"  {key:<12} {value[0]}")
            for line in value[1:]:
                print(f"  {'':<12} {line}")
        else:
            print(f"  {key:<12} {value}")
    print("  labels")
    for value, name in sorted(info.label_names.items()):
        print(f"    {value:>5}  {name}")
    return 0
