"""``medseg plugins``: every registered component and the plugin that provides it;
``medseg plugins new NAME``: write a ready-to-install plugin skeleton."""

from __future__ import annotations

import json

from medseg.devtools.scaffold import create_plugin, plugin_files
from medseg.evaluation.metrics import CLASS_METRICS, METRIC_INFO, SEMANTIC_METRICS
from medseg.registry import load_registry

PLURAL = {"loss": "losses"}


def register(sub) -> None:
    p = sub.add_parser("plugins", help="list registered architectures, losses, readers, ...; "
                                       "'plugins new NAME' writes a plugin skeleton")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="list registered components (the default)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    new = actions.add_parser(
        "new", help="write a ready-to-install plugin package (pyproject with the medseg entry "
                    "point, an architecture, a loss, a postprocessor and a test)")
    new.add_argument("name", help="distribution name, e.g. medseg-acme")
    new.add_argument("-o", "--output", default=".", help="parent folder (default: current)")
    new.add_argument("--force", action="store_true", help="write into an existing folder")
    new.set_defaults(func=run_new)


def run(args) -> int:
    rows = load_registry(args.plugins_dir, fresh=True).describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    # the evaluation's built-in metrics first in the metrics section, then plugin metrics
    builtin = [{"kind": "metric", "name": name, "plugin": "medseg (built in)",
                "description": METRIC_INFO[name][2] + (" (per image, background included)"
                                                       if name in SEMANTIC_METRICS else "")}
               for name in (*CLASS_METRICS, *SEMANTIC_METRICS)]
    rows = [r for r in rows if r["kind"] != "metric"] + builtin + [
        r for r in rows if r["kind"] == "metric"]
    width = max(len(r["name"]) for r in rows) if rows else 4
    pwidth = max(len(r["plugin"]) for r in rows) if rows else 6
    kind = None
    for r in rows:
        if r["kind"] != kind:
            kind = r["kind"]
            print(f"{PLURAL.get(kind, kind + 's')}:")
        print(f"  {r['name']:<{width}}  {r['plugin']:<{pwidth}}  {r['description']}")
    return 0


def run_new(args) -> int:

    target = create_plugin(args.name, args.output, force=args.force)
    print(f"wrote plugin {args.name!r} to {target}:")
    for rel in sorted(plugin_files(args.name)):
        print(f"  {rel}")
    print("next: pip install -e " + str(target) + " && python -m pytest " + str(target))
    return 0
