"""Named pause points for crash tests: with ``MEDSEG_DEBUG_PAUSE_AT=<name>`` the process
writes ``$MEDSEG_DEBUG_PAUSE_FILE`` when it reaches that point and then waits, so a test can
SIGKILL it exactly there. Without the variable a pause point costs one environment lookup."""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_ENV = "MEDSEG_DEBUG_PAUSE_AT"
PAUSE_FILE_ENV = "MEDSEG_DEBUG_PAUSE_FILE"


def pause_point(name: str) -> None:
    if os.environ.get(PAUSE_ENV) != name:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).write_text(f"{os.getpid()} {name}\n")
    time.sleep(600)
