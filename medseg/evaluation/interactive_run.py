"""Interactive evaluation of a cohort: images paired with references, every class clicked on,
the figures written as ``clicks.csv``, ``cases.csv``, ``summary.csv`` and ``summary.json``.

Pairing (:func:`pair_inputs`): files given one by one pair in the order given (image ``i`` with
reference ``i``); folders pair by case name (``case_0000.nii.gz`` with ``case.nii.gz``). Every
pair is checked before the first click (:func:`check_pair`): both readable, the reference an
integer label map on the image's exact grid, not empty; each problem is one
:class:`~medseg.errors.InputError` naming the file. The protocol and its figures are those of
:mod:`medseg.evaluation.interactive`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from medseg.engine.batch import expand_inputs
from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError, MedsegError
from medseg.evaluation.classes import ClassGroups, names_from_dataset_json, names_from_file
from medseg.evaluation.interactive import (
    CLICK_COLUMNS,
    ClickProtocol,
    ObjectTrace,
    case_columns,
    case_rows,
    class_masks,
    click_case,
    click_rows,
    summarize,
)
from medseg.evaluation.intervals import DEFAULT_STATS, StatsOptions
from medseg.evaluation.report.files import json_safe, write_csv
from medseg.evaluation.stats import STATS
from medseg.io import read_image, read_label_map
from medseg.io.atomic_folder import atomic_folder
from medseg.io.names import LABEL_SUFFIXES, case_name
from medseg.volume import LabelMap, Volume

#: the files :func:`write_interactive` writes
FILES = ("clicks.csv", "cases.csv", "summary.csv", "summary.json")


@dataclass
class InteractiveResult:
    model: str
    protocol: ClickProtocol
    stats: StatsOptions
    pairs: list[tuple[str, Path, Path]]
    traces: list[ObjectTrace]
    summary: dict[str, Any]


def _refs(paths: Sequence[Path]) -> list[Path]:
    """Reference files: a folder stands for its label maps."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                          and case_name(f, LABEL_SUFFIXES) is not None)
        else:
            out.append(p)
    return out


def pair_inputs(images: Sequence[str | Path], refs: Sequence[str | Path]
                ) -> list[tuple[str, Path, Path]]:
    """(case, image, reference) triples: files given one by one pair in order; when a folder
    or a pattern is given, images and references pair by case name."""
    if not images:
        raise MedsegError("no images given")
    if not refs:
        raise MedsegError("no reference given (--ref)")
    ref_paths = [Path(r) for r in refs]
    for r in ref_paths:
        if not r.exists():
            raise InputError(r, "file not found")
    cases = expand_inputs(images)
    for c in cases:
        if c.error:
            raise InputError(c.path, c.error)
    ref_files = _refs(ref_paths)
    one_by_one = all(Path(i).is_file() for i in images) and all(r.is_file() for r in ref_paths)
    if one_by_one:
        if len(cases) != len(ref_files):
            raise MedsegError(f"{len(cases)} image(s) but {len(ref_files)} reference(s): "
                              "give one --ref file per image, in the same order")
        return [(c.name, c.path, r) for c, r in zip(cases, ref_files, strict=True)]
    by_name = {case_name(r, LABEL_SUFFIXES, bare=True): r for r in ref_files}
    missing = [c for c in cases if c.name not in by_name]
    if missing:
        raise InputError(missing[0].path, f"no reference for case {missing[0].name!r} among "
                                          "the --ref files")
    return [(c.name, c.path, by_name[c.name]) for c in cases]


def check_pair(image_path: Path, ref_path: Path) -> tuple[Volume, LabelMap]:
    """Read one pair; the reference must be a non-empty label map on the image's grid."""
    image = read_image(image_path)
    ref = read_label_map(ref_path)
    if not image.same_grid(ref):
        sp = "x".join(f"{s:.3g}" for s in ref.spacing)
        isp = "x".join(f"{s:.3g}" for s in image.spacing)
        raise InputError(ref_path, f"is not on the grid of {image_path} (reference "
                                   f"{'x'.join(map(str, ref.spatial_shape))} at {sp} mm, image "
                                   f"{'x'.join(map(str, image.spatial_shape))} at {isp} mm, "
                                   "or another origin/direction)")
    if not np.any(ref.data):
        raise InputError(ref_path, "the reference is empty: nothing to click on")
    return image, ref


def default_names(ref_path: Path) -> dict[int, str]:
    """Class names of a reference: its header (medseg's), else the dataset.json near it."""
    return names_from_file(ref_path) or names_from_dataset_json(ref_path.parent)


def evaluate_interactive(segmenter: Segmenter, pairs: Sequence[tuple[str, Path, Path]],
                         protocol: ClickProtocol | None = None,
                         classes: Mapping[int, str] | ClassGroups | None = None, *,
                         stats: StatsOptions | None = None,
                         progress: bool | None = None) -> InteractiveResult:
    """Click on every class of every pair (all pairs are checked first); ``progress``: a tqdm
    bar over the clicks of all objects (None: on a terminal)."""
    protocol = protocol or ClickProtocol()
    stats = stats or DEFAULT_STATS
    if not segmenter.promptable:
        raise MedsegError(f"model {segmenter.name!r} takes no prompts: interactive evaluation "
                          "needs a promptable model")
    n_objects = 0
    for _, image_path, ref_path in pairs:
        _, ref = check_pair(image_path, ref_path)
        found = sum(bool(m.any()) for _, _, m in class_masks(ref.data, classes))
        if not found:
            raise InputError(ref_path, "holds none of the classes asked for")
        n_objects += found
    traces: list[ObjectTrace] = []
    bar = tqdm(total=n_objects * protocol.clicks, desc="clicks", unit="click",
               disable=None if progress is None else not progress)
    try:
        for case, image_path, ref_path in pairs:
            image, ref = check_pair(image_path, ref_path)
            traces += click_case(segmenter, image, ref, protocol, classes, case=case,
                                 names=default_names(ref_path), where=str(image_path),
                                 on_click=bar.update)
    finally:
        bar.close()
    return InteractiveResult(segmenter.name, protocol, stats, list(pairs), traces,
                             summarize(traces, protocol, stats))


def summary_rows(result: InteractiveResult) -> list[dict[str, Any]]:
    """One row per class and figure (``summary.csv``)."""
    return [{"class": name, "labels": item["labels"], "figure": fig, **stats}
            for name, item in result.summary.items()
            for fig, stats in item["metrics"].items()]


def write_interactive(result: InteractiveResult, folder: str | Path) -> list[Path]:
    """Write the four files into ``folder`` as a whole (an interrupted run leaves the old
    folder, or none)."""
    protocol = result.protocol
    document = {
        "model": result.model,
        "protocol": protocol.record(),
        "stats": result.stats.record(),
        "cases": [{"case": c, "image": str(i), "reference": str(r)}
                  for c, i, r in result.pairs],
        "classes": result.summary,
        "objects": case_rows(result.traces, protocol),
    }
    with atomic_folder(folder, marker="INCOMPLETE", marker_text="written by process {pid}\n",
                       step="interactive evaluation") as build:
        write_csv(build / "clicks.csv", click_rows(result.traces), CLICK_COLUMNS)
        write_csv(build / "cases.csv", case_rows(result.traces, protocol),
                  case_columns(protocol))
        write_csv(build / "summary.csv", summary_rows(result),
                  ["class", "labels", "figure", *STATS])
        (build / "summary.json").write_text(json.dumps(json_safe(document), indent=2) + "\n",
                                            encoding="utf-8")
    return [Path(folder) / f for f in FILES]
