"""What the Models page says about a model, as text and table rows (no raw JSON): its
limitations, drawn from what the model records about itself, and its preprocessing and other
settings as readable rows.

Limitations come from, in order: the bundle config's own ``limitations`` (a string or a list
of strings, written by whoever trained it), the modality (or its absence), the training data
(``training_record``: cases, class volumes, field of view; synthesised images), the grid it
works on, its weakest class (test or validation Dice) and, for models from other tools, their
licence. Each is a plain sentence; the page shows them escaped (:func:`medseg_ui.text.plain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medseg.models.base import ModelInfo

#: friendly names of preprocessing settings
SETTING_NAMES = {"target_spacing": "resampled to (mm)", "orientation": "reoriented to",
                 "intensity": "intensity"}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range(lo: Any, hi: Any, unit: str = "") -> str:
    text = _number(lo) if lo == hi else f"{_number(lo)}–{_number(hi)}"
    return f"{text} {unit}".rstrip()


def readable(value: Any, key: str = "") -> str:
    """One cell: numbers with ``:g``, a list of numbers joined by ``×`` for sizes and
    spacings (``,`` otherwise), a mapping as ``key value; ...``, None as ``–``."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k} {readable(v, str(k))}" for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = [readable(v, key) for v in value]
        sizes = any(word in key for word in ("spacing", "size", "shape", "extent"))
        return (" × " if sizes and all(isinstance(v, (int, float)) for v in value)
                else ", ").join(items)
    return str(value)


def setting_rows(settings: Mapping[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """``{"setting", "value"}`` rows of a nested mapping, nested keys joined by ``·``."""
    rows: list[dict[str, str]] = []
    for key, value in settings.items():
        name = f"{prefix}{SETTING_NAMES.get(str(key), str(key).replace('_', ' '))}"
        if isinstance(value, Mapping) and value:
            rows += setting_rows(value, f"{name} · ")
        else:
            rows.append({"setting": name, "value": readable(value, str(key))})
    return rows


def intensity_text(intensity: Mapping[str, Any]) -> str:
    """The intensity normalisation in words (medseg.ops.preprocess's schemes)."""
    scheme = intensity.get("scheme", "zscore")
    clip = intensity.get("clip")
    if scheme == "percentile":
        text = (f"percentile: the {_number(intensity.get('lower', 0.5))}th and "
                f"{_number(intensity.get('upper', 99.5))}th percentiles of the image to 0 and 1")
        return text + (f", clipped to [{_number(clip[0])}, {_number(clip[1])}]" if clip else "")
    if scheme == "ct":
        return (f"CT: clipped to [{_number(clip[0])}, {_number(clip[1])}] HU, then minus "
                f"{_number(intensity.get('mean'))} and divided by {_number(intensity.get('std'))}"
                " (training foreground statistics)") if clip else "CT window"
    if scheme == "zscore":
        return "z-score: minus the mean, divided by the standard deviation of the image's " \
               "non-zero voxels"
    if scheme == "none":
        return "none (values used as stored)"
    return readable(intensity)


def preprocessing_rows(pre: Mapping[str, Any]) -> list[dict[str, str]]:
    """A bundle's preprocessing as rows: resampling, orientation, intensity in words."""
    rows = []
    for key, value in pre.items():
        if key == "intensity" and isinstance(value, Mapping):
            rows.append({"setting": "intensity", "value": intensity_text(value)})
        elif key == "target_spacing" and value is None:
            rows.append({"setting": "resampled to (mm)", "value": "the input's own spacing"})
        elif isinstance(value, Mapping):
            rows += setting_rows(value, f"{key.replace('_', ' ')} · ")
        else:
            rows.append({"setting": SETTING_NAMES.get(key, key.replace("_", " ")),
                         "value": readable(value, key)})
    return rows


def _declared(config: Mapping[str, Any]) -> list[str]:
    own = config.get("limitations")
    if isinstance(own, str):
        return [own]
    if isinstance(own, Sequence):
        return [str(x) for x in own]
    return []


def _training_data(info: ModelInfo, training: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    record = info.training_record or {}
    cases = record.get("cases")
    synth = (training.get("config") or {}).get("synth") if isinstance(
        training.get("config"), Mapping) else False
    if cases:
        source = (" (label maps; the images were synthesised from them, not real scans)"
                  if synth else "")
        out.append(f"Trained on {cases} cases{source}; larger, more varied data may hold "
                   "anatomy or scanners it has not seen.")
    classes = record.get("classes") or {}
    ranges = [f"{name} {_range(c['min_ml'], c['max_ml'], 'mL')}" for name, c in classes.items()
              if isinstance(c, Mapping) and "min_ml" in c and "max_ml" in c]
    if ranges:
        out.append("Class volumes seen in training: " + ", ".join(ranges)
                   + "; results well outside them are flagged by QC.")
    extent = record.get("extent_mm") or {}
    if extent.get("min") and extent.get("max"):
        fov = " × ".join(_range(lo, hi) for lo, hi in zip(extent["min"], extent["max"],
                                                          strict=False))
        out.append(f"Field of view in training: {fov} mm; a much smaller or larger input is "
                   "flagged by QC.")
    if not record:
        out.append("The model records nothing about its training data: QC cannot compare a "
                   "result's volumes or extent with what it was trained on.")
    return out


def limitations(info: ModelInfo, config: Mapping[str, Any] | None = None) -> list[str]:
    """Plain sentences on what the model cannot be trusted with (see the module docstring)."""
    config = config or {}
    training = config.get("training") if isinstance(config.get("training"), Mapping) else {}
    out = _declared(config)
    if info.modality:
        out.append(f"Made for {info.modality} images only: an input of another modality "
                   "gets a QC warning and its result should not be used.")
    else:
        out.append("Declares no modality: nothing warns when a CT model meets an MR image or "
                   "the reverse.")
    if info.in_channels > 1:
        names = ", ".join(info.channel_names) or f"{info.in_channels} channels"
        out.append(f"Needs {info.in_channels} co-registered input channels in this order: "
                   f"{names}.")
    out += _training_data(info, training or {})
    if info.spacing:
        out.append("Works on a " + " × ".join(_number(s) for s in info.spacing)
                   + " mm grid: detail finer than that is not resolved, and much coarser "
                   "inputs (thick slices) are less accurate.")
    scores = (training or {}).get("test_dice") or (training or {}).get("val_dice") or {}
    if scores:
        which = "test" if (training or {}).get("test_dice") else "validation"
        name, value = min(scores.items(), key=lambda kv: kv[1])
        out.append(f"Weakest class: {name} ({which} Dice {value:.2f} on its own held-out "
                   "cases); check it before use.")
    licence = info.details.get("licence") if info.details else None
    if licence:
        out.append(f"Licence: {licence}.")
    return out
