"""The ``medseg`` command: one entry point, one thin module per subcommand.

Each module in :data:`COMMANDS` (under ``medseg.commands``) defines
``register(subparsers)`` that adds its parser and sets ``func=run`` where
``run(args) -> int`` calls the engine. Only the module of the command being run is imported
(each imports the engine parts it needs, torch included), so ``medseg --version`` and a
command's own ``--help`` stay quick; ``medseg --help`` imports them all. User errors
(:class:`MedsegError`) print one line ``medseg: error: ...`` and exit 2; ``--debug`` shows
tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from medseg import __version__
from medseg.errors import MedsegError

#: subcommand modules in ``medseg.commands``
COMMANDS: tuple[str, ...] = ("info", "convert", "plugins", "models", "train", "segment",
                             "evaluate", "evaluate_clicks", "compare", "plan_study", "app",
                             "pacs")


def chosen_command(argv: Sequence[str]) -> str | None:
    """The module of the subcommand named in ``argv`` (the first word that is not an option or
    the value of ``--plugins-dir``; ``plan-study`` is module ``plan_study``), or None."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--plugins-dir":
            skip = True
        elif not word.startswith("-"):
            module = word.replace("-", "_")
            return module if module in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or only the one ``argv`` names."""
    parser = argparse.ArgumentParser(
        prog="medseg", description="Medical image segmentation with exact geometry."
    )
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    parser.add_argument("--plugins-dir", default=None,
                        help="folder of single-file plugins (also $MEDSEG_PLUGINS_DIR)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = chosen_command(sys.argv[1:] if argv is None else argv)
    for name in (chosen,) if chosen else COMMANDS:
        module = importlib.import_module(f"medseg.commands.{name}")
        module.register(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"medseg: warning: {message}\n"


def drop_working_directory_from_path() -> None:
    """Take the working directory off ``sys.path`` (``python -m medseg.cli`` puts it first):
    run from inside a downloaded model folder, its ``itk.py`` or ``nrrd.py`` would otherwise be
    imported by MONAI's optional-import probes as the engine loads (medseg itself is
    installed, so it never needs the working directory). The ``medseg`` console script never
    has it on the path."""
    here = os.path.realpath(os.getcwd())
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != here]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="medseg: %(message)s")
    if not args.debug:
        warnings.formatwarning = _format_warning  # type: ignore[assignment]
    try:
        return int(args.func(args) or 0)
    except MedsegError as exc:
        if args.debug:
            raise
        print(f"medseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medseg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected bug: still one line unless --debug
        if args.debug:
            raise
        print(f"medseg: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    drop_working_directory_from_path()
    sys.exit(main())
