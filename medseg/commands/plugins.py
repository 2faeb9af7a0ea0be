"""``medseg plugins``: every registered component and the plugin that provides it."""

from __future__ import annotations

import json

from medseg.registry import load_registry

PLURAL = {"loss": "losses"}


def register(sub) -> None:
    p = sub.add_parser("plugins", help="list registered architectures, losses, readers, ...")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    rows = load_registry(args.plugins_dir, fresh=True).describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows) if rows else 4
    pwidth = max(len(r["plugin"]) for r in rows) if rows else 6
    kind = None
    for r in rows:
        if r["kind"] != kind:
            kind = r["kind"]
            print(f"{PLURAL.get(kind, kind + 's')}:")
        print(f"  {r['name']:<{width}}  {r['plugin']:<{pwidth}}  {r['description']}")
    return 0
