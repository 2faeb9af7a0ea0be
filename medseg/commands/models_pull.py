"""``medseg models pull|verify|import``: thin wrappers over :mod:`medseg.hub.by_name`.

* ``pull NAME...``: ``totalseg:<task>`` (TotalSegmentator's release zips into its weights
  folder) or ``monai:<bundle>`` (MONAI's model zoo into the models folder), with a tqdm bar;
* ``verify [NAME...]``: hash every file of the named (or of every pulled) model again;
* ``import FILE.zip``: install a release zip copied from another machine.
"""

from __future__ import annotations

import sys
from typing import Any

from medseg.errors import MedsegError
from medseg.hub import by_name


def register(actions) -> None:
    p = actions.add_parser("pull", help="download the weights a model needs (totalseg:<task>, "
                                        "monai:<bundle>)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--force", action="store_true",
                   help="download again even when the model is present and intact")
    p.add_argument("--no-roi-locator", dest="roi_locator", action="store_false",
                   help="TotalSegmentator: skip the --roi-subset locator unless the task "
                        "always needs it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_pull)
    p = actions.add_parser("verify", help="check pulled models against their recorded sha256")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="models to check (default: every model pulled by medseg)")
    p.set_defaults(func=run_verify)
    p = actions.add_parser("import", help="install a release zip copied from another machine")
    p.add_argument("archive", metavar="FILE.zip")
    p.add_argument("--force", action="store_true", help="replace a present model")
    p.set_defaults(func=run_import)


def _say(line: str) -> None:
    print(line, flush=True)


class _Bars:
    """One tqdm bar per folder being downloaded (on stderr)."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, folder: str, done: int, total: int | None) -> None:
        from tqdm.auto import tqdm  # deferred: only a pull shows a bar

        bar = self.bars.get(folder)
        if bar is None:
            short = folder.split("_", 1)[0] if folder.startswith("Dataset") else folder[:40]
            bar = self.bars[folder] = tqdm(total=total, initial=done, unit="B",
                                           unit_scale=True, unit_divisor=1024, desc=short,
                                           file=sys.stderr, leave=True)
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def run_pull(args) -> int:
    bars = None if args.quiet else _Bars()
    try:
        for name in args.names:
            folders = by_name.pull(name, force=args.force, roi_locator=args.roi_locator,
                                   say=_say, progress=bars)
            _say(f"{name}: ready ({len(folders)} folder{'s' * (len(folders) != 1)})")
    finally:
        if bars:
            bars.close()
    return 0


def run_verify(args) -> int:
    verdicts = by_name.verify(args.names)
    if not verdicts:
        print("no model pulled by medseg to verify")
        return 0
    bad = 0
    for v in verdicts:
        if not v.recorded and v.ok:
            print(f"not recorded  {v.folder}: not pulled by medseg, no checksums to compare")
        elif v.ok:
            extra = f"; {len(v.added)} file(s) added since: {', '.join(v.added[:3])}" \
                if v.added else ""
            print(f"ok            {v.folder} ({v.files} files){extra}")
        else:
            bad += 1
            for problem in v.problems:
                print(f"FAILED        {v.folder}: {problem}")
    if bad:
        raise MedsegError(f"{bad} model folder(s) differ from what was pulled; pull them "
                          "again with `medseg models pull NAME --force`")
    return 0


def run_import(args) -> int:
    folder = by_name.import_archive(args.archive, force=args.force, say=_say)
    _say(f"imported {folder.name}")
    return 0
