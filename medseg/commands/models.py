"""``medseg models``: every model found by name (bundled, MEDSEG_MODELS_DIR,
TotalSegmentator's folders) with its format and classes, then every model that can be pulled
(TotalSegmentator tasks, MONAI bundles) with its classes, folders present / missing / partial,
size on disk and licence. ``pull``, ``verify`` and ``import``: :mod:`.models_pull`."""

from __future__ import annotations

import json
from typing import Any

from medseg.commands import models_pull
from medseg.errors import MedsegError
from medseg.hub.install import mib
from medseg.hub.offers import Offer, offers
from medseg.io.display import count_text
from medseg.models.catalog import list_models, models_dirs, totalsegmentator_dir
from medseg.models.loading import describe_model
from medseg.registry import load_registry


def register(sub) -> None:
    p = sub.add_parser("models", help="list models usable by name with -m (any format)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
    models_pull.register(p.add_subparsers(dest="models_action", metavar="ACTION"))


def _offer_row(o: Offer) -> dict[str, Any]:
    return {"name": o.name, "format": o.kind, "pullable": o.pullable, "state": o.state,
            "classes": o.classes, "modality": o.modality, "size_bytes": o.size_on_disk,
            "licence": o.licence, "licence_url": o.licence_url,
            "folders": [{"folder": f.folder, "state": f.state, "why": f.why,
                         "size_bytes": f.size} for f in o.folders]}


def _print_offers(pullable: list[Offer]) -> None:
    print("\nPullable (`medseg models pull NAME`; weights in TotalSegmentator's folder, bundles "
          "in the models folder):")
    width = max(len(o.name) for o in pullable)
    for o in pullable:
        classes = count_text(o.classes, "class", "classes") if o.classes else ""
        if not o.pullable:
            print(f"  {o.name:<{width}}  {o.note or 'licence key needed'}, not pulled: "
                  f"{o.licence_url}")
            continue
        folders = ", ".join(f"{f.folder.split('_', 1)[0].removeprefix('Dataset')} {f.state}"
                            if f.folder.startswith("Dataset") else f.state for f in o.folders)
        size = mib(o.size_on_disk) if o.size_on_disk else "-"
        print(f"  {o.name:<{width}}  {classes:<12} {o.state:<8} {size:>10}  "
              f"[{folders}]  {o.licence}")


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
    pullable = offers()
    by_name = {r["name"]: r for r in rows}
    for o in pullable:  # a task already listed (its weights found) gets its state added
        if o.name in by_name:
            by_name[o.name].update({k: v for k, v in _offer_row(o).items() if k != "format"})
        else:
            rows.append(_offer_row(o))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    listed = [r for r in rows if "origin" in r]
    if not listed:
        searched = ", ".join(str(d) for d in [*models_dirs(), totalsegmentator_dir()])
        print(f"no models found (searched {searched})")
    width = max((len(r["name"]) for r in listed), default=0)
    fwidth = max((len(r["format"]) for r in listed), default=0)
    for r in listed:
        if "error" in r:
            what = f"error: {r['error']}"
        else:
            labels = r["labels"]
            shown = ", ".join(labels[:8]) + (f", ... ({len(labels)} classes)"
                                             if len(labels) > 8 else "")
            what = (f"[{r['modality']}] " if r.get("modality") else "") + shown
        print(f"{r['name']:<{width}}  {r['format']:<{fwidth}}  {what}")
    _print_offers(pullable)
    return 0
