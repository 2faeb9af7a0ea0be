"""Inline SVG plots of the HTML report (no plotting library needed to read the page)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def box_strip_svg(groups: Mapping[str, Sequence[float | None]], title: str, unit: str = "",
                  width: int = 720, height: int = 260) -> str:
    """An inline SVG box plot (median, IQR, 1.5 IQR whiskers) with jittered points per group."""
    esc = html.escape
    data = {k: np.asarray([v for v in vals if v is not None and math.isfinite(v)], float)
            for k, vals in groups.items()}
    allv = np.concatenate([v for v in data.values() if v.size] or [np.zeros(1)])
    lo, hi = min(0.0, float(allv.min())), float(allv.max())
    hi = hi if hi > lo else lo + 1.0
    hi += 0.05 * (hi - lo)
    left, right, top, bottom = 60, 10, 24, 40
    pw, ph = width - left - right, height - top - bottom

    def y(v: float) -> float:
        return top + ph * (1.0 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{esc(title)}">',
             f'<text x="{left}" y="15" font-size="13" font-weight="bold">{esc(title)}</text>']
    for t in np.linspace(lo, hi, 5):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y(t) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{t:.3g}</text>')
    parts.append(f'<text x="12" y="{top + ph / 2}" font-size="11" transform="rotate(-90 12 '
                 f'{top + ph / 2})" text-anchor="middle">{esc(unit)}</text>')
    n = max(1, len(data))
    rng = np.random.default_rng(0)
    for i, (name, vals) in enumerate(data.items()):
        cx = left + pw * (i + 0.5) / n
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<text x="{cx:.1f}" y="{height - 22}" font-size="11" '
                     f'text-anchor="middle">{esc(str(name))} (n={vals.size})</text>')
        if vals.size == 0:
            continue
        q1, med, q3 = np.percentile(vals, [25, 50, 75])
        iqr = q3 - q1
        wlo = float(vals[vals >= q1 - 1.5 * iqr].min())
        whi = float(vals[vals <= q3 + 1.5 * iqr].max())
        bw = min(60.0, pw / n * 0.5)
        parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(wlo):.1f}" y2="{y(whi):.1f}" '
                     f'stroke="{color}"/>')
        parts.append(f'<rect x="{cx - bw / 2:.1f}" y="{y(q3):.1f}" width="{bw:.1f}" '
                     f'height="{max(y(q1) - y(q3), 0.5):.1f}" fill="{color}" '
                     'fill-opacity="0.25" stroke="' + color + '"/>')
        parts.append(f'<line x1="{cx - bw / 2:.1f}" x2="{cx + bw / 2:.1f}" y1="{y(med):.1f}" '
                     f'y2="{y(med):.1f}" stroke="{color}" stroke-width="2"/>')
        jitter = rng.uniform(-bw * 0.4, bw * 0.4, vals.size)
        for v, j in zip(vals, jitter, strict=True):
            parts.append(f'<circle cx="{cx + j:.1f}" cy="{y(float(v)):.1f}" r="2.5" '
                         f'fill="{color}" fill-opacity="0.7"/>')
    parts.append("</svg>")
    return "".join(parts)


def _frame(width: int, height: int, title: str) -> list[str]:
    esc = html.escape
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="{esc(title)}">',
            f'<text x="8" y="15" font-size="13" font-weight="bold">{esc(title)}</text>']


def _range(values: np.ndarray) -> tuple[float, float]:
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.06 * (hi - lo)
    return lo - pad, hi + pad


def paired_svg(a: Sequence[float], b: Sequence[float], names: tuple[str, str], title: str,
               width: int = 260, height: int = 240) -> str:
    """Per-case lines from model A to model B (green: B better, red: worse, grey: tie)
    for a higher-is-better metric; the means as thick black points."""
    esc = html.escape
    x = np.asarray(a, float)
    y = np.asarray(b, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    lo, hi = _range(np.concatenate([x, y]))
    top, bottom, left, right = 24, 36, 44, 16
    ph = height - top - bottom

    def py(v: float) -> float:
        return top + ph * (1.0 - (v - lo) / (hi - lo))

    xa, xb = left + 20, width - right - 20
    parts = _frame(width, height, title)
    for t in np.linspace(lo, hi, 5):
        parts.append(f'<text x="{left - 4}" y="{py(t) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{t:.3g}</text>')
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(t):.1f}" '
                     f'y2="{py(t):.1f}" stroke="#eee"/>')
    for u, v in zip(x, y, strict=True):
        colour = "#2ca02c" if v > u else "#d62728" if v < u else "#999"
        parts.append(f'<line x1="{xa}" x2="{xb}" y1="{py(u):.1f}" y2="{py(v):.1f}" '
                     f'stroke="{colour}" stroke-opacity="0.6"/>')
    if x.size:
        parts.append(f'<line x1="{xa}" x2="{xb}" y1="{py(x.mean()):.1f}" '
                     f'y2="{py(y.mean()):.1f}" stroke="#000" stroke-width="2.5"/>')
    for xpos, name in ((xa, names[0]), (xb, names[1])):
        parts.append(f'<text x="{xpos}" y="{height - 18}" font-size="11" '
                     f'text-anchor="middle">{esc(name)}</text>')
    parts.append(f'<text x="{width / 2:.0f}" y="{height - 4}" font-size="10" '
                 f'text-anchor="middle">n = {x.size} paired cases</text></svg>')
    return "".join(parts)


def bland_altman_svg(mean: Sequence[float], diff: Sequence[float], bias: float, loa: tuple,
                     title: str, unit: str, width: int = 380, height: int = 250) -> str:
    """Bland-Altman plot: difference against mean of the two volumes, bias and 95% limits."""
    m = np.asarray(mean, float)
    d = np.asarray(diff, float)
    xlo, xhi = _range(m)
    refs = [v for v in (bias, *loa) if math.isfinite(v)]
    ylo, yhi = _range(np.concatenate([d, np.asarray(refs, float), [0.0]]))
    top, bottom, left, right = 24, 34, 52, 96
    pw, ph = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + pw * (v - xlo) / (xhi - xlo)

    def py(v: float) -> float:
        return top + ph * (1.0 - (v - ylo) / (yhi - ylo))

    parts = _frame(width, height, title)
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
                 'stroke="#ccc"/>')
    for t in np.linspace(ylo, yhi, 5):
        parts.append(f'<text x="{left - 4}" y="{py(t) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{t:.3g}</text>')
    for t in np.linspace(xlo, xhi, 5):
        parts.append(f'<text x="{px(t):.1f}" y="{top + ph + 12}" font-size="10" '
                     f'text-anchor="middle">{t:.4g}</text>')
    parts.append(f'<text x="{left + pw / 2:.0f}" y="{height - 6}" font-size="10" '
                 f'text-anchor="middle">mean of both ({html.escape(unit)})</text>')
    for v, label, dash in ((0.0, "0", "2,2"), (bias, "bias", ""), (loa[0], "-1.96 SD", "5,3"),
                           (loa[1], "+1.96 SD", "5,3")):
        if not math.isfinite(v):
            continue
        colour = "#999" if label == "0" else "#d62728" if label == "bias" else "#1f77b4"
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(v):.1f}" y2="{py(v):.1f}" '
                     f'stroke="{colour}" stroke-dasharray="{dash}"/>')
        if label != "0":
            parts.append(f'<text x="{left + pw + 3}" y="{py(v) + 4:.1f}" font-size="10" '
                         f'fill="{colour}">{label} {v:.3g}</text>')
    for u, v in zip(m, d, strict=True):
        if math.isfinite(u) and math.isfinite(v):
            parts.append(f'<circle cx="{px(u):.1f}" cy="{py(v):.1f}" r="3" fill="#333" '
                         'fill-opacity="0.7"/>')
    parts.append("</svg>")
    return "".join(parts)
