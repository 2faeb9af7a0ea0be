"""Prompts as text: ``--point X,Y,Z[:+|:-]``, ``--box X0,Y0,Z0,X1,Y1,Z1`` and a prompts file.

A prompts file (``--prompts FILE.json``) gives prompts for many cases::

    {"voxel": false,
     "cases": [{"image": "ct_001.nii.gz", "points": ["12.5,-40,88:+", [10, -38, 90]],
                "boxes": [[0, -60, 70, 30, -20, 110]], "init": "ct_001_prev.nii.gz",
                "answer": 2}]}

A point is ``"X,Y,Z[:+|:-]"``, a list of numbers, or ``{"position": [...], "positive": bool}``;
a box is six numbers (two corners, or four and two for a 2-D image) or ``{"lo": [...],
"hi": [...]}``. ``voxel`` (top level or per case) says the numbers are voxel indices, not world
millimetres. ``answer`` (per case, from 1; default 1) picks one of the model's answers to the
prompts (``medseg info MODEL`` says how many it offers). Paths are relative to the file's
folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from medseg.errors import InputError, MedsegError
from medseg.io.json_file import read_json
from medseg.prompts.types import Box, Point, PromptSpec

#: more prompts than this for one case is a mistake, not a user
MAX_PROMPTS = 1000


def _numbers(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise MedsegError(f"{what} {text!r}: coordinates must be numbers separated by commas") \
            from None
    if not all(math.isfinite(v) for v in values):
        raise MedsegError(f"{what} {text!r}: coordinates must be finite numbers")
    return values


def parse_point(text: str) -> Point:
    """``X,Y,Z`` (or ``X,Y`` for a 2-D image), optionally ``:+`` (positive, the default) or
    ``:-`` (negative)."""
    body, sep, sign = str(text).strip().rpartition(":")
    if not sep:
        body, sign = sign, "+"
    if sign not in ("+", "-"):
        raise MedsegError(f"--point {text!r}: the sign after ':' must be + or -")
    values = _numbers(body, "--point")
    if len(values) not in (2, 3):
        raise MedsegError(f"--point {text!r}: give 3 coordinates (2 for a 2-D image), "
                          f"not {len(values)}")
    return Point(values, positive=sign == "+")


def box_from_numbers(values: tuple[float, ...], text: Any) -> Box:
    if len(values) not in (4, 6):
        raise MedsegError(f"--box {text!r}: give two corners, 6 numbers (4 for a 2-D image), "
                          f"not {len(values)}")
    n = len(values) // 2
    return Box(values[:n], values[n:])


def parse_box(text: str) -> Box:
    """``X0,Y0,Z0,X1,Y1,Z1``: two opposite corners. Equal values on one axis make a 2-D box
    on that slice."""
    return box_from_numbers(_numbers(str(text).strip(), "--box"), text)


def _point(item: Any, where: Path) -> Point:
    if isinstance(item, str):
        return parse_point(item)
    if isinstance(item, dict) and isinstance(item.get("position"), list):
        point = _point(item["position"], where)
        return Point(point.position, bool(item.get("positive", True)))
    if isinstance(item, list) and all(isinstance(v, (int, float)) for v in item):
        return parse_point(",".join(str(v) for v in item))
    raise InputError(where, f"a point must be 'X,Y,Z[:+|:-]', a list of numbers or "
                            f"{{'position': [...], 'positive': true}}, not {item!r:.60}")


def _box(item: Any, where: Path) -> Box:
    if isinstance(item, dict) and isinstance(item.get("lo"), list) \
            and isinstance(item.get("hi"), list):
        item = list(item["lo"]) + list(item["hi"])
    if isinstance(item, list) and all(isinstance(v, (int, float)) for v in item):
        return parse_box(",".join(str(v) for v in item))
    if isinstance(item, str):
        return parse_box(item)
    raise InputError(where, f"a box must be a list of corner numbers or {{'lo': [...], "
                            f"'hi': [...]}}, not {item!r:.60}")


def spec_from_items(points: list[Any], boxes: list[Any], voxel: bool, init: str | None,
                    where: Path, answer: Any = 1) -> PromptSpec:
    """A :class:`PromptSpec` from JSON-like lists (``answer`` counted from 1); problems name
    ``where``."""
    if not isinstance(points, list) or not isinstance(boxes, list):
        raise InputError(where, "'points' and 'boxes' must be lists")
    if len(points) + len(boxes) > MAX_PROMPTS:
        raise InputError(where, f"more than {MAX_PROMPTS} prompts for one case")
    if isinstance(answer, bool) or not isinstance(answer, int) or answer < 1:
        raise InputError(where, f"'answer' must be a whole number from 1, not {answer!r:.40}")
    try:
        return PromptSpec(tuple(_point(p, where) for p in points),
                          tuple(_box(b, where) for b in boxes), bool(voxel), init, answer - 1)
    except InputError:
        raise
    except MedsegError as exc:
        raise InputError(where, str(exc)) from None


def read_prompts_file(path: str | Path) -> list[tuple[Path, PromptSpec]]:
    """(image path, prompts) for each case of a prompts file (see the module docstring)."""
    path = Path(path)
    doc = read_json(path)
    cases = doc.get("cases")
    if not isinstance(cases, list) or not cases:
        raise InputError(path, "needs a non-empty 'cases' list")
    out = []
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("image"), str):
            raise InputError(path, f"case {i}: needs an 'image' path")
        init = case.get("init")
        if init is not None and not isinstance(init, str):
            raise InputError(path, f"case {i}: 'init' must be a path")
        spec = spec_from_items(case.get("points", []), case.get("boxes", []),
                               case.get("voxel", doc.get("voxel", False)),
                               str(path.parent / init) if init else None, path,
                               case.get("answer", 1))
        if not spec.points and not spec.boxes:
            raise InputError(path, f"case {i} ({case['image']}): no points or boxes")
        out.append((path.parent / case["image"], spec))
    return out
