"""``medseg segment INPUT... -o OUT --model BUNDLE``: segment one or many images."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medseg.commands.pacs import add_segment_options, segment_from_args, uses_dicomweb
from medseg.engine.batch import CaseInput, expand_inputs, is_dicom_input, segment_cases
from medseg.engine.instances import PANOPTIC_OFFSET, find_instances
from medseg.engine.outputs import output_paths, write_instances
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import InputError, MedsegError
from medseg.io import read_label_map
from medseg.io.display import ml_text
from medseg.models import load_model, resolve_model
from medseg.ops.device import resolve_device
from medseg.prompts.parse import parse_box, parse_point, read_prompts_file
from medseg.prompts.types import PromptSpec
from medseg.qc import QC
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
    p.add_argument("-m", "--model", required=True, action="append",
                   help="model folder (medseg bundle, nnU-Net v2 result folder, MONAI bundle, "
                        "or a plugin's format) or a name from `medseg models`; repeat to merge "
                        "models with disjoint classes into one label map")
    p.add_argument("--configuration", default=None,
                   help="nnU-Net: configuration when -m is a dataset folder (default 3d_fullres)")
    p.add_argument("--folds", nargs="+", default=None,
                   help="nnU-Net: folds to ensemble (default: every fold_* present)")
    p.add_argument("--checkpoint", choices=("final", "best"), default=None,
                   help="nnU-Net: checkpoint_final.pth (default) or checkpoint_best.pth")
    p.add_argument("--trust-bundle", action="store_true",
                   help="MONAI bundle: allow its config's Python expressions to run "
                        "(or list trusted paths in MEDSEG_TRUSTED_BUNDLES)")
    p.add_argument("--roi-subset", nargs="+", default=None, metavar="CLASS",
                   help="TotalSegmentator total/total_mr tasks: only these classes, located "
                        "first by the coarse model and run on a crop (as its --roi_subset)")
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
    p.add_argument("--keep-dates", action="store_true",
                   help="DICOM SEG: keep dates (the profile's longitudinal temporal option)")
    p.add_argument("--keep-institution", action="store_true",
                   help="DICOM SEG: keep institution name, address and department")
    p.add_argument("--keep-patient-data", action="store_true",
                   help="keep patient-identifying attributes in DICOM outputs")
    p.add_argument("--overwrite", action="store_true", help="redo cases already segmented")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--quiet", action="store_true")
    add_segment_options(p)
    add_prompt_options(p)
    p.set_defaults(func=run)


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a parser that raises MedsegError (shown as a usage error)."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except MedsegError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def add_prompt_options(p) -> None:
    g = p.add_argument_group(
        "prompts", "for promptable models (click3d, SAM-family): segment what you point at. "
                   "Coordinates are world millimetres in the input's RAS world (as its NIfTI "
                   "affine gives them), or voxel indices i,j,k of the input file with --voxel")
    g.add_argument("--point", action="append", default=[], type=_arg(parse_point),
                   metavar="X,Y,Z[:+|:-]",
                   help="a click: + (the default) inside the object, - on background; repeat")
    g.add_argument("--box", action="append", default=[], type=_arg(parse_box),
                   metavar="X0,Y0,Z0,X1,Y1,Z1",
                   help="two opposite corners; equal values on one axis make a 2-D box on that "
                        "slice; repeat")
    g.add_argument("--voxel", action="store_true",
                   help="--point/--box coordinates are voxel indices, not millimetres")
    g.add_argument("--answer", type=int, default=1, metavar="K",
                   help="which of the model's answers to give, from 1 (the default) to the "
                        "number 'medseg info MODEL' lists: a click can mean a pocket or what "
                        "surrounds it (the fat in a kidney's sinus or the kidney)")
    g.add_argument("--init", default=None, metavar="MASK",
                   help="a mask on the input's grid to refine (nonzero = object)")
    g.add_argument("--label", default=None, metavar="NAME",
                   help="name of the segmented object (default: the model's, 'object')")
    g.add_argument("--prompts", default=None, metavar="FILE.json",
                   help="prompts for many cases: {\"cases\": [{\"image\": ..., \"points\": "
                        "[...], \"boxes\": [...]}]} (see docs/prompts.md)")


def model_options(args) -> dict[str, Any]:
    """Format options given on the command line (None when not given)."""
    return {"configuration": args.configuration, "folds": args.folds,
            "checkpoint": args.checkpoint, "trust": True if args.trust_bundle else None,
            "roi_subset": getattr(args, "roi_subset", None)}


def open_models(names: list[str], options: dict[str, Any], registry, device) -> list:
    """Load every ``-m`` model. An option goes to the models whose format takes it; one that
    no given model takes is an error."""
    given = {k: v for k, v in options.items() if v is not None}
    specs = [resolve_model(name, registry) for name in names]
    unused = [k for k in given if not any(k in spec.options for _, spec in specs)]
    if unused:
        formats = ", ".join(sorted({spec.name for _, spec in specs}))
        flags = ", ".join("--" + ("trust-bundle" if k == "trust" else k.replace("_", "-"))
                          for k in unused)
        raise MedsegError(f"{flags} does not apply to the given model format(s): {formats}")
    return [load_model(path, registry, device,
                       **{k: v for k, v in given.items() if k in spec.options})
            for path, spec in specs]


def run(args) -> int:
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(out, "already exists and is not a folder")
    registry = load_registry(args.plugins_dir, fresh=True)
    device = resolve_device(args.device)
    settings = InferenceSettings(
        overlap=args.overlap, sw_batch_size=args.sw_batch_size, mirror=args.mirror,
        fast=args.fast, roi_size=tuple(args.roi_size) if args.roi_size else None,
        postprocessors=args.postprocess, probabilities=args.probabilities, device=str(device),
    )
    models = open_models(args.model, model_options(args), registry, device)
    segmenter = Segmenter(models, settings, registry, rename=label_rename(args.label, models))
    classes = instance_classes(args.instances, segmenter) if args.instances else None
    prompted = check_prompt_args(args, segmenter)
    if uses_dicomweb(args):
        rows = segment_from_args(args, segmenter)
    elif not args.inputs and not args.prompts:
        raise MedsegError("give INPUT files or folders, or --dicomweb URL --study UID")
    else:
        cases = prompted_cases(args) if prompted else expand_inputs(args.inputs)
        if args.dicom_seg:
            check_dicom_seg_inputs(cases)
        rows = segment_cases(cases, args.output, segmenter,
                             overwrite=args.overwrite, progress=not args.quiet,
                             dicom_seg=args.dicom_seg, keep_patient_data=args.keep_patient_data,
                             keep={"keep_dates": args.keep_dates,
                                   "keep_institution": args.keep_institution})
    if classes:
        add_instances(rows, args.output, segmenter, classes, overwrite=args.overwrite,
                      offset=args.panoptic_offset, min_voxels=args.min_instance_voxels)
    return report_rows(rows)


def label_rename(label: str | None, models: list) -> dict[str, str] | None:
    """``--label NAME``: the name of what a promptable model segments."""
    if label is None:
        return None
    promptable = [m for m in models if m.info.prompts]
    if not promptable:
        raise MedsegError("--label names what a promptable model segments; "
                          f"{', '.join(m.info.name for m in models)} take no prompts")
    label = label.strip()
    if not label or any(ch in label for ch in "\n\r\t"):
        raise MedsegError(f"--label {label!r}: give a name on one line")
    return {name: label for m in promptable for name, v in m.info.labels.items() if v}


def check_prompt_args(args, segmenter: Segmenter) -> bool:
    """Whether prompts were given; they must match the model (a promptable model needs them,
    any other refuses them)."""
    given = bool(args.point or args.box or args.init or args.prompts)
    flags = "--point, --box, --init or --prompts"
    if given and not segmenter.promptable:
        raise MedsegError(f"model {segmenter.name!r} takes no prompts ({flags})")
    if segmenter.promptable and not given:
        raise MedsegError(f"model {segmenter.name!r} segments what it is pointed at: give "
                          f"{flags}")
    if given and uses_dicomweb(args):
        raise MedsegError("prompts work on files and folders, not with --dicomweb")
    if args.prompts and (args.inputs or args.point or args.box or args.init):
        raise MedsegError("--prompts FILE gives the images and their prompts: give no INPUT, "
                          "--point, --box or --init with it")
    if given and not args.prompts and not (args.point or args.box):
        raise MedsegError("--init refines a mask with clicks or boxes: add --point or --box")
    return given


def prompted_cases(args) -> list[CaseInput]:
    """The cases and their prompts, from the prompts file or from the flags (the same prompts
    for every input)."""
    if args.prompts:
        pairs = read_prompts_file(args.prompts)
    else:
        spec = PromptSpec(tuple(args.point), tuple(args.box), args.voxel, args.init,
                          args.answer - 1)
        pairs = [(case.path, spec) for case in expand_inputs(args.inputs)]
    cases = []
    for path, spec in pairs:
        found = expand_inputs([path])
        for case in found:
            cases.append(CaseInput(case.name, case.path, case.error, spec))
    return cases


def check_dicom_seg_inputs(cases: list[CaseInput]) -> None:
    """``--dicom-seg`` needs DICOM input (a SEG references the series it segments): a
    warning naming each input that is not DICOM (its mask and tables are still written, and its
    manifest does not claim a SEG)."""
    for case in cases:
        if not case.error and not is_dicom_input(case.path):
            print(f"medseg: warning: {case.path}: not a DICOM series, so no DICOM SEG is written "
                  "for it (--dicom-seg needs DICOM input to reference)", file=sys.stderr)


#: exit statuses of ``medseg segment`` (README "Command line")
EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_RAN = 0, 1, 2


def report_rows(rows: list[dict[str, Any]]) -> int:
    """One line per case (errors as ``medseg: error: PATH: problem`` on stderr) and a total;
    returns 0 when every case is done (ok or skipped), 1 when some failed, 2 when none could
    be segmented."""
    failed = [r for r in rows if r["status"] == "error"]
    for r in rows:
        if r["status"] in ("ok", "skipped") and "volumes_ml" in r:
            vols = ", ".join(f"{k} {ml_text(v)} mL" for k, v in r["volumes_ml"].items())
            found = r.get("instances")
            extra = "; instances " + ", ".join(f"{k} {v}" for k, v in found.items()) \
                if found is not None else ""
            when = f"{r['seconds']} s" if r["status"] == "ok" else "done earlier"
            note = f" ({r['message']})" if r["status"] == "ok" and r.get("message") else ""
            print(f"{r['case']}: {r['status']} ({when}) {vols}{extra}{qc_text(r)}{note}")
        elif r["status"] == "error":
            print(f"medseg: error: {r.get('message', '')}", file=sys.stderr)
        else:
            print(f"{r['case']}: {r['status']}: {r.get('message', '')}{qc_text(r)}")
    print(f"{len(rows) - len(failed)} of {len(rows)} cases done, {len(failed)} failed")
    if not failed:
        return EXIT_OK
    return EXIT_NOTHING_RAN if len(failed) == len(rows) else EXIT_SOME_FAILED


def qc_text(row: dict[str, Any]) -> str:
    """`` qc=ok`` or `` qc=warn: reason; reason`` for a summary row (empty without QC)."""
    if "qc" not in row:
        return ""
    return " qc=" + QC.from_dict({"status": row["qc"], "reasons": row.get("qc_reasons") or [],
                                  "checked": row.get("qc_checked") or []}).summary()


def instance_classes(items: list[str], model) -> list[int]:
    """Label values from values or names given to ``--instances`` (``model``: anything with
    ``labels`` name -> value and ``name``, e.g. a Segmenter or a Bundle)."""
    names = model.labels
    values = set(names.values()) - {0}
    out = []
    for item in items:
        value = int(item) if item.strip().lstrip("-").isdigit() else names.get(item)
        if value is None or value not in values:
            available = ", ".join(f"{n} ({v})" for n, v in sorted(names.items(),
                                                                 key=lambda kv: kv[1]) if v)
            raise MedsegError(f"--instances {item!r} is not a class of model {model.name!r}; "
                              f"available: {available}")
        out.append(int(value))
    return out


def add_instances(rows: list[dict[str, Any]], out_dir: str | Path, model,
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
            found = find_instances(labels, classes, label_names=model.label_names,
                                   offset=offset, min_voxels=min_voxels)
            write_instances(found, labels, out_dir, row["case"], model=model.name)
        except MedsegError as exc:
            row.update(status="error", message=f"instances: {exc}")
            continue
        row["instances"] = {model.label_names.get(c, str(c)): n
                            for c, n in found.counts().items()}
