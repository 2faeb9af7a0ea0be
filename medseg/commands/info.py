"""``medseg info FILE_OR_DIR``: format, geometry, intensities, labels."""

from __future__ import annotations

import json

from medseg.describe import describe_file
from medseg.registry import load_registry


def register(sub) -> None:
    p = sub.add_parser("info", help="describe an image, DICOM series or label map")
    p.add_argument("path", help="NIfTI, DICOM folder/zip/file, NRRD/MHA, or 2D image")
    p.add_argument("--series", default=None, help="SeriesInstanceUID when a folder has several")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    options = {"series": args.series} if args.series else {}
    info = describe_file(args.path, load_registry(args.plugins_dir, fresh=True), **options)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}")
    print(f"  format       {info['format']}")
    channels = "" if info["channels"] == 1 else f" ({info['channels']} channels)"
    print(f"  shape        {' x '.join(map(str, info['shape']))}{channels}")
    print(f"  spacing      {' x '.join(f'{s:g}' for s in info['spacing_mm'])} mm")
    print(f"  origin       {', '.join(f'{o:g}' for o in info['origin_mm'])} mm (RAS)")
    print(f"  orientation  {info['orientation']}")
    print(f"  dtype        {info['dtype']}")
    lo, hi = info["intensity_range"]
    print(f"  intensities  {lo:g} .. {hi:g}")
    if "labels" in info:
        print("  labels")
        for value, item in info["labels"].items():
            print(f"    {value:>5}  {item['voxels']:>10} voxels  {item['volume_ml']:>10.3f} mL")
    return 0
