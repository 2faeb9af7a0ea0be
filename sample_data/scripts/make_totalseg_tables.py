"""Regenerate ``medseg/models/totalseg/totalseg_tables.json`` from TotalSegmentator's own files.

The class names and ids, the part maps, the weight releases and the per-class SNOMED CT codes
are TotalSegmentator's data; medseg stores them as data, never as code. Usage::

    pip download --no-deps TotalSegmentator==2.18.0 -d /tmp/ts && unzip /tmp/ts/*.whl -d /tmp/ts/src
    python sample_data/scripts/make_totalseg_tables.py /tmp/ts/src/totalsegmentator

Only the literal top-level assignments of the two data modules (``map_to_binary.py``,
``map_tasks_config.py``) are read, with ``ast.literal_eval``: nothing of TotalSegmentator is
imported or executed.
"""

from __future__ import annotations

import ast
import csv
import json
import sys
from pathlib import Path

VERSION = "2.18.0"
#: the tasks medseg offers by name, and the class maps their pipeline needs
TASKS = ("total", "total_mr", "body", "lung_vessels", "liver_vessels")
PART_MAPS = {"total": ("class_map_5_parts", "map_taskid_to_partname_ct"),
             "total_mr": ("class_map_parts_mr", "map_taskid_to_partname_mr")}
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "medseg" / "models" / "totalseg" / "totalseg_tables.json"


def _namespace(path: Path) -> dict:
    """Every ``NAME = <literal>`` at the top of ``path``."""
    ns: dict = {}
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            value = _literal(node.value)
            if value is not None:
                ns[node.targets[0].id] = value
    return ns


def _literal(node: ast.expr):
    """A literal, or a dict of its literal entries (an entry referring to another table, such
    as ``"test": class_map["test"]``, is left out); None for anything else."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        if not isinstance(node, ast.Dict):
            return None
    out = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:
            continue
        try:
            out[ast.literal_eval(key)] = ast.literal_eval(value)
        except ValueError:
            continue
    return out


def _code(row: dict, prefix: str) -> list[str] | None:
    value = row[f"{prefix}.CodeValue"].strip()
    if not value:
        return None
    return [row[f"{prefix}.CodingSchemeDesignator"].strip(), value,
            row[f"{prefix}.CodeMeaning"].strip()]


def main(src: Path) -> None:
    binary = _namespace(src / "map_to_binary.py")
    config = _namespace(src / "map_tasks_config.py")
    class_map = binary["class_map"]
    parts = {}
    for task, (maps_name, ids_name) in PART_MAPS.items():
        maps, ids = binary[maps_name], binary[ids_name]
        for dataset_id, part_name in ids.items():
            if part_name in maps:
                parts[str(dataset_id)] = {"task": task, "part": part_name,
                                          "classes": {str(k): v for k, v in
                                                      sorted(maps[part_name].items())}}
    releases = {str(k): {"folder": v["foldername"], "tag": v.get("version")}
                for k, v in config["TASK_ID_WEIGHTS_CONFIGS"].items()
                if isinstance(k, int) and "foldername" in v}
    snomed = {}
    with open(src / "resources" / "totalsegmentator_snomed_mapping.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            entry = {"category": _code(row, "SegmentedPropertyCategoryCodeSequence"),
                     "type": _code(row, "SegmentedPropertyTypeCodeSequence")}
            modifier = _code(row, "SegmentedPropertyTypeModifierCodeSequence")
            if modifier:
                entry["modifier"] = modifier
            snomed[row["Structure"].strip()] = entry
    wanted = {n for t in TASKS for n in class_map[t].values()}
    tables = {
        "source": f"TotalSegmentator {VERSION}: map_to_binary.py, map_tasks_config.py, "
                  "resources/totalsegmentator_snomed_mapping.csv",
        "version": VERSION,
        "class_maps": {t: {str(k): v for k, v in sorted(class_map[t].items())} for t in TASKS},
        "parts": parts,
        "releases": releases,
        "commercial_tasks": sorted(binary["commercial_models"]),
        "snomed": {n: snomed[n] for n in sorted(wanted) if n in snomed},
    }
    OUT.write_text(json.dumps(tables, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT} ({len(tables['snomed'])} of {len(wanted)} classes with SNOMED codes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
