"""YAML read as plain data, with its aliases bounded.

PyYAML's safe loader builds no object but plain data, yet an alias repeats a whole subtree
by reference: nine nested levels of ten aliases (a few hundred bytes, the "billion laughs")
become a billion nodes for anything that walks the result. :class:`BoundedSafeLoader` counts
the aliases while composing and, before constructing anything, measures how many nodes the
document has once every alias is expanded (shared subtrees counted once each, so the measure
itself is linear in the file). Too many aliases, a recursive alias, or an expansion past
:data:`MAX_EXPANDED_NODES` is refused with :class:`YamlLimitError`.
"""

from __future__ import annotations

from typing import Any

import yaml

#: aliases one document may hold (MONAI configs rarely use any)
MAX_ALIASES = 1000
#: nodes one document may expand to, every alias followed
MAX_EXPANDED_NODES = 100_000


class YamlLimitError(ValueError):
    """A YAML document over the alias limits (message: what was over, one line)."""


def expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """Nodes under ``root`` with every alias expanded; stops with :class:`YamlLimitError` past
    ``limit`` or on a node that contains itself. Iterative: no recursion on deep documents."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > limit:
                raise YamlLimitError(f"YAML aliases expand to more than {limit} nodes")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlLimitError("YAML alias refers to a node that contains it")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise YamlLimitError("YAML alias refers to a node that contains it")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class BoundedSafeLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` with :data:`MAX_ALIASES` and :data:`MAX_EXPANDED_NODES`."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} YAML aliases")
        return super().compose_node(parent, index)

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            expanded_size(node)
        return node


def load_yaml_data(text: str) -> Any:
    """One YAML document as plain data, within the alias limits."""
    return yaml.load(text, Loader=BoundedSafeLoader)  # a SafeLoader subclass: plain data only
