"""TotalSegmentator's tasks as medseg knows them: which nnU-Net dataset folders each runs, on
which grid, with which classes, under which licence, and where the weights live.

The facts are TotalSegmentator 2.18.0's: dataset ids, trainers, target spacings and crop steps
from ``map_tasks_config.py`` and ``python_api.py``; the class names and ids, the part maps and
the weight release of every dataset come from ``totalseg_tables.json`` beside this module,
generated from TotalSegmentator's own files by ``sample_data/scripts/make_totalseg_tables.py``.
A model is named ``totalseg:<task>`` (for example ``totalseg:total_fast``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from medseg.errors import InputError

PREFIX = "totalseg:"
TABLES_FILE = Path(__file__).with_name("totalseg_tables.json")
#: where every open release is downloaded from (``<base>/<tag>/<folder>.zip``)
RELEASE_BASE_URL = "https://github.com/wasserth/TotalSegmentator/releases/download"
OPEN_LICENCE = "Apache-2.0"
OPEN_LICENCE_URL = "https://github.com/wasserth/TotalSegmentator/blob/master/LICENSE"
#: where TotalSegmentator's licensed (``commercial_models``) tasks are licensed
LICENSED_URL = "https://backend.totalsegmentator.com/license-academic/"
#: nnU-Net's tile step for the ``total`` and ``total_mr`` families, 0.5 for the rest
#: (``nnunet.py: nnUNet_predict_image``)
TOTAL_TILE_STEP = 0.8
DEFAULT_TILE_STEP = 0.5
#: the crop margin TotalSegmentator uses around a locator mask (``roi_subset`` and the crop of
#: subtasks located by the ``total`` models), in mm per axis
LOCATOR_MARGIN_MM = (20.0, 20.0, 20.0)


@dataclass(frozen=True)
class WeightsRelease:
    """One nnU-Net dataset folder as TotalSegmentator ships it."""

    dataset_id: int
    #: exact folder name, e.g. ``Dataset297_TotalSegmentator_total_3mm_1559subj``
    folder: str
    #: GitHub release tag it is downloaded from, e.g. ``v2.0.0-weights``
    tag: str
    trainer: str
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"

    @property
    def trainer_folder(self) -> str:
        """``<trainer>__<plans>__<configuration>``, inside :attr:`folder`."""
        return f"{self.trainer}__{self.plans}__{self.configuration}"

    @property
    def url(self) -> str:
        """The release zip's address (the base may be replaced by a mirror)."""
        return f"{RELEASE_BASE_URL}/{self.tag}/{self.folder}.zip"

    def path(self, root: Path | None = None) -> Path:
        """The dataset folder under ``root`` (default :func:`weights_dir`)."""
        return (root if root is not None else weights_dir()) / self.folder

    def checkpoint(self, root: Path | None = None, fold: int = 0) -> Path:
        return (self.path(root) / self.trainer_folder / f"fold_{fold}"
                / "checkpoint_final.pth")


@dataclass(frozen=True)
class Locator:
    """A coarse model run first to find where to crop (TotalSegmentator's ``crop_model``)."""

    release: WeightsRelease
    #: target spacing in mm it runs at
    spacing: float
    #: the class map its output is read with (``total`` or ``total_mr``)
    classes_of: str
    #: nnU-Net tile step of that run
    tile_step: float = TOTAL_TILE_STEP


@dataclass(frozen=True)
class Task:
    """One task as TotalSegmentator runs it."""

    #: e.g. ``total_fast`` (the model name is ``totalseg:total_fast``)
    name: str
    #: run and merged in this order (a later part overwrites an earlier one)
    parts: tuple[WeightsRelease, ...]
    #: the model ``--roi-subset`` locates the requested classes with (None: not supported)
    roi_locator: WeightsRelease | None
    #: target spacing in mm (x, y, z) TotalSegmentator resamples to; None: no resampling
    spacing: tuple[float, float, float] | None
    #: global class ids -> names (the values of the output mask)
    classes: dict[int, str]
    licence: str
    licence_url: str
    #: True: TotalSegmentator needs a licence key for it; medseg refuses it
    commercial: bool
    modality: str
    #: TotalSegmentator's task name (``total`` for ``total_fast``...)
    ts_task: str = ""
    #: TotalSegmentator's command line for the same run
    ts_command: str = ""
    #: classes of the locator's output the image is cropped to before the parts run
    crop: tuple[str, ...] = ()
    #: the locator used for ``crop`` and for ``--roi-subset``
    crop_locator: Locator | None = None
    roi_locator_spacing: float | None = None
    tile_step: float = DEFAULT_TILE_STEP
    #: part dataset id -> {part-local label: global label}
    part_labels: dict[int, dict[int, int]] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return PREFIX + self.name

    @property
    def locator(self) -> Locator | None:
        """The locator ``--roi-subset`` runs (None when the task has no ``roi_subset``)."""
        if self.roi_locator is None or self.roi_locator_spacing is None:
            return None
        return Locator(self.roi_locator, self.roi_locator_spacing,
                       "total_mr" if self.modality == "MR" else "total")

    def parts_for(self, names: set[str] | None) -> tuple[WeightsRelease, ...]:
        """The parts holding any of ``names`` (all parts when ``names`` is None)."""
        if names is None or len(self.parts) == 1:
            return self.parts
        keep = []
        for part in self.parts:
            held = {self.classes[g] for g in self.part_labels.get(part.dataset_id, {}).values()}
            if held & names:
                keep.append(part)
        return tuple(keep)


@lru_cache(maxsize=1)
def tables() -> dict[str, Any]:
    """TotalSegmentator's data (class maps, parts, releases, SNOMED codes)."""
    return json.loads(TABLES_FILE.read_text())


def release(dataset_id: int, trainer: str) -> WeightsRelease:
    entry = tables()["releases"][str(dataset_id)]
    return WeightsRelease(dataset_id, entry["folder"], entry["tag"], trainer)


def class_map(ts_task: str) -> dict[int, str]:
    return {int(k): v for k, v in tables()["class_maps"][ts_task].items()}


def _part_labels(ts_task: str, ids: tuple[int, ...]) -> dict[int, dict[int, int]]:
    inverse = {v: k for k, v in class_map(ts_task).items()}
    out = {}
    for dataset_id in ids:
        part = tables()["parts"][str(dataset_id)]
        out[dataset_id] = {int(k): inverse[v] for k, v in part["classes"].items()}
    return out


def _build() -> dict[str, Task]:
    total_part_ids = (291, 292, 293, 294, 295)
    mr_part_ids = (850, 851)
    t_1500 = "nnUNetTrainerNoMirroring"
    t_4000 = "nnUNetTrainer_4000epochs_NoMirroring"
    t_2000 = "nnUNetTrainer_2000epochs_NoMirroring"
    r298 = release(298, t_4000)
    r297 = release(297, t_4000)
    r852 = release(852, t_2000)
    ct_locator = Locator(r298, 6.0, "total")
    ct_robust_locator = Locator(r297, 3.0, "total")
    open_ = {"licence": OPEN_LICENCE, "licence_url": OPEN_LICENCE_URL, "commercial": False}

    def total(name: str, parts: tuple[WeightsRelease, ...], mm: float, flag: str) -> Task:
        return Task(name=name, parts=parts, roi_locator=r298, spacing=(mm, mm, mm),
                    classes=class_map("total"), modality="CT", ts_task="total",
                    ts_command=f"TotalSegmentator -i CT -o OUT --ml{flag}",
                    roi_locator_spacing=6.0, tile_step=TOTAL_TILE_STEP,
                    part_labels=_part_labels("total", tuple(p.dataset_id for p in parts))
                    if len(parts) > 1 else {}, **open_)

    def total_mr(name: str, parts: tuple[WeightsRelease, ...], mm: float, flag: str) -> Task:
        return Task(name=name, parts=parts, roi_locator=r852, spacing=(mm, mm, mm),
                    classes=class_map("total_mr"), modality="MR", ts_task="total_mr",
                    ts_command=f"TotalSegmentator -i MR -o OUT --ml --task total_mr{flag}",
                    roi_locator_spacing=3.0, tile_step=TOTAL_TILE_STEP,
                    part_labels=_part_labels("total_mr", tuple(p.dataset_id for p in parts))
                    if len(parts) > 1 else {}, **open_)

    tasks = [
        total("total", tuple(release(i, t_1500) for i in total_part_ids), 1.5, ""),
        total("total_fast", (r297,), 3.0, " --fast"),
        total("total_fastest", (r298,), 6.0, " --fastest"),
        total_mr("total_mr", tuple(release(i, t_2000) for i in mr_part_ids), 1.5, ""),
        total_mr("total_mr_fast", (r852,), 3.0, " --fast"),
        Task(name="body", parts=(release(299, "nnUNetTrainer"),), roi_locator=None,
             spacing=(1.5, 1.5, 1.5), classes=class_map("body"), modality="CT",
             ts_task="body", ts_command="TotalSegmentator -i CT -o OUT --ml --task body",
             **open_),
        Task(name="body_fast", parts=(release(300, "nnUNetTrainer"),), roi_locator=None,
             spacing=(6.0, 6.0, 6.0), classes=class_map("body"), modality="CT",
             ts_task="body", ts_command="TotalSegmentator -i CT -o OUT --ml --task body --fast",
             **open_),
        # robust_crop: the 3 mm model locates the lungs
        Task(name="lung_vessels",
             parts=(release(117, "nnUNetTrainerSkeletonRecall"),), roi_locator=None,
             spacing=(0.703125, 0.703125, 1.0), classes=class_map("lung_vessels"),
             modality="CT", ts_task="lung_vessels",
             ts_command="TotalSegmentator -i CT -o OUT --ml --task lung_vessels",
             crop=("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
                   "lung_middle_lobe_right", "lung_lower_lobe_right"),
             crop_locator=ct_robust_locator, **open_),
        Task(name="liver_vessels", parts=(release(8, "nnUNetTrainer"),), roi_locator=None,
             spacing=None, classes=class_map("liver_vessels"), modality="CT",
             ts_task="liver_vessels",
             ts_command="TotalSegmentator -i CT -o OUT --ml --task liver_vessels",
             crop=("liver",), crop_locator=ct_locator, **open_),
    ]
    return {t.name: t for t in tasks}


TASKS: dict[str, Task] = _build()


def commercial_tasks() -> tuple[str, ...]:
    """TotalSegmentator's tasks that need its licence key (``commercial_models``)."""
    return tuple(tables()["commercial_tasks"])


def task_name(model_name: str) -> str:
    """``totalseg:total_fast`` -> ``total_fast`` (the name itself when it has no prefix)."""
    return model_name[len(PREFIX):] if model_name.startswith(PREFIX) else model_name


def is_task_name(model_name: str) -> bool:
    """Whether ``model_name`` names a TotalSegmentator task (open or licensed)."""
    if not model_name.startswith(PREFIX):
        return False
    name = task_name(model_name)
    return name in TASKS or name in commercial_tasks()


def get_task(name: str) -> Task:
    """The task called ``name`` (with or without ``totalseg:``); a licensed one is refused."""
    bare = task_name(name)
    if bare in TASKS:
        return TASKS[bare]
    if bare in commercial_tasks():
        raise InputError(PREFIX + bare, "this TotalSegmentator task needs a licence key; "
                                        "medseg runs only the openly licensed tasks and never "
                                        f"sends a key anywhere (licences: {LICENSED_URL})")
    raise InputError(PREFIX + bare, f"unknown TotalSegmentator task (known: "
                                    f"{', '.join(sorted(TASKS))})")


def required_releases(task_name: str) -> tuple[WeightsRelease, ...]:
    """Every dataset folder ``task_name`` can need: its parts, then its locators, each once."""
    task = get_task(task_name)
    out: list[WeightsRelease] = []
    for r in (*task.parts, task.crop_locator.release if task.crop_locator else None,
              task.roi_locator):
        if r is not None and all(r.folder != o.folder for o in out):
            out.append(r)
    return tuple(out)


def weights_dir() -> Path:
    """Where TotalSegmentator keeps its weights: ``TOTALSEG_WEIGHTS_PATH``, else
    ``TOTALSEG_HOME_DIR/nnunet/results``, else ``~/.totalsegmentator/nnunet/results``."""
    direct = os.environ.get("TOTALSEG_WEIGHTS_PATH", "").strip()
    if direct:
        return Path(direct).expanduser()
    home = os.environ.get("TOTALSEG_HOME_DIR", "").strip()
    if home:
        base = Path(home).expanduser()
    else:  # as TotalSegmentator: a home of "/" (containers) means /tmp
        user = Path.home()
        base = (Path("/tmp") if str(user) == "/" else user) / ".totalsegmentator"
    return base / "nnunet" / "results"


def segment_codes(names: set[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """TotalSegmentator's SNOMED CT codes per class name (``category``, ``type`` and
    ``modifier`` as ``[scheme, value, meaning]``), for the DICOM SEG."""
    codes = tables()["snomed"]
    return {n: dict(c) for n, c in codes.items() if names is None or n in names}
