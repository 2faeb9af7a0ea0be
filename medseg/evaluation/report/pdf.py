"""The HTML report printed to PDF by headless Chromium (Debian package ``chromium``).

Chromium's own print engine lays out the very page a reviewer opens in a browser (inline SVG
and embedded PNGs included), so the PDF is that page, not a re-implementation. It runs with
a fresh throw-away profile, no network features and a time limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from medseg.errors import MedsegError

#: candidates, in order; ``$MEDSEG_CHROMIUM`` comes first when set
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-pdf-header-footer")
TIMEOUT_S = 120


def find_chromium() -> str | None:
    """Path of a Chromium executable, or None."""
    env = os.environ.get("MEDSEG_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(html_path: str | Path, pdf_path: str | Path) -> Path:
    """Print ``html_path`` to ``pdf_path`` (atomically); one-line error when that fails."""
    exe = find_chromium()
    if exe is None:
        raise MedsegError("PDF export needs Chromium (Debian: apt-get install chromium); "
                          "the HTML report was written")
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path)
    with tempfile.TemporaryDirectory(prefix="medseg-chromium-") as tmp:
        partial = Path(tmp) / "out.pdf"
        cmd = [exe, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}",
               f"--print-to-pdf={partial}", html_path.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise MedsegError(f"Chromium did not print the PDF within {TIMEOUT_S} s") from None
        if proc.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise MedsegError(f"Chromium could not print the PDF (exit {proc.returncode}: "
                              f"{tail[0][:200]})")
        pdf_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(partial), pdf_path.with_suffix(".pdf.part"))
        os.replace(pdf_path.with_suffix(".pdf.part"), pdf_path)
    return pdf_path
