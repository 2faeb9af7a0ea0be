"""Quality checks: compare one segmentation and its input with the model's training record.

Each check is a pure function returning :class:`Finding` objects; :func:`check_segmentation`
runs those that the record allows and returns a :class:`QC` (``ok`` or ``warn`` with reasons).
The margins are deliberately wide: a flag means "far from anything the model was trained on",
not "slightly unusual".

* **volume**: a class present in every training case is absent, or a class's volume lies
  outside its trained range widened by :data:`VOLUME_MARGIN` (half the smallest, twice the
  largest by default). Small structures (largest training volume under
  :data:`SMALL_CLASS_SHARE` of the typical total foreground: lesions, nodules) are checked
  against the upper bound only: that one is absent or tiny is an ordinary finding (a patient
  without a lesion), and their detection is what the model's test Dice measures, not QC.
* **intensity**: the 0.5 and 99.5 percentiles of the input inside the predicted foreground lie
  outside the training foreground's range widened by :data:`INTENSITY_MARGIN` times its robust
  width (per channel). Only channels in absolute units (CT, Hounsfield) are compared so; MR
  intensities are in arbitrary scanner units (a model normalising per image does not mind a
  rescaled scan), so for them only the sign is compared: a foreground with a substantial
  negative part (:data:`NEGATIVE_SHARE` of its robust range) where the training foreground
  had no negative values, as a CT given to an MR model.
* **extent**: the field of view along an axis of the RAS-canonical grid is below half the
  smallest or above twice the largest training extent (:data:`EXTENT_MARGIN`).
* **plausible**: a class, or all the model's classes together (key ``"all"``), outside the
  plausible volume range that the model's author declares from anatomy in the record's
  ``plausible_ml`` (no margin: the range is the margin). Training volumes of a few template
  subjects say little about people; the author knows that an adult brain is not 3 L.
* **border** (needs no record): a large share of a class's voxels (:data:`BORDER_FRACTION`)
  lies on the outermost voxel layer of the image. A class that merely crosses the border (an
  aorta leaving the scanned range) has a small share there; a large share means an organ cut
  by the field of view, so its volume is wrong, or background outside the body labelled as
  tissue.
* **empty** (needs no record): a large share of the predicted foreground
  (:data:`EMPTY_FRACTION`) lies where the input is empty, at its minimum value in every channel:
  the exact zeros around a skull-stripped brain, the padding outside a CT's reconstruction
  circle. No organ or tissue is imaged as the scan's minimum, so that is air or a
  stripped-away background labelled as tissue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np

from medseg.ops.counts import label_counts
from medseg.qc.modality import modality_problems
from medseg.qc.record import class_volumes_ml, extent_mm
from medseg.volume import LabelMap, Volume

VOLUME_MARGIN = 2.0
#: classes whose largest training volume is below this share of the typical total foreground
#: (sum of the classes' mid-range volumes) are small structures: upper bound only
SMALL_CLASS_SHARE = 0.02
INTENSITY_MARGIN = 0.5
#: non-CT channels: a negative part of the input foreground beyond this share of its 0.5-99.5
#: percentile range is flagged when the training foreground was never negative
NEGATIVE_SHARE = 0.05
EXTENT_MARGIN = 2.0
#: share of a class's voxels on the image border that is flagged
BORDER_FRACTION = 0.2
#: only image axes with at least this many voxels count for the border check (the two end
#: slices of a 5-slice stack are 40 % of it whatever the anatomy)
BORDER_MIN_AXIS_VOXELS = 16
#: classes smaller than this (voxels) are not judged on the border
BORDER_MIN_VOXELS = 50
#: share of the predicted foreground lying on empty input (its minimum value) that is flagged
EMPTY_FRACTION = 0.05
#: fewer predicted foreground voxels than this: the intensity and empty checks are skipped
INTENSITY_MIN_VOXELS = 100
_SAMPLE = 200_000


@dataclass(frozen=True)
class Finding:
    """One reason for a warning: which check, the message, and the class it concerns
    (``None`` for the whole image)."""

    check: str
    message: str
    class_name: str | None = None


@dataclass(frozen=True)
class QC:
    """The quality flag of one segmentation: ``status`` is ``ok`` or ``warn``; ``checked``
    names the checks that ran (what the model's training record allowed)."""

    status: Literal["ok", "warn"] = "ok"
    findings: tuple[Finding, ...] = ()
    checked: tuple[str, ...] = ()

    @property
    def reasons(self) -> list[str]:
        return [f.message for f in self.findings]

    def reasons_for(self, class_name: str) -> list[str]:
        """Reasons about ``class_name`` followed by those about the whole image."""
        return ([f.message for f in self.findings if f.class_name == class_name]
                + [f.message for f in self.findings if f.class_name is None])

    def summary(self) -> str:
        """One line: ``warn: reason; reason`` or ``ok`` (noting checks that could not run)."""
        if self.status == "warn":
            return "warn: " + "; ".join(self.reasons)
        if set(self.checked) <= {"border", "empty"}:
            return "ok (border and empty input only: the model records no training data)"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": self.reasons, "checked": list(self.checked),
                "findings": [{"check": f.check, "class": f.class_name, "message": f.message}
                             for f in self.findings]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QC:
        findings = tuple(Finding(str(f.get("check", "")), str(f.get("message", "")),
                                 f.get("class")) for f in data.get("findings", []))
        if not findings:
            findings = tuple(Finding("", str(r)) for r in data.get("reasons", []))
        checked = tuple(str(c) for c in data.get("checked", []))
        if data.get("status") == "warn":
            return cls("warn", findings, checked)
        return cls("ok", findings, checked)


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def volume_findings(volumes_ml: Mapping[str, float],
                    classes: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """Classes absent although present in every training case, or far outside their trained
    volume range."""
    out = []
    typical = sum((float(r["min_ml"]) + float(r["max_ml"])) / 2 for r in classes.values()
                  if isinstance(r, Mapping) and r.get("min_ml") is not None
                  and r.get("max_ml") is not None)
    for name, ml in volumes_ml.items():
        rec = classes.get(name)
        if not isinstance(rec, Mapping):
            continue
        lo, hi = rec.get("min_ml"), rec.get("max_ml")
        trained = f"trained range {_num(lo)}-{_num(hi)} mL" if lo is not None and \
            hi is not None else ""
        if hi is not None and float(hi) < SMALL_CLASS_SHARE * typical:
            lo = None  # a small structure: absent or tiny is an ordinary finding
        elif ml <= 0:
            if float(rec.get("present_fraction", 0.0)) >= 1.0:
                out.append(Finding("volume", f"{name} 0.0 mL: absent, but present in every "
                                             f"training case" + (f" ({trained})" if trained
                                                                 else ""), name))
            continue
        if (lo is not None and ml < float(lo) / VOLUME_MARGIN) or \
                (hi is not None and ml > float(hi) * VOLUME_MARGIN):
            out.append(Finding("volume", f"{name} {ml:,.1f} mL, {trained}", name))
    return out


def plausible_findings(volumes_ml: Mapping[str, float],
                       plausible: Mapping[str, Sequence[float]]) -> list[Finding]:
    """Volumes outside the author's plausible ranges (``"all"``: the classes' sum)."""
    out = []
    for key, bounds in plausible.items():
        lo, hi = (float(b) for b in bounds)
        if key == "all":
            ml, name, what = sum(volumes_ml.values()), None, "+".join(volumes_ml)
        elif key in volumes_ml:
            ml, name, what = volumes_ml[key], key, key
        else:
            continue
        if not lo <= ml <= hi:
            out.append(Finding("plausible", f"{what} {ml:,.1f} mL, outside the plausible "
                                            f"{_num(lo)}-{_num(hi)} mL the model declares", name))
    return out


def absolute_channels(info: Any) -> list[bool]:
    """Per input channel of a model (a ``ModelInfo``): whether its intensities are in absolute
    units (CT), from its channel names or else its modality."""
    names = tuple(getattr(info, "channel_names", ()) or ())
    n = int(getattr(info, "in_channels", 0) or len(names) or 1)
    if len(names) == n:
        return [str(name).strip().casefold() == "ct" for name in names]
    return [str(getattr(info, "modality", "") or "").strip().upper() == "CT"] * n


def intensity_findings(image: Volume, mask: np.ndarray, intensity: Sequence[Mapping[str, Any]],
                       absolute: Sequence[bool] | None = None) -> list[Finding]:
    """Input foreground (``mask``) intensities far outside the training foreground's; channels
    not in ``absolute`` units (default: all are) get the sign comparison only."""
    if len(intensity) != image.n_channels or int(mask.sum()) < INTENSITY_MIN_VOXELS:
        return []
    absolute = [True] * image.n_channels if absolute is None else list(absolute)
    rng = np.random.default_rng(0)
    out = []
    for c, (channel, rec) in enumerate(zip(image.array, intensity, strict=True)):
        r_lo = float(rec.get("p00_5", rec["min"]))
        r_hi = float(rec.get("p99_5", rec["max"]))
        r_min = float(rec.get("min", r_lo))
        values = channel[mask]
        if values.size > _SAMPLE:  # percentiles of a random sample (with replacement)
            values = values[rng.integers(0, values.size, _SAMPLE)]
        p_lo, p_hi = (float(v) for v in np.percentile(values.astype(np.float64), [0.5, 99.5]))
        which = f"channel {c} " if image.n_channels > 1 else ""
        seen = f"{which}foreground {_num(p_lo)} to {_num(p_hi)}"
        if not absolute[c]:
            if r_min >= 0 and p_lo < 0 and -p_lo > NEGATIVE_SHARE * (p_hi - p_lo):
                out.append(Finding("intensity", "input intensity outside anything seen in "
                                                f"training ({seen} is partly negative; the "
                                                "training foreground never was)"))
            continue
        width = max(r_hi - r_lo, 1e-6)
        lo = min(r_min, r_lo - INTENSITY_MARGIN * width)
        hi = max(float(rec.get("max", r_hi)), r_hi + INTENSITY_MARGIN * width)
        if p_lo < lo or p_hi > hi:
            out.append(Finding("intensity", f"input intensity outside anything seen in training"
                                            f" ({seen}; trained {_num(r_lo)} to {_num(r_hi)})"))
    return out


def extent_findings(image: Volume, extent: Mapping[str, Sequence[float]]) -> list[Finding]:
    """A field of view far outside the training range on some axis."""
    got = extent_mm(image)
    lo, hi = list(extent.get("min", [])), list(extent.get("max", []))
    if len(lo) != len(got) or len(hi) != len(got):
        return []
    if all(float(a) / EXTENT_MARGIN <= g <= float(b) * EXTENT_MARGIN
           for g, a, b in zip(got, lo, hi, strict=True)):
        return []
    shown = " x ".join(_num(g) for g in got)
    trained = " x ".join(f"{_num(a)}-{_num(b)}" for a, b in zip(lo, hi, strict=True))
    return [Finding("extent", f"image extent {shown} mm far outside the training range "
                              f"({trained} mm)")]


def border_fractions(labels: np.ndarray) -> dict[int, tuple[int, int]]:
    """Per label value: (voxels on the image border, all voxels), counting the outermost
    layer of every axis with at least :data:`BORDER_MIN_AXIS_VOXELS` voxels (each border
    voxel once; only the faces are read)."""
    counted = [a for a, n in enumerate(labels.shape) if n >= BORDER_MIN_AXIS_VOXELS]
    faces = []
    for i, axis in enumerate(counted):
        for end in (0, labels.shape[axis] - 1):
            index: list[Any] = [slice(None)] * labels.ndim
            index[axis] = end
            for earlier in counted[:i]:  # edges already counted on an earlier axis's face
                index[earlier] = slice(1, labels.shape[earlier] - 1)
            faces.append(labels[tuple(index)].ravel())
    total = label_counts(labels)
    edge = np.concatenate(faces).astype(np.int64) if faces else np.zeros(0, np.int64)
    on_border = np.bincount(edge, minlength=total.size)
    return {int(v): (int(on_border[v]), int(total[v])) for v in np.nonzero(total)[0] if v}


def border_findings(labels: LabelMap, label_names: Mapping[int, str]) -> list[Finding]:
    out = []
    for value, (edge, total) in sorted(border_fractions(labels.array[0]).items()):
        if total >= BORDER_MIN_VOXELS and edge / total >= BORDER_FRACTION:
            name = label_names.get(value, str(value))
            out.append(Finding("border", f"foreground touches the image border: "
                                         f"{edge / total:.0%} of {name} lies on it (cut by "
                                         f"the field of view, or background labelled as "
                                         f"{name})", name))
    return out


def empty_findings(image: Volume, labels: LabelMap) -> list[Finding]:
    """The predicted foreground lying where the input is empty (each channel at its minimum)."""
    fg = labels.array[0] > 0
    n_fg = int(fg.sum())
    if n_fg < INTENSITY_MIN_VOXELS or image.spatial_shape != labels.spatial_shape:
        return []
    lows = [channel.min() for channel in image.array]
    empty = np.ones(fg.shape, dtype=bool)
    for channel, low_c in zip(image.array, lows, strict=True):
        empty &= channel <= low_c
    n = int((fg & empty).sum())
    if n < EMPTY_FRACTION * n_fg:
        return []
    low = float(lows[0])
    return [Finding("empty", f"{n / n_fg:.0%} of the foreground ({n:,} voxels) lies where the "
                             f"image is empty (its minimum value, {_num(low)}): air or a "
                             f"stripped-away background labelled as tissue")]


def _foreground(labels: np.ndarray, values: list[int], n_classes: int) -> np.ndarray:
    """Voxels of the given label values (all foreground when they are every class)."""
    if len(set(values)) == n_classes:
        return labels > 0
    lut = np.zeros(int(labels.max(initial=0)) + 1, dtype=bool)
    lut[[v for v in values if v < lut.size]] = True
    return lut[labels]


def check_segmentation(labels: LabelMap, label_names: Mapping[int, str], image: Volume,
                       models: Sequence[Any], *, input_modality: str | None = None) -> QC:
    """Check a label map (on ``image``'s grid) against each model's own training record.

    ``models`` are :class:`~medseg.models.base.ModelInfo` objects (their ``labels`` and
    ``training_record``); with several merged models each is judged on its own classes.
    The **modality** check (:mod:`medseg.qc.modality`) compares each model's declared
    modality with ``input_modality`` (the DICOM header's) or, without it, the one guessed
    from the image's intensities.
    """
    findings: list[Finding] = [Finding("modality", m)
                               for m in modality_problems(image, models, input_modality)]
    # judged only when some model declares its modality
    checked: list[str] = ["modality"] if any(getattr(m, "modality", None) for m in models) \
        else []
    volumes = class_volumes_ml(labels, label_names)
    value_of = {n: v for v, n in label_names.items()}
    for info in models:
        record = getattr(info, "training_record", None)
        if not isinstance(record, Mapping):
            continue
        tag = f"{info.name}: " if len(models) > 1 else ""
        names = [n for n in info.labels if n in value_of and value_of[n] != 0]
        classes, intensity = record.get("classes"), record.get("intensity")
        extent = record.get("extent_mm")
        runs: list[tuple[str, Any]] = []
        if isinstance(classes, Mapping) and classes:
            runs.append(("volume", partial(volume_findings, {n: volumes[n] for n in names},
                                           classes)))
        if isinstance(intensity, Sequence) and intensity:
            mask = _foreground(labels.array[0], [value_of[n] for n in names],
                               sum(1 for v in label_names if v != 0))
            runs.append(("intensity", partial(intensity_findings, image, mask, intensity,
                                              absolute_channels(info))))
        if isinstance(extent, Mapping):
            runs.append(("extent", partial(extent_findings, image, extent)))
        plausible = record.get("plausible_ml")
        if isinstance(plausible, Mapping) and plausible:
            runs.append(("plausible", partial(plausible_findings,
                                              {n: volumes[n] for n in names}, plausible)))
        for check, run in runs:
            checked.append(check)
            try:
                found = run()
            except (TypeError, ValueError, KeyError, AttributeError):
                found = [Finding("record", f"training record of {info.name} is malformed: "
                                           f"{check} not checked")]
            findings += [Finding(f.check, (tag if f.class_name is None and f.check != "record"
                                           else "") + f.message, f.class_name) for f in found]
    checked += ["border", "empty"]
    findings += border_findings(labels, label_names) + empty_findings(image, labels)
    unique = tuple(dict.fromkeys(findings))
    return QC("warn" if unique else "ok", unique, tuple(dict.fromkeys(checked)))
