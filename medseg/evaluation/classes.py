"""Which label values are scored as which class: names, and classes merged from several values.

* :class:`ClassGroups`: ``brain=1,2,3`` scores the union of values 1, 2 and 3 of *both* maps
  as one class ``brain`` (a prediction of three tissues against a whole-brain outline whose
  value is 1); ``liver=1 tumour=2`` only names values. It is applied to both maps before
  scoring (:meth:`ClassGroups.apply`).
* :func:`parse_class_tokens`: the ``--labels`` syntax of the CLI and the UI.
* Default class names when none are given (:func:`names_from_dataset_json`,
  :func:`names_from_file`): the prediction's NIfTI header (medseg writes its model's names
  there), else the ``dataset.json`` of the reference or prediction folder (nnU-Net's
  ``{"labels": {"background": 0, "liver": 1}}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import MedsegError
from medseg.io.nifti import nifti_label_names


@dataclass(frozen=True)
class ClassGroups:
    """Classes scored: ``names`` (class value -> name) and ``groups`` (class value -> the
    label values of the maps it takes, the class value being the smallest of them)."""

    names: dict[int, str]
    groups: dict[int, tuple[int, ...]]

    def __post_init__(self) -> None:
        if set(self.names) != set(self.groups):
            raise MedsegError("class groups and names disagree")
        seen: dict[int, str] = {}
        for value, members in self.groups.items():
            for m in members:
                if m in seen:
                    raise MedsegError(f"label {m} is in two classes ({seen[m]!r} and "
                                      f"{self.names[value]!r})")
                seen[m] = self.names[value]

    @property
    def merges(self) -> bool:
        """Whether some class takes more than one label value."""
        return any(len(m) > 1 for m in self.groups.values())

    def apply(self, arr: np.ndarray) -> np.ndarray:
        """``arr`` with every grouped value replaced by its class value; values in no group
        are left as they are (the scoring then names them as unknown)."""
        if not self.merges:
            return arr
        top = int(arr.max()) if arr.size else 0
        top = max(top, *(max(m) for m in self.groups.values()))
        lut = np.arange(top + 1, dtype=np.int64)
        for value, members in self.groups.items():
            lut[list(members)] = value
        return lut[arr.astype(np.int64, copy=False)].astype(arr.dtype, copy=False)

    def describe(self) -> str:
        """``brain=1,2,3; lesion=4`` (as the option is written)."""
        return "; ".join(f"{self.names[v]}={','.join(map(str, m))}"
                         for v, m in sorted(self.groups.items()))


def parse_class_tokens(tokens: Iterable[str] | None, option: str = "--labels"
                       ) -> dict[int, str] | ClassGroups | None:
    """``["1", "2"]``, ``["liver=1", "spleen=2"]`` -> ``{value: name}``; a token merging
    values (``brain=1,2,3``) makes the whole a :class:`ClassGroups`. Commas or spaces both
    separate tokens of one string (the UI's text box)."""
    if tokens is None:
        return None
    names: dict[int, str] = {}
    groups: dict[int, tuple[int, ...]] = {}
    for token in tokens:
        token = token.strip()
        if not token:
            continue
        name, sep, values = token.partition("=")
        if not sep:
            name, values = "", token
        try:
            members = tuple(int(v) for v in values.split(",") if v.strip())
        except ValueError:
            raise MedsegError(f"{option}: {token!r} is not a value, name=value or "
                              "name=v1,v2,...") from None
        if not members or min(members) <= 0:
            raise MedsegError(f"{option}: {token!r} needs label values > 0 (0 is background)")
        if len(set(members)) != len(members):
            raise MedsegError(f"{option}: {token!r} repeats a value")
        value = min(members)
        if value in names:
            raise MedsegError(f"{option}: label {value} is given twice")
        name = name.strip() or str(value)
        if name in names.values():
            raise MedsegError(f"{option}: class name {name!r} is given twice")
        names[value], groups[value] = name, tuple(sorted(members))
    if not names:
        raise MedsegError(f"{option}: no labels given")
    names = dict(sorted(names.items()))
    if any(len(m) > 1 for m in groups.values()):
        return ClassGroups(names, dict(sorted(groups.items())))
    return names


def split_text(text: str) -> list[str]:
    """The UI's one-line labels box: ``brain=1,2,3 lesion=4`` or ``brain=1,2,3; lesion=4``."""
    return [t for t in text.replace(";", " ").split() if t]


# ---- default names --------------------------------------------------------------------------
def names_from_dataset_json(*folders: str | Path) -> dict[int, str]:
    """Class names of the first ``dataset.json`` found in a folder or its parent (nnU-Net's
    ``labels``: name -> value, or name -> list of values for regions); background left out.
    An unreadable file gives no names (the scoring does not depend on them)."""
    for folder in folders:
        for candidate in (Path(folder) / "dataset.json", Path(folder).parent / "dataset.json"):
            if not candidate.is_file():
                continue
            try:
                labels = json.loads(candidate.read_text()).get("labels")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(labels, Mapping):
                return _names_from_mapping(labels)
    return {}


def _names_from_mapping(labels: Mapping[str, Any]) -> dict[int, str]:
    out: dict[int, str] = {}
    for name, value in labels.items():
        if isinstance(value, list | tuple):
            if len(value) != 1:
                continue  # an nnU-Net region (several values): no single value to name
            value = value[0]
        try:
            number = int(value)
        except (TypeError, ValueError):
            continue
        if number > 0:
            out[number] = str(name)
    return out


def names_from_file(path: str | Path) -> dict[int, str]:
    """Class names stored in a NIfTI prediction's header by medseg (background left out)."""
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        return {}
    try:
        names = nifti_label_names(path)
    except Exception:  # an unreadable file fails in the scoring with its own message
        return {}
    return {v: n for v, n in names.items() if v != 0}


def rename_rows(rows: list[dict[str, Any]], names: Mapping[int, str]) -> list[dict[str, Any]]:
    """Class rows whose ``class`` is still the bare label value take the name in ``names``."""
    for row in rows:
        value = row.get("label")
        if value is not None and row.get("class") == str(value) and int(value) in names:
            row["class"] = names[int(value)]
    return rows
