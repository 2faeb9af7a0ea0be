"""``medseg info`` on a MONAI bundle: its metadata and every item of its configs that would
run code, read as data only (nothing is evaluated, instantiated or imported from the bundle;
YAML with its aliases bounded)."""

from __future__ import annotations

from pathlib import Path

from medseg.models.base import ModelInfo
from medseg.models.monai_bundle.import_path import importable_modules, off_sys_path
from medseg.models.monai_bundle.layout import bundle_info, find_layout, read_config
from medseg.models.monai_bundle.trust import Code, bundle_code, printable


def code_listing(items: list[Code]) -> list[str]:
    """``id: text`` for every item, whole, control characters escaped."""
    return [f"{printable(code.where)}: {printable(code.text)}" for code in items]


def describe_monai_bundle(path: Path) -> ModelInfo:
    """Metadata only: labels, version, spacing and patch size as the files state them, and
    the items that need trust (``runs_code``: the first; ``code``: all of them), and the
    Python modules its folder holds (importable only when the bundle is trusted)."""
    layout = find_layout(path, need_weights=False)
    meta = read_config(layout.metadata)
    config = read_config(layout.inference)
    with off_sys_path(layout.root):  # MONAI may be imported (and probe modules) here
        items = bundle_code(layout, config, meta)
    return bundle_info(layout, meta, config,
                       {"runs_code": printable(items[0].text) if items else None,
                        "code": code_listing(items),
                        "modules": importable_modules(layout.root)})
