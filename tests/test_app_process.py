"""``medseg app`` is the server process itself: SIGTERM to its PID stops the server (no
Streamlit child left serving)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="exec and signals: POSIX only")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_sigterm_to_medseg_app_stops_the_server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "medseg.cli", "app", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HOME": str(tmp_path)})
    try:
        deadline = time.time() + 120
        while not _healthy(port):
            assert proc.poll() is None, "medseg app exited before serving"
            assert time.time() < deadline, "the server did not come up"
            time.sleep(0.5)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.time() + 10
        while _healthy(port) and time.time() < deadline:
            time.sleep(0.2)
        assert not _healthy(port), "a server still answers after medseg app was stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
