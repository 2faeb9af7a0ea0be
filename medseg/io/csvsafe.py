"""CSV cells that a spreadsheet cannot run (OWASP, "CSV Injection").

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets; a case, label or file name can start so.
Such a text cell gets a leading ``'``, which the spreadsheet shows as text. Numbers stay numbers:
an ``int``/``float`` or a string that is a plain number literal (``-0.5``, ``-1e-3``, ``-inf``)
is written unchanged. Every CSV writer of medseg passes its cells through :func:`safe_cell`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: first characters that make a spreadsheet read a cell as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def safe_cell(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would run; then ``"'" + value``."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


def safe_row(values: Iterable[Any]) -> list[Any]:
    """:func:`safe_cell` of every value (a ``csv.writer`` row)."""
    return [safe_cell(v) for v in values]


def safe_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`safe_cell` of every value (a ``csv.DictWriter`` row)."""
    return {k: safe_cell(v) for k, v in row.items()}
