"""``medseg convert IN OUT``: any readable image to NIfTI, NRRD, MHA or PNG."""

from __future__ import annotations

from medseg.io import read_image, write_image
from medseg.registry import load_registry


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert an image (e.g. a DICOM series to NIfTI)")
    p.add_argument("input")
    p.add_argument("output", help=".nii.gz, .nii, .nrrd, .mha or .png (2D)")
    p.add_argument("--series", default=None, help="SeriesInstanceUID when a folder has several")
    p.set_defaults(func=run)


def run(args) -> int:
    options = {"series": args.series} if args.series else {}
    volume = read_image(args.input, registry=load_registry(args.plugins_dir, fresh=True), **options)
    out = write_image(volume, args.output)
    print(f"wrote {out} ({' x '.join(map(str, volume.spatial_shape))}, {volume.orientation})")
    return 0
