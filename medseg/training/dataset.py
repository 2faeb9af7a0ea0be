"""Segmentation dataset folders: the nnU-Net v2 layout and the Medical Segmentation Decathlon.

Two ``dataset.json`` dialects are read without conversion:

* **nnU-Net v2**: ``channel_names`` ``{"0": "CT"}``, ``labels`` ``{"background": 0, ...}``,
  ``numTraining``, ``file_ending``; images ``imagesTr/<case>_<XXXX><ending>`` (one file per
  channel), labels ``labelsTr/<case><ending>``; optional ``imagesTs`` / ``labelsTs``.
* **MSD** (Decathlon, e.g. ``Task09_Spleen``): ``modality`` ``{"0": "CT"}``, ``labels``
  ``{"0": "background", ...}`` and explicit ``training`` / ``test`` lists of relative paths;
  a multi-channel case is one 4D file (``X, Y, Z, C``).

:func:`load_dataset` reads the description and pairs the files; :func:`validate_dataset`
checks every case before training and raises a one-line :class:`~medseg.errors.InputError`
naming the offending file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError, first_line
from medseg.io import read_image, read_label_map
from medseg.volume import Volume

#: Largest tolerated difference between image and label affines (mm).
AFFINE_ATOL_MM = 1e-3


@dataclass(frozen=True)
class Case:
    """One case: its id, image files and label file (``None`` for an unlabelled test case).

    ``images`` holds one file per channel (nnU-Net), or a single file holding every channel
    along its 4th axis (MSD).
    """

    case_id: str
    images: tuple[Path, ...]
    label: Path | None


@dataclass(frozen=True)
class Dataset:
    """A dataset folder as described by its ``dataset.json``."""

    root: Path
    name: str
    channel_names: dict[int, str]
    labels: dict[str, int]
    file_ending: str
    training: tuple[Case, ...]
    test: tuple[Case, ...] = ()
    layout: str = "nnunetv2"  # or "msd"
    description: str = ""
    num_training: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def json_path(self) -> Path:
        return self.root / "dataset.json"

    @property
    def label_names(self) -> dict[int, str]:
        """Value -> name, background included."""
        return {v: k for k, v in self.labels.items()}


# ---- loading ------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(path, "missing; a dataset folder needs a dataset.json describing it")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON (line {exc.lineno}, column {exc.colno}: "
                               f"{exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(path, "must hold a JSON object")
    return meta


def _channels(meta: dict[str, Any], key: str, jpath: Path) -> dict[int, str]:
    raw = meta.get(key)
    if not isinstance(raw, dict) or not raw:
        raise InputError(jpath, f"{key!r} must be a non-empty object such as {{\"0\": \"CT\"}}")
    try:
        chans = {int(k): str(v) for k, v in raw.items()}
    except ValueError:
        raise InputError(jpath, f"{key!r} keys must be channel numbers, got {list(raw)}") from None
    if sorted(chans) != list(range(len(chans))):
        raise InputError(jpath, f"{key!r} must number channels 0..{len(chans) - 1}, "
                                f"got {sorted(chans)}")
    return dict(sorted(chans.items()))


def _labels(meta: dict[str, Any], jpath: Path, msd: bool) -> dict[str, int]:
    raw = meta.get("labels")
    if not isinstance(raw, dict) or not raw:
        raise InputError(jpath, "'labels' must be a non-empty object")
    labels: dict[str, int] = {}
    try:
        if msd:  # {"0": "background", "1": "spleen"}
            for k, v in raw.items():
                labels[str(v)] = int(k)
        else:  # {"background": 0, "spleen": 1}
            for k, v in raw.items():
                if isinstance(v, (list, tuple)):
                    raise InputError(jpath, f"label {k!r} is a region (list of values); "
                                            "region-based labels are not supported")
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise ValueError(v)
                labels[str(k)] = int(v)
    except (TypeError, ValueError):
        raise InputError(jpath, f"'labels' values must be whole numbers, got {raw}") from None
    values = list(labels.values())
    if len(set(values)) != len(values):
        raise InputError(jpath, f"'labels' gives one value to several names: {raw}")
    if 0 not in values or min(values) < 0:
        raise InputError(jpath, f"'labels' must include background 0 and no negative value: {raw}")
    return dict(sorted(labels.items(), key=lambda kv: kv[1]))


def _file_ending(meta: dict[str, Any], jpath: Path, default: str | None) -> str:
    ending = meta.get("file_ending", default)
    if not isinstance(ending, str) or not ending.startswith("."):
        raise InputError(jpath, "'file_ending' must be a string such as \".nii.gz\"")
    return ending


def _strip(name: str, ending: str) -> str | None:
    return name[: -len(ending)] if name.endswith(ending) and len(name) > len(ending) else None


def _visible(folder: Path, ending: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.endswith(ending))


def _nnunet_cases(root: Path, images: str, labels: str, ending: str, n_channels: int,
                  require_labels: bool) -> tuple[Case, ...]:
    chan_re = re.compile(r"^(?P<case>.+)_(?P<chan>\d{4})$")
    per_case: dict[str, dict[int, Path]] = {}
    for p in _visible(root / images, ending):
        stem = _strip(p.name, ending)
        m = chan_re.match(stem or "")
        if m is None:
            raise InputError(p, f"image name must be <case>_<XXXX>{ending} "
                                "(a 4-digit channel number)")
        per_case.setdefault(m["case"], {})[int(m["chan"])] = p
    label_files = {_strip(p.name, ending): p for p in _visible(root / labels, ending)}
    for case_id, path in label_files.items():
        if case_id not in per_case and require_labels:
            raise InputError(path, f"label has no image (expected {images}/{case_id}_0000{ending})")
    cases = []
    for case_id, chans in sorted(per_case.items()):
        for c in sorted(chans):
            if c >= n_channels:
                raise InputError(chans[c], f"channel {c} is not declared in dataset.json "
                                           f"(channel_names has {n_channels})")
        missing = [c for c in range(n_channels) if c not in chans]
        if missing:
            want = root / images / f"{case_id}_{missing[0]:04d}{ending}"
            raise InputError(want, f"missing channel {missing[0]} of case {case_id!r}")
        cases.append(Case(case_id, tuple(chans[c] for c in range(n_channels)),
                          label_files.get(case_id)))
    return tuple(cases)


def _msd_path(root: Path, rel: Any, jpath: Path, what: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise InputError(jpath, f"{what} entry must be a relative path, got {rel!r}")
    path = (root / rel).resolve()
    if root.resolve() not in path.parents:
        raise InputError(jpath, f"{what} path {rel!r} points outside the dataset folder")
    return path


def _case_id(path: Path, ending: str) -> str:
    return _strip(path.name, ending) or path.name


def _msd_cases(root: Path, meta: dict[str, Any], jpath: Path, ending: str
               ) -> tuple[tuple[Case, ...], tuple[Case, ...]]:
    training = meta.get("training")
    if not isinstance(training, list):
        raise InputError(jpath, "'training' must be a list of {\"image\": ..., \"label\": ...}")
    train = []
    for entry in training:
        if not isinstance(entry, dict) or "image" not in entry:
            raise InputError(jpath, f"training entry {entry!r} lacks an \"image\" path")
        image = _msd_path(root, entry["image"], jpath, "training image")
        label = entry.get("label")
        label_path = _msd_path(root, label, jpath, "training label") if label else None
        train.append(Case(_case_id(image, ending), (image,), label_path))
    test = []
    for entry in meta.get("test") or []:
        rel = entry.get("image") if isinstance(entry, dict) else entry
        image = _msd_path(root, rel, jpath, "test image")
        label = entry.get("label") if isinstance(entry, dict) else None
        test.append(Case(_case_id(image, ending), (image,),
                         _msd_path(root, label, jpath, "test label") if label else None))
    return tuple(train), tuple(test)


def load_dataset(path: str | Path) -> Dataset:
    """Read ``dataset.json`` of an nnU-Net v2 or MSD dataset folder and pair its files.

    Only the description and the folder listing are read; call :func:`validate_dataset` to
    check the files themselves.  Raises :class:`InputError` for a missing or malformed
    ``dataset.json`` and for images that cannot be paired.
    """
    root = Path(path)
    if root.is_file() and root.name == "dataset.json":
        root = root.parent
    if not root.is_dir():
        raise InputError(root, "dataset folder not found")
    jpath = root / "dataset.json"
    meta = _read_json(jpath)
    msd = "channel_names" not in meta and ("modality" in meta or isinstance(
        meta.get("training"), list))
    if msd:
        channels = _channels(meta, "modality", jpath)
        labels = _labels(meta, jpath, msd=True)
        ending = _file_ending(meta, jpath, ".nii.gz")
        training, test = _msd_cases(root, meta, jpath, ending)
    else:
        channels = _channels(meta, "channel_names", jpath)
        labels = _labels(meta, jpath, msd=False)
        ending = _file_ending(meta, jpath, None)
        training = _nnunet_cases(root, "imagesTr", "labelsTr", ending, len(channels), True)
        test = _nnunet_cases(root, "imagesTs", "labelsTs", ending, len(channels), False)
    num = meta.get("numTraining")
    known = {"name", "description", "channel_names", "modality", "labels", "file_ending",
             "training", "test", "numTraining"}
    return Dataset(
        root=root, name=str(meta.get("name") or root.name), channel_names=channels,
        labels=labels, file_ending=ending, training=training, test=test,
        layout="msd" if msd else "nnunetv2", description=str(meta.get("description") or ""),
        num_training=int(num) if isinstance(num, int) else None,
        extra={k: v for k, v in meta.items() if k not in known},
    )


# ---- validation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]  # spatial
    channels: int
    affine: np.ndarray


def _header(path: Path) -> _Header:
    """Shape, channel count and RAS+ affine, from the header alone where the format allows."""
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.name.lower().endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img: Any = nib.load(str(path))
        except Exception as exc:
            msg = first_line(exc) or type(exc).__name__
            raise InputError(path, f"not a readable NIfTI file ({msg})") from None
        shape = tuple(int(s) for s in img.shape)
        if len(shape) == 5 and shape[3] == 1:
            shape = shape[:3] + shape[4:]
        if len(shape) > 4:
            raise InputError(path, f"unsupported dimensionality {shape}")
        channels = shape[3] if len(shape) == 4 else 1
        return _Header(shape[:3], channels, np.asarray(img.affine, dtype=float))

    vol = read_image(path)
    return _Header(vol.spatial_shape, vol.n_channels, vol.affine)


def _label_values(path: Path) -> np.ndarray:

    if path.name.lower().endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img: Any = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
        except Exception as exc:
            raise InputError(path, f"label file is truncated or corrupt ({exc})") from None
        if data.dtype.kind == "f" and not (
            np.all(np.isfinite(data)) and np.array_equal(data, np.round(data))
        ):
            raise InputError(path, "label map holds non-integer values")
        return np.unique(data).astype(np.int64)
    return np.unique(read_label_map(path).array).astype(np.int64)


def _check_case(ds: Dataset, case: Case, check_geometry: bool, check_labels: bool,
                split: str) -> None:
    heads = [_header(p) for p in case.images]
    if len(case.images) == 1:
        if heads[0].channels != ds.n_channels:
            raise InputError(case.images[0], f"has {heads[0].channels} channel(s) but "
                                             f"dataset.json declares {ds.n_channels}")
    else:
        for p, h in zip(case.images, heads, strict=True):
            if h.channels != 1:
                raise InputError(p, f"has {h.channels} channels; each channel file must hold one")
    if check_geometry:
        ref_path, ref = case.images[0], heads[0]
        for p, h in zip(case.images[1:], heads[1:], strict=True):
            _same_grid(p, h, ref_path, ref, "channel")
    if case.label is None:
        return
    if not case.label.is_file():
        raise InputError(case.label, f"label file of {split} case {case.case_id!r} not found")
    if check_geometry:
        lab = _header(case.label)
        if lab.channels != 1:
            raise InputError(case.label, f"label map has {lab.channels} channels; expected one")
        _same_grid(case.label, lab, case.images[0], heads[0], "label")
    if check_labels:
        values = _label_values(case.label)
        allowed = set(ds.labels.values())
        unknown = [int(v) for v in values if int(v) not in allowed]
        if unknown:
            raise InputError(case.label, f"holds label value(s) {unknown} not declared in "
                                         f"dataset.json (declared: {sorted(allowed)})")


def _same_grid(path: Path, h: _Header, ref_path: Path, ref: _Header, what: str) -> None:
    if h.shape != ref.shape:
        raise InputError(path, f"{what} shape {h.shape} differs from image "
                               f"{ref_path.name} {ref.shape}")
    diff = float(np.max(np.abs(h.affine - ref.affine)))
    if diff > AFFINE_ATOL_MM:
        raise InputError(path, f"{what} geometry differs from image {ref_path.name} "
                               f"(affines differ by up to {diff:.4g} mm)")


def validate_dataset(ds: Dataset, check_geometry: bool = True, *,
                     check_labels: bool = True) -> None:
    """Check every case before training; raise a one-line :class:`InputError` naming the file.

    Checks: at least one training case; ``numTraining`` agrees with the files; every training
    image has a label; image files exist with the declared number of channels; label values
    are declared in ``dataset.json`` (``check_labels``, reads the label data); image, channel
    and label shapes and affines agree within :data:`AFFINE_ATOL_MM` (``check_geometry``,
    headers only for NIfTI).
    """
    if not ds.training:
        raise InputError(ds.root / ("imagesTr" if ds.layout == "nnunetv2" else "dataset.json"),
                         "no training cases found")
    if ds.num_training is not None and ds.num_training != len(ds.training):
        raise InputError(ds.json_path, f"numTraining is {ds.num_training} but "
                                       f"{len(ds.training)} training cases were found")
    for case in ds.training:
        if case.label is None:
            if ds.layout == "nnunetv2":
                expected = ds.root / "labelsTr" / f"{case.case_id}{ds.file_ending}"
                raise InputError(case.images[0], f"training image has no label (expected "
                                                 f"{expected})")
            raise InputError(case.images[0], "training image has no label in dataset.json")
        _check_case(ds, case, check_geometry, check_labels, "training")
    for case in ds.test:
        _check_case(ds, case, check_geometry, check_labels, "test")


def read_case_image(case: Case) -> Volume:
    """A case's image, its channels (one file each) stacked."""
    vols = [read_image(p) for p in case.images]
    if len(vols) == 1:
        return vols[0]
    return Volume(np.concatenate([v.array.astype(np.float32) for v in vols]), vols[0].affine)
