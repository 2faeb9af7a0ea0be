"""``medseg segment INPUT... -o OUT --model BUNDLE``: segment one or many images."""

from __future__ import annotations

import json

from medseg.batch import expand_inputs, segment_cases
from medseg.bundle import load_bundle
from medseg.errors import MedsegError
from medseg.inference import InferenceSettings, Segmenter
from medseg.registry import load_registry


def _postprocessor(text: str) -> tuple[str, dict]:
    """``NAME`` or ``NAME:{"json": "params"}``."""
    name, _, params = text.partition(":")
    try:
        return name.strip(), (json.loads(params) if params else {})
    except json.JSONDecodeError as exc:
        raise MedsegError(f"--postprocess {text!r}: parameters are not JSON ({exc})") from None


def register(sub) -> None:
    p = sub.add_parser("segment", help="segment images with a model bundle")
    p.add_argument("inputs", nargs="+",
                   help="NIfTI, DICOM folder/zip, NRRD/MHA, 2D image, folder or glob")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("-m", "--model", required=True, help="bundle folder or bundled model name")
    p.add_argument("--overlap", type=float, default=None, help="sliding-window overlap")
    p.add_argument("--roi-size", type=int, nargs="+", default=None)
    p.add_argument("--sw-batch-size", type=int, default=2)
    p.add_argument("--mirror", action="store_true", help="test-time mirroring")
    p.add_argument("--fast", action="store_true", help="coarser spacing, less overlap")
    p.add_argument("--postprocess", action="append", default=[], type=_postprocessor,
                   metavar='NAME[:JSON]',
                   help='e.g. keep_largest or \'remove_small:{"min_volume_mm3": 50}\'')
    p.add_argument("--probabilities", action="store_true", help="also write probability maps")
    p.add_argument("--dicom-seg", action="store_true", help="DICOM SEG for DICOM inputs")
    p.add_argument("--keep-patient-data", action="store_true",
                   help="keep patient-identifying attributes in DICOM outputs")
    p.add_argument("--overwrite", action="store_true", help="redo cases already segmented")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    registry = load_registry(args.plugins_dir, fresh=True)
    bundle = load_bundle(args.model, registry)
    settings = InferenceSettings(
        overlap=args.overlap if args.overlap is not None
        else float(bundle.inference.get("overlap", 0.25)),
        sw_batch_size=args.sw_batch_size, mirror=args.mirror, fast=args.fast,
        roi_size=tuple(args.roi_size) if args.roi_size else None,
        postprocessors=args.postprocess, probabilities=args.probabilities, device=args.device,
    )
    cases = expand_inputs(args.inputs)
    segmenter = Segmenter(bundle, settings, registry)
    rows = segment_cases(cases, args.output, segmenter, overwrite=args.overwrite,
                         progress=not args.quiet, dicom_seg=args.dicom_seg,
                         keep_patient_data=args.keep_patient_data)
    failed = [r for r in rows if r["status"] == "error"]
    for r in rows:
        if r["status"] == "ok":
            vols = ", ".join(f"{k} {v:.1f} mL" for k, v in r["volumes_ml"].items())
            print(f"{r['case']}: ok ({r['seconds']} s) {vols}")
        else:
            print(f"{r['case']}: {r['status']}: {r.get('message', '')}")
    print(f"{len(rows) - len(failed)} of {len(rows)} cases done, {len(failed)} failed")
    return 1 if failed else 0
