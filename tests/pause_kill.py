"""Run a real child process until it reaches a named pause point (``medseg.io.debughooks``) and
SIGKILL it there: the crash tests' one way of killing at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_at(point: str, args: list[str], tmp_path: Path, *, timeout: float = 300) -> None:
    """Run ``python *args`` with the pause point ``point`` set; SIGKILL it once it waits
    there. Fails when the child ends first or never gets there."""
    marker = tmp_path / f"paused-{point}"
    marker.unlink(missing_ok=True)
    env = {**os.environ, "MEDSEG_DEBUG_PAUSE_AT": point, "MEDSEG_DEBUG_PAUSE_FILE": str(marker),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"ended before {point}: {err[-1500:]}")
            assert time.monotonic() < deadline, f"never reached {point}"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
