"""A mask (from prompts) put into a segmentation: as a new class, or editing a class.

:func:`apply_mask` is what the UI's prompt mode does with its result: it returns a new
:class:`~medseg.engine.segmenter.Segmentation` on the same grid and never changes the one
given.

* ``new``: the mask becomes class ``name`` with the next free label value; its voxels are
  taken from whatever class held them. Without a segmentation it stands alone
  (``background``, ``name``).
* ``add``: the mask's voxels join class ``target`` (taken from other classes).
* ``remove``: the mask's voxels of class ``target`` become background.

The quality flag (:mod:`medseg.qc`) describes the model's own classes: it is kept when a class
is added (they are unchanged) and dropped when one is edited.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from medseg.engine.segmenter import Segmentation
from medseg.errors import MedsegError
from medseg.volume import LabelMap

HOW = ("new", "add", "remove")


def apply_mask(seg: Segmentation | None, mask: np.ndarray, *, affine: np.ndarray | None = None,
               how: Literal["new", "add", "remove"] = "new", name: str = "object",
               target: int | None = None) -> Segmentation:
    """``mask`` (boolean, the spatial shape) put into ``seg`` as ``how`` says (see the module
    docstring); ``affine``: the grid when there is no ``seg``."""
    mask = np.asarray(mask, dtype=bool)
    if how not in HOW:
        raise MedsegError(f"unknown mask edit {how!r} (one of {', '.join(HOW)})")
    if seg is None:
        if how != "new":
            raise MedsegError("there is no segmentation to edit: add the mask as a new class")
        if affine is None:
            raise MedsegError("a mask standing alone needs its grid's affine")
        seg = Segmentation(LabelMap(np.zeros((1, *mask.shape), np.uint8), affine),
                           {0: "background"})
    labels = seg.labels.data
    if labels.shape != mask.shape:
        raise MedsegError(f"mask of shape {mask.shape} is not on the segmentation's grid "
                          f"{labels.shape}")
    names = dict(seg.label_names)
    if how == "new":
        name = " ".join(str(name).split())
        if not name:
            raise MedsegError("give the new class a name")
        if name in names.values():
            raise MedsegError(f"a class named {name!r} exists already: choose another name, "
                              "or add to that class")
        value = max(names) + 1
        out = labels.astype(np.uint8 if value < 256 else np.uint16, copy=True)
        out[mask] = value
        names[value] = name
        qc = seg.qc
    else:
        if target is None or target == 0 or target not in names:
            raise MedsegError(f"no class with label {target} to edit (classes: "
                              f"{', '.join(n for v, n in sorted(names.items()) if v)})")
        out = labels.copy()
        if how == "add":
            out[mask] = target
        else:
            out[mask & (labels == target)] = 0
        qc = None
    return Segmentation(LabelMap(out[None], seg.labels.affine), names, None, qc)
