"""Instance and panoptic output: split chosen classes into connected-component instances.

A semantic label map says "lesion here"; an instance map says "this lesion, that lesion".
:func:`find_instances` labels the connected components of each chosen class (face-connected
by default, like the built-in postprocessors) and returns

- an **instance map**: 0 outside the chosen classes, ``1..N`` one id per component, numbered
  class by class (ascending label value), largest component first within a class;
- a **panoptic map**: ``label * offset + index`` where ``index`` is the component's number
  within its class (``1..``); voxels of classes that are not split keep ``label * offset``
  (instance 0, "stuff"), background stays 0;
- a per-instance table: id, class, voxels, volume in mL, centroid in world millimetres (RAS+,
  the affine's convention) and the inclusive bounding box in voxel indices.

Pure numpy/scipy on a :class:`~medseg.volume.LabelMap`; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.errors import MedsegError
from medseg.volume import LabelMap

#: panoptic id = label * PANOPTIC_OFFSET + instance index within the class
PANOPTIC_OFFSET = 1000


@dataclass(frozen=True)
class Instance:
    """One connected component of one class."""

    instance_id: int
    label: int
    name: str
    #: number of the component within its class, 1 = largest
    index: int
    panoptic_id: int
    voxels: int
    volume_ml: float
    #: centre of mass in world mm (RAS+), 3 values also for 2D
    centroid_mm: tuple[float, float, float]
    #: inclusive voxel-index bounding box, one value per spatial axis
    bbox_min: tuple[int, ...]
    bbox_max: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["centroid_mm"] = list(self.centroid_mm)
        row["bbox_min"] = list(self.bbox_min)
        row["bbox_max"] = list(self.bbox_max)
        return row

    def to_row(self) -> dict[str, Any]:
        """Flat row for a CSV table (one column per coordinate)."""
        row: dict[str, Any] = {k: getattr(self, k) for k in
                               ("instance_id", "label", "name", "index", "panoptic_id",
                                "voxels", "volume_ml")}
        for axis, value in zip("xyz", self.centroid_mm, strict=True):
            row[f"centroid_{axis}_mm"] = round(value, 3)
        for axis, lo, hi in zip("ijk", self.bbox_min, self.bbox_max, strict=False):
            row[f"bbox_{axis}_min"] = lo
            row[f"bbox_{axis}_max"] = hi
        return row


@dataclass(frozen=True)
class Instances:
    """Instance map, panoptic map (both on the input's grid) and the per-instance table."""

    instance_map: LabelMap
    panoptic_map: LabelMap
    table: list[Instance]
    classes: tuple[int, ...]
    offset: int = PANOPTIC_OFFSET

    def rows(self) -> list[dict[str, Any]]:
        return [inst.to_row() for inst in self.table]

    def counts(self) -> dict[int, int]:
        """Number of instances per split class (0 for a class with none)."""
        out = dict.fromkeys(self.classes, 0)
        for inst in self.table:
            out[inst.label] += 1
        return out


def voxel_volume_ml(labels: LabelMap) -> float:
    """Volume of one voxel in mL (|det| of the affine's 3x3; 2D: area x nominal 1 mm)."""
    return abs(float(np.linalg.det(labels.affine[:3, :3]))) / 1000.0


def find_instances(labels: LabelMap, classes: Iterable[int], *,
                   label_names: Mapping[int, str] | None = None, connectivity: int = 1,
                   offset: int = PANOPTIC_OFFSET, min_voxels: int = 1) -> Instances:
    """Split each class in ``classes`` into connected components.

    ``connectivity`` is SciPy's: 1 = faces (6-neighbourhood in 3D, 4 in 2D), ``ndim`` = all
    neighbours. Components smaller than ``min_voxels`` are left out of the instance map and
    the table (their voxels keep ``label * offset`` in the panoptic map).
    """
    data = np.asarray(labels.data)
    ndim = data.ndim
    if not 1 <= connectivity <= ndim:
        raise MedsegError(f"connectivity must be 1..{ndim}, got {connectivity}")
    chosen = tuple(sorted({int(c) for c in classes}))
    if any(c <= 0 for c in chosen):
        raise MedsegError(f"instance classes must be positive label values, got {list(chosen)}")
    names = dict(label_names or {})
    structure = ndimage.generate_binary_structure(ndim, connectivity)
    voxel_ml = voxel_volume_ml(labels)
    instance_map = np.zeros(data.shape, dtype=np.int32)
    panoptic = data.astype(np.int64) * offset
    table: list[Instance] = []
    next_id = 1
    for c in chosen:
        mask = data == c
        if not mask.any():
            continue
        comp, n = ndimage.label(mask, structure=structure)
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        boxes = ndimage.find_objects(comp)
        # largest first; ties broken by the bounding box's first corner (deterministic)
        order = sorted(range(1, n + 1),
                       key=lambda i: (-int(sizes[i]), tuple(s.start for s in boxes[i - 1])))
        order = [i for i in order if sizes[i] >= min_voxels]
        if len(order) >= offset:
            raise MedsegError(f"class {c} has {len(order)} instances; the panoptic offset "
                              f"{offset} allows at most {offset - 1}")
        centroids = ndimage.center_of_mass(mask, comp, order) if order else []
        for index, (comp_id, centre) in enumerate(zip(order, centroids, strict=True), start=1):
            box = boxes[comp_id - 1]
            where = comp[box] == comp_id
            instance_map[box][where] = next_id
            panoptic[box][where] = c * offset + index
            world = labels.world_coordinates(np.asarray(centre)[None])[0]
            table.append(Instance(
                instance_id=next_id, label=c, name=names.get(c, str(c)), index=index,
                panoptic_id=c * offset + index, voxels=int(sizes[comp_id]),
                volume_ml=round(float(sizes[comp_id]) * voxel_ml, 6),
                centroid_mm=(float(world[0]), float(world[1]), float(world[2])),
                bbox_min=tuple(int(s.start) for s in box),
                bbox_max=tuple(int(s.stop) - 1 for s in box),
            ))
            next_id += 1
    if panoptic.max(initial=0) > np.iinfo(np.int32).max:
        raise MedsegError("panoptic ids do not fit in int32; use a smaller offset")
    return Instances(LabelMap(instance_map[None], labels.affine),
                     LabelMap(panoptic.astype(np.int32)[None], labels.affine), table, chosen,
                     offset)
