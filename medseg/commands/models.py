"""``medseg models``: every model found by name (bundled, MEDSEG_MODELS_DIR,
TotalSegmentator's folders) with its format and classes."""

from __future__ import annotations

import json
from typing import Any

from medseg.errors import MedsegError
from medseg.models.catalog import list_models, models_dirs, totalsegmentator_dir
from medseg.models.loading import describe_model
from medseg.registry import load_registry


def register(sub) -> None:
    p = sub.add_parser("models", help="list models usable by name with -m (any format)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    registry = load_registry(args.plugins_dir, fresh=True)
    rows = []
    for entry in list_models(registry):
        row: dict[str, Any] = {"name": entry.name, "format": entry.format,
                               "origin": entry.origin, "path": str(entry.path)}
        try:
            info = describe_model(entry.path, registry)
            row["labels"] = [n for v, n in sorted(info.label_names.items()) if v != 0]
            row["modality"] = info.modality
        except MedsegError as exc:  # one unreadable model does not hide the others
            row["error"] = str(exc)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        searched = ", ".join(str(d) for d in [*models_dirs(), totalsegmentator_dir()])
        print(f"no models found (searched {searched})")
        return 0
    width = max(len(r["name"]) for r in rows)
    fwidth = max(len(r["format"]) for r in rows)
    for r in rows:
        if "error" in r:
            what = f"error: {r['error']}"
        else:
            labels = r["labels"]
            shown = ", ".join(labels[:8]) + (f", ... ({len(labels)} classes)"
                                             if len(labels) > 8 else "")
            what = (f"[{r['modality']}] " if r.get("modality") else "") + shown
        print(f"{r['name']:<{width}}  {r['format']:<{fwidth}}  {what}")
    return 0
