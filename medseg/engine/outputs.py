"""Writing a segmentation's results beside each other: mask, volumes table, probabilities,
and optionally instance / panoptic maps with their per-instance table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from medseg.engine.instances import Instances
from medseg.engine.segmenter import Segmentation
from medseg.io import write_image
from medseg.io.atomic import write_text_atomic
from medseg.io.csvsafe import safe_dict
from medseg.qc import QC
from medseg.volume import Volume


def volumes_csv(rows: list[dict[str, Any]], qc: QC | None = None) -> str:
    """One row per class; ``qc`` is the case's flag on every row (so a filter on ``warn``
    keeps every row of a doubtful case) and ``qc_reasons`` the reasons about that class, then
    those about the whole image."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["label", "name", "voxels", "volume_ml", "qc",
                                             "qc_reasons"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(safe_dict({**r, "qc": qc.status if qc else "",
                                "qc_reasons": "; ".join(qc.reasons_for(r["name"])) if qc else ""})
                     for r in rows)
    return buf.getvalue()


def output_paths(out_dir: Path, case: str) -> dict[str, Path]:
    return {
        "mask": out_dir / f"{case}.nii.gz",
        "volumes_json": out_dir / f"{case}_volumes.json",
        "volumes_csv": out_dir / f"{case}_volumes.csv",
        "probabilities": out_dir / f"{case}_probabilities.nii.gz",
        "dicom_seg": out_dir / f"{case}_seg.dcm",
        "instances": out_dir / f"{case}_instances.nii.gz",
        "panoptic": out_dir / f"{case}_panoptic.nii.gz",
        "instances_csv": out_dir / f"{case}_instances.csv",
        "instances_json": out_dir / f"{case}_instances.json",
    }


def instances_csv(instances: Instances) -> str:
    rows = instances.rows()
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["instance_id", "label", "name", "index", "panoptic_id",
                                         "voxels", "volume_ml"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(safe_dict(r) for r in rows)
    return buf.getvalue()


def write_instances(instances: Instances, image: Volume, out_dir: str | Path, case: str,
                    *, model: str = "") -> dict[str, Path]:
    """Write ``{case}_instances.nii.gz`` / ``_panoptic.nii.gz`` (on ``image``'s grid) and the
    per-instance table as ``{case}_instances.csv`` and ``.json``."""
    out_dir = Path(out_dir)
    paths = output_paths(out_dir, case)
    written: dict[str, Path] = {}
    write_text_atomic(paths["instances_json"], json.dumps(
        {"case": case, "model": model, "classes": list(instances.classes),
         "panoptic_offset": instances.offset,
         "instances": [inst.to_dict() for inst in instances.table]}, indent=2) + "\n")
    written["instances_json"] = paths["instances_json"]
    write_text_atomic(paths["instances_csv"], instances_csv(instances))
    written["instances_csv"] = paths["instances_csv"]
    written["panoptic"] = write_image(instances.panoptic_map, paths["panoptic"], reference=image)
    written["instances"] = write_image(instances.instance_map, paths["instances"],
                                       reference=image)
    return written


def write_segmentation(result: Segmentation, image: Volume, out_dir: str | Path, case: str,
                       *, model: str = "") -> dict[str, Path]:
    """Write the mask (on ``image``'s grid), volumes JSON/CSV and optional probabilities.

    The mask is written last, so its presence marks a finished case (used to resume).
    """
    out_dir = Path(out_dir)
    paths = output_paths(out_dir, case)
    rows = result.volumes()
    written: dict[str, Path] = {}
    write_text_atomic(paths["volumes_json"], json.dumps(
        {"case": case, "model": model, "spacing_mm": list(image.spacing), "volumes": rows,
         "qc": result.qc.to_dict() if result.qc else None}, indent=2) + "\n")
    written["volumes_json"] = paths["volumes_json"]
    write_text_atomic(paths["volumes_csv"], volumes_csv(rows, result.qc))
    written["volumes_csv"] = paths["volumes_csv"]
    if result.probabilities is not None:
        written["probabilities"] = write_image(result.probabilities, paths["probabilities"],
                                               reference=image)
    written["mask"] = write_image(result.labels, paths["mask"], reference=image,
                                  label_names=result.label_names)
    return written
