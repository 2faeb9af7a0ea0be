"""Pull, import and verify by model name: ``totalseg:<task>``, ``monai:<bundle>`` or
``sammed3d:<checkpoint>``.

The one entry point the ``medseg models`` command and the Models page share.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from medseg.errors import InputError, MedsegError
from medseg.hub import filelock, monai_zoo, sam, sammed3d, totalseg
from medseg.hub.install import install_zip, top_folder
from medseg.hub.sources import MONAI_PREFIX, TOTALSEG_PREFIX, pull_models_dir
from medseg.io import checksum_record as record
from medseg.io.guards import reason
from medseg.models.totalseg.tasks import TASKS, weights_dir

Say = Callable[[str], None]
#: ``progress(folder, done_bytes, total_bytes_or_None)``
Progress = Callable[[str, int, int | None], None]


def pull(name: str, *, force: bool = False, roi_locator: bool = True,
         say: Say | None = None, progress: Progress | None = None) -> list[Path]:
    """Pull model ``name``; return its folders."""
    if name.startswith(TOTALSEG_PREFIX):
        done = totalseg.pull_task(name, force=force, roi_locator=roi_locator, say=say,
                                  progress=progress)
        return [p.path for p in done]
    if name.startswith(MONAI_PREFIX):
        return [monai_zoo.pull_bundle(name, force=force, say=say,
                                      progress=progress is not None).path]
    if name.startswith(sammed3d.PREFIX):
        return [sammed3d.pull(name, force=force, say=say, progress=progress)]
    if name.startswith(sam.SAM_PREFIX):
        sam.pull(name)  # always refuses: the weights are downloaded by hand, then imported
    raise MedsegError(f"cannot pull {name!r}: name a TotalSegmentator task "
                      f"(totalseg:{', totalseg:'.join(TASKS)}), a MONAI model-zoo bundle "
                      f"(monai:<name>, e.g. monai:spleen_ct_segmentation) or a SAM-Med3D "
                      f"checkpoint ({', '.join(r.name for r in sammed3d.RELEASES.values())}); "
                      f"SAM checkpoints ({sam.SAM_PREFIX}medsam_vit_b) are downloaded by hand "
                      "and imported")


def _is_monai_bundle_zip(archive: Path, top: str) -> bool:
    try:
        with zipfile.ZipFile(archive) as zf:
            names = {n.replace("\\", "/") for n in zf.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(archive, f"not a readable zip archive ({reason(exc)})") from None
    return f"{top}/configs/metadata.json" in names


def import_archive(archive: str | Path, *, force: bool = False,
                   say: Say | None = None) -> Path:
    """Install a release zip copied from another machine: a TotalSegmentator
    ``DatasetNNN_<name>.zip`` into the weights folder, or a MONAI bundle zip (``<name>/configs/
    metadata.json``) into the models folder; or a MedSAM checkpoint (``.pth``) downloaded by
    hand, as the ``medsam_vit_b`` model folder (:mod:`medseg.hub.sam`)."""
    archive = Path(archive)
    say = say or (lambda _line: None)
    if archive.suffix in (".pth", ".pt"):  # a SAM-family checkpoint downloaded by hand
        return sam.import_checkpoint(archive, force=force, say=say)
    top = top_folder(archive)
    if not _is_monai_bundle_zip(archive, top):
        return totalseg.import_zip(archive, force=force, say=say).path
    bare = monai_zoo.bundle_name(top)
    target = pull_models_dir() / bare
    with filelock.held(target, say=say):
        if target.is_dir() and not force:
            raise InputError(target, "already exists; use --force to replace it")
        install_zip(archive, target, source=f"import:{archive.name}",
                    check=lambda folder: monai_zoo.check_bundle(folder, archive))
    say(f"{bare}: installed in {target} (licence: {monai_zoo.licence_text(target)}; its "
        "configs run only when trusted)")
    return target


def folders_for(names: list[str]) -> list[Path]:
    """The folders ``verify`` checks: those of the named models, or every folder medseg
    recorded (in the weights folder and the models folder) when no name is given."""
    if not names:
        found = []
        for root in (weights_dir(), pull_models_dir()):
            if root.is_dir():
                found += sorted(p for p in root.iterdir()
                                if p.is_dir() and not p.name.startswith(".")
                                and record.has_record(p))
        return found
    out: list[Path] = []
    for name in names:
        if name.startswith(TOTALSEG_PREFIX):
            out += [p for p in totalseg.task_folders(name) if p not in out]
        elif name.startswith(MONAI_PREFIX):
            out.append(pull_models_dir() / monai_zoo.bundle_name(name))
        elif name.startswith(sammed3d.PREFIX):
            out.append(sammed3d.target_folder(sammed3d.release(name)))
        elif name.startswith(sam.SAM_PREFIX):
            out.append(sam.folder_for(name))
        else:
            raise MedsegError(f"cannot verify {name!r}: name totalseg:<task>, monai:<bundle>, "
                              "sammed3d:<checkpoint> or sam:<checkpoint>")
    return out


def verify(names: list[str]) -> list[record.Verdict]:
    return [record.verify(folder) for folder in folders_for(names)]
