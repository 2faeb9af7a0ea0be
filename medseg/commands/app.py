"""``medseg app``: start the Streamlit web app (segment, view, evaluate, browse plugins).

On POSIX the Streamlit server replaces the ``medseg app`` process (``exec``), so stopping that
process stops the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medseg.errors import MedsegError

#: the app's main script (``app/`` at the repository top, next to the package)
APP_MAIN = Path(__file__).resolve().parents[2] / "app" / "Home.py"


def register(sub) -> None:
    p = sub.add_parser("app", help="start the web app (Streamlit, headless)")
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    p.add_argument("--max-upload-mb", type=int, default=500,
                   help="largest accepted upload in MB (default 500)")
    p.add_argument("--models-dir", default=None,
                   help="folder of model bundles (also $MEDSEG_MODELS_DIR)")
    p.set_defaults(func=run)


def streamlit_command(args) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_MAIN),
        "--server.headless", "true",
        "--server.port", str(args.port),
        "--server.address", args.address,
        "--server.maxUploadSize", str(args.max_upload_mb),
        "--browser.gatherUsageStats", "false",
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "minimal",
    ]


def run(args) -> int:
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise MedsegError("the web app needs Streamlit: pip install 'medseg[app]'") from None
    if not APP_MAIN.is_file():
        raise MedsegError(f"app not found at {APP_MAIN} (the app ships with a source checkout)")
    if not 0 < args.port < 65536:
        raise MedsegError(f"port {args.port} is out of range 1-65535")
    if args.max_upload_mb < 1:
        raise MedsegError("--max-upload-mb must be at least 1")
    env = dict(os.environ)
    if args.models_dir:
        env["MEDSEG_MODELS_DIR"] = str(Path(args.models_dir).resolve())
    print(f"medseg: web app on http://{args.address}:{args.port} (Ctrl+C to stop)",
          file=sys.stderr)
    command = streamlit_command(args)
    if os.name != "posix":  # no exec there: wait for the child
        return subprocess.call(command, cwd=APP_MAIN.parent, env=env)
    # Streamlit replaces this process (same PID), so a signal sent to `medseg app` (SIGTERM
    # from a service manager, kill PID) stops the server itself: no orphaned child.
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(APP_MAIN.parent)
    os.execve(sys.executable, command, env)
    return 0  # pragma: no cover - execve does not return
