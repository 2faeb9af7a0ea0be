"""YAML read as plain data, with its aliases bounded.

PyYAML's safe loader builds no object but plain data, yet an alias repeats a whole subtree
by reference: nine nested levels of nine aliases (a few hundred bytes, the "billion laughs")
become 9^9 nodes for anything that walks the result. :class:`BoundedSafeLoader` first reads
the document's parse events (libyaml's C parser when PyYAML has it; no node is built) and
counts, for every alias, the nodes it repeats, subtrees expanded: one pass, linear in the
file. More than :data:`MAX_ALIASES` aliases, aliases adding more than :data:`MAX_ALIAS_NODES`
nodes, or an alias to a node that contains it, is refused with :class:`YamlLimitError`
before anything is composed. A large document without aliases is bounded by the caller's
file size limit alone.
"""

from __future__ import annotations

from typing import Any

import yaml

#: aliases one document may hold (MONAI configs rarely use any)
MAX_ALIASES = 1000
#: nodes the aliases of one document may add, every alias followed
MAX_ALIAS_NODES = 100_000
#: libyaml's loader when PyYAML was built with it (about ten times faster), else PyYAML's own
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimitError(ValueError):
    """A YAML document over the alias limits (message: what was over, one line)."""


def check_aliases(text: str, max_aliases: int = MAX_ALIASES,
                  max_nodes: int = MAX_ALIAS_NODES) -> int:
    """The nodes the aliases of ``text`` add once expanded; :class:`YamlLimitError` as soon as
    a limit is passed or an alias names a node still open (a node that would contain itself).
    An undefined alias is left to the loader, which reports it."""
    sizes: dict[str, int] = {}  # anchor -> nodes of its subtree, aliases expanded
    open_nodes: list[list[Any]] = []  # [anchor, nodes so far] per open sequence or mapping
    aliases = added = 0

    def finished(anchor: str | None, size: int) -> None:
        if anchor is not None:
            sizes[anchor] = size
        if open_nodes:
            open_nodes[-1][1] += size

    for event in yaml.parse(text, Loader=_SAFE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > max_aliases:
                raise YamlLimitError(f"more than {max_aliases} YAML aliases")
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                raise YamlLimitError("YAML alias refers to a node that contains it")
            size = sizes.get(event.anchor, 0)
            added += size
            if added > max_nodes:
                raise YamlLimitError(f"YAML aliases expand to more than {max_nodes} "
                                     f"extra nodes")
            finished(None, size)
        elif isinstance(event, yaml.ScalarEvent):
            finished(event.anchor, 1)
        elif isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([event.anchor, 1])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_nodes.pop()
            finished(anchor, size)
    return added


class BoundedSafeLoader(_SAFE_LOADER):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader (libyaml's when available) that refuses, with
    :class:`YamlLimitError`, a document over :data:`MAX_ALIASES` or :data:`MAX_ALIAS_NODES`
    before composing it."""

    def __init__(self, stream: Any) -> None:
        text = stream.read() if hasattr(stream, "read") else stream
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        check_aliases(text)
        super().__init__(text)


def load_yaml_data(text: str) -> Any:
    """One YAML document as plain data, within the alias limits."""
    return yaml.load(text, Loader=BoundedSafeLoader)  # a SafeLoader subclass: plain data only
