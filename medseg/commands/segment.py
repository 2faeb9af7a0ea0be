"""``medseg segment INPUT... -o OUT --model BUNDLE``: segment one or many images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medseg.batch import expand_inputs, segment_cases
from medseg.bundle import Bundle, load_bundle
from medseg.commands.pacs import add_segment_options, segment_from_args
from medseg.errors import MedsegError
from medseg.inference import InferenceSettings, Segmenter
from medseg.instances import PANOPTIC_OFFSET, find_instances
from medseg.io import read_label_map
from medseg.outputs import output_paths, write_instances
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
    p.add_argument("inputs", nargs="*",
                   help="NIfTI, DICOM folder/zip, NRRD/MHA, 2D image, folder or glob "
                        "(or none with --dicomweb)")
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
    p.add_argument("--instances", nargs="+", default=None, metavar="CLASS",
                   help="split these classes (label values or names) into connected-component "
                        "instances: writes CASE_instances.nii.gz, CASE_panoptic.nii.gz "
                        "(label*1000+instance) and CASE_instances.csv/.json")
    p.add_argument("--panoptic-offset", type=int, default=PANOPTIC_OFFSET,
                   help="panoptic id = label * OFFSET + instance (default 1000)")
    p.add_argument("--min-instance-voxels", type=int, default=1,
                   help="smaller components are not counted as instances")
    p.add_argument("--dicom-seg", action="store_true", help="DICOM SEG for DICOM inputs")
    p.add_argument("--keep-patient-data", action="store_true",
                   help="keep patient-identifying attributes in DICOM outputs")
    p.add_argument("--overwrite", action="store_true", help="redo cases already segmented")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--quiet", action="store_true")
    add_segment_options(p)
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
    classes = instance_classes(args.instances, bundle) if args.instances else None
    segmenter = Segmenter(bundle, settings, registry)
    if args.dicomweb:
        rows = segment_from_args(args, segmenter)
    elif not args.inputs:
        raise MedsegError("give INPUT files or folders, or --dicomweb URL --study UID")
    else:
        rows = segment_cases(expand_inputs(args.inputs), args.output, segmenter,
                             overwrite=args.overwrite, progress=not args.quiet,
                             dicom_seg=args.dicom_seg, keep_patient_data=args.keep_patient_data)
    if classes:
        add_instances(rows, args.output, bundle, classes, overwrite=args.overwrite,
                      offset=args.panoptic_offset, min_voxels=args.min_instance_voxels)
    failed = [r for r in rows if r["status"] == "error"]
    for r in rows:
        if r["status"] == "ok":
            vols = ", ".join(f"{k} {v:.1f} mL" for k, v in r["volumes_ml"].items())
            found = r.get("instances")
            extra = "; instances " + ", ".join(f"{k} {v}" for k, v in found.items()) \
                if found is not None else ""
            print(f"{r['case']}: ok ({r['seconds']} s) {vols}{extra}{qc_text(r)}")
        else:
            print(f"{r['case']}: {r['status']}: {r.get('message', '')}{qc_text(r)}")
    print(f"{len(rows) - len(failed)} of {len(rows)} cases done, {len(failed)} failed")
    return 1 if failed else 0


def qc_text(row: dict[str, Any]) -> str:
    """`` qc=ok`` or `` qc=warn: reason; reason`` for a summary row (empty without QC)."""
    if "qc" not in row:
        return ""
    reasons = row.get("qc_reasons") or []
    if reasons:
        return f" qc={row['qc']}: " + "; ".join(reasons)
    if set(row.get("qc_checked") or []) <= {"border"}:
        return f" qc={row['qc']} (border only: the model records no training data)"
    return f" qc={row['qc']}"


def instance_classes(items: list[str], bundle: Bundle) -> list[int]:
    """Label values from values or names given to ``--instances``."""
    names = bundle.labels
    values = set(names.values()) - {0}
    out = []
    for item in items:
        value = int(item) if item.strip().lstrip("-").isdigit() else names.get(item)
        if value is None or value not in values:
            available = ", ".join(f"{n} ({v})" for n, v in sorted(names.items(),
                                                                 key=lambda kv: kv[1]) if v)
            raise MedsegError(f"--instances {item!r} is not a class of model {bundle.name!r}; "
                              f"available: {available}")
        out.append(int(value))
    return out


def add_instances(rows: list[dict[str, Any]], out_dir: str | Path, bundle: Bundle,
                  classes: list[int], *, overwrite: bool = False,
                  offset: int = PANOPTIC_OFFSET, min_voxels: int = 1) -> None:
    """Split the written masks of finished cases into instances (per case; one failure is
    reported on its row)."""
    for row in rows:
        if row["status"] not in ("ok", "skipped"):
            continue
        paths = output_paths(Path(out_dir), row["case"])
        if row["status"] == "skipped" and paths["instances"].exists() and not overwrite:
            continue
        try:
            labels = read_label_map(paths["mask"])
            found = find_instances(labels, classes, label_names=bundle.label_names,
                                   offset=offset, min_voxels=min_voxels)
            write_instances(found, labels, out_dir, row["case"], model=bundle.name)
        except MedsegError as exc:
            row.update(status="error", message=f"instances: {exc}")
            continue
        row["instances"] = {bundle.label_names.get(c, str(c)): n
                            for c, n in found.counts().items()}
