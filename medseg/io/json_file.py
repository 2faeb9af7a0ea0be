"""Read a JSON object from a file someone else wrote (plans, prompts, configs), bounded in size;
every problem is one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medseg.errors import InputError, first_line

#: real plans and prompt files are kilobytes; refuse anything absurd before parsing
MAX_JSON_BYTES = 16 * 1024 * 1024


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; any problem is a one-line :class:`InputError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    if size > MAX_JSON_BYTES:
        raise InputError(path, f"is {size} bytes; a JSON file over {MAX_JSON_BYTES} bytes is "
                               "refused")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"is not valid JSON ({first_line(exc, 120)})") from None
    except RecursionError:
        raise InputError(path, "is not valid JSON (nested too deeply)") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise InputError(path, f"must hold a JSON object, not {type(data).__name__}")
    return data
