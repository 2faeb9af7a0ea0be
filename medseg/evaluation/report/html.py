"""The self-contained HTML report page (inline CSS, SVG plots and PNG pictures)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from medseg.evaluation.metrics import METRIC_INFO
from medseg.evaluation.report.methods import methods_paragraph
from medseg.evaluation.report.svg import bland_altman_svg, box_strip_svg, paired_svg
from medseg.evaluation.stats import STATS

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:12px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.err{color:#a00}.note{color:#555;font-size:12px}svg{display:block;margin:.5em 0}
.pass{color:#fff;background:#2a7d2a;padding:1px 6px;border-radius:3px;font-weight:bold}
.fail{color:#fff;background:#b22;padding:1px 6px;border-radius:3px;font-weight:bold}
.na{color:#fff;background:#a60;padding:1px 6px;border-radius:3px;font-weight:bold}
.verdict{font-size:1.1em;padding:.5em;border:2px solid #888;margin:.5em 0}
.plots{display:flex;flex-wrap:wrap;gap:8px}.gallery figure{display:inline-block;margin:4px}
figcaption{font-size:11px;color:#444;max-width:260px}th.sort{cursor:pointer}
.methods{background:#f7f7f7;padding:.6em;border-left:3px solid #888}
.keep{break-inside:avoid;page-break-inside:avoid}
@media print{body{margin:0;max-width:none}h2,h3{break-after:avoid;page-break-after:avoid}
svg,figure,tr,.keep{break-inside:avoid;page-break-inside:avoid}}
"""
#: sorts a table by the clicked column (numbers numerically); the page works without it
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){th.classList.add('sort');
  th.addEventListener('click',function(){var b=t.tBodies[0],r=Array.from(b.rows),
   asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';r.sort(function(x,y){
   var a=x.cells[i].textContent,c=y.cells[i].textContent,p=parseFloat(a),q=parseFloat(c);
   var v=(isNaN(p)||isNaN(q))?a.localeCompare(c):p-q;return asc?v:-v;});
   r.forEach(function(e){b.appendChild(e);});});});});
"""
#: per-case table columns
CASE_COLUMNS = ("case", "class", "status", "dice", "iou", "hd95", "assd", "nsd",
                "nsd_tolerance_mm", "ref_volume_ml", "pred_volume_ml", "rel_volume_diff_pct")



def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def _ci(stats: Mapping[str, Any], key: str) -> str:
    """A CI bound; ``n < 10`` (the note) when too few cases; "-" when n <= 1."""
    if stats.get(key) is None and stats.get("ci_note"):
        return html.escape(str(stats["ci_note"]))
    if stats.get("n", 0) <= 1:
        return "-"
    return _fmt(stats.get(key))


def _metric_label(metric: str, tolerance: Any = None) -> str:
    unit = METRIC_INFO.get(metric, ("", True, ""))[0]
    label = f"{metric} ({unit})" if unit else metric
    if metric == "nsd" and tolerance is not None:
        label = f"nsd @ {_mm(tolerance)} mm"
    return label


def _mm(value: Any) -> str:
    """A tolerance: a number (``2``) or a range over cases (``"3.5-5"``)."""
    return f"{value:g}" if isinstance(value, (int, float)) else html.escape(str(value))


def _tolerance_note(settings: Mapping[str, Any]) -> str:
    rule = settings.get("nsd_tolerance")
    return f" NSD tolerance: {html.escape(str(rule))}." if rule else ""


def _tol(settings: Mapping[str, Any], name: Any) -> Any:
    return (settings.get("nsd_tolerance_mm") or {}).get(str(name))


def _badge(result: str) -> str:
    kind = "pass" if result == "PASS" else "fail" if result == "FAIL" else "na"
    return f"<span class='{kind}'>{result}</span>"


def criteria_html(crit: Mapping[str, Any]) -> str:
    """The PASS/FAIL block put at the top of the report."""
    overall = crit.get("verdict", "PASS" if crit["passed"] else "FAIL")
    n_pass = sum(c["result"] == "PASS" for c in crit["criteria"])
    out = [f"<div class='verdict'>Acceptance criteria: {_badge(overall)} "
           f"({n_pass} of {len(crit['criteria'])} passed)</div>",
           "<table><tr><th class='l'>id</th><th class='l'>endpoint</th>"
           "<th class='l'>criterion</th><th>value</th><th>n</th><th>excluded</th>"
           "<th>worst-case</th><th>result</th><th class='l'>note</th></tr>"]
    for c in crit["criteria"]:
        value = "n &lt; min" if c["value"] is None else _fmt(c["value"])
        out.append(f"<tr><td class='l'>{html.escape(c['id'])}</td><td class='l'>"
                   f"{html.escape(c.get('endpoint', ''))}</td><td class='l'>"
                   f"{html.escape(c['text'])}</td><td>{value}</td><td>{c['n']}</td>"
                   f"<td>{c.get('n_excluded', '')}</td><td>{c.get('n_imputed', '')}</td>"
                   f"<td>{_badge(c['result'])}</td><td class='l'>{html.escape(c['note'])}</td>"
                   "</tr>")
    intervals = crit.get("intervals")
    if intervals:
        out.append(f"<p class='note'>Minimum n for a CI decision: {intervals['min_n']}; "
                   f"CI method {html.escape(str(intervals['ci_method']))}, level "
                   f"{intervals['ci_level']}{' one-sided' if intervals['one_sided'] else ''}, "
                   f"resamples {intervals['resamples']}, seed {intervals['seed']}.</p>")
    out.append("</table>")
    return "\n".join(out)


def _compact_html(classes: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """First on the page: one row per class, Dice with its CI, HD95 and NSD means."""
    esc = html.escape
    rows = [(name, item) for name, item in classes.items()
            if item.get("label") is not None and "dice" in item["metrics"]]
    if not rows:
        return []
    out = ["<div class='keep'><h2>Dice per class</h2><table><tr><th class='l'>class</th>"
           "<th>label</th><th>n</th><th>mean Dice</th><th>95% CI</th><th>median Dice</th>"
           "<th>mean HD95 (mm)</th><th>mean NSD</th><th>NSD tolerance (mm)</th></tr>"]
    for name, item in rows:
        m = item["metrics"]
        dice, hd95, nsd = m["dice"], m.get("hd95", {}), m.get("nsd", {})
        ci = ("-" if dice.get("n", 0) <= 1
              else f"{_fmt(dice.get('ci_low'), 3)}&ndash;{_fmt(dice.get('ci_high'), 3)}")
        tol = _tol(settings, name)
        out.append(f"<tr><td class='l'>{esc(str(name))}</td><td>{esc(str(item['label']))}</td>"
                   f"<td>{dice.get('n', 0)}</td><td>{_fmt(dice.get('mean'), 3)}</td>"
                   f"<td>{ci}</td><td>{_fmt(dice.get('median'), 3)}</td>"
                   f"<td>{_fmt(hd95.get('mean'), 3)}</td><td>{_fmt(nsd.get('mean'), 3)}</td>"
                   f"<td>{'' if tol is None else _mm(tol)}</td></tr>")
    out.append(f"</table><p class='note'>{_tolerance_note(settings)}</p></div>")
    return out


def _summary_html(classes: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    esc = html.escape
    out = ["<h2>Summary</h2><p class='note'>Statistics over finite values; n = cases covered, "
           "NaN = cases where the metric is undefined under the empty-mask policy (excluded "
           "= NaN + failed); worst-case = distances set to the image diagonal for a missed or "
           f"spurious structure ({html.escape(str(settings.get('missing_distance', '')))}); "
           f"CI = {html.escape(str(settings.get('bootstrap', 'bootstrap interval')))}; "
           f"NSD at the tolerance shown.{_tolerance_note(settings)}</p>"]
    head = "".join(f"<th>{h}</th>" for h in ("n", "NaN", "excluded", "worst-case", "mean",
                                             "std", "median", "Q1", "Q3", "min", "max",
                                             "CI low", "CI high"))
    for name, item in classes.items():
        counts = ", ".join(f"{k} {v}" for k, v in item["status"].items() if v)
        # heading, note and table kept on one page (no heading orphaned in the PDF)
        out.append(f"<div class='keep'><h3>{esc(str(name))}"
                   + (f" (label {esc(str(item['label']))})" if item["label"] else "")
                   + f"</h3><p class='note'>{item['n_cases']} cases: {esc(counts)}</p>")
        out.append(f"<table><tr><th class='l'>metric</th>{head}</tr>")
        for metric, s in item["metrics"].items():
            if metric.startswith("lesion_"):  # per-case lesion counts: see Lesion detection
                continue
            keys = ("n", "n_nan", "n_excluded", "n_imputed", *STATS[2:11])
            cells = "".join(f"<td>{_ci(s, k) if k.startswith('ci_') else _fmt(s.get(k))}</td>"
                            for k in keys)
            label = _metric_label(metric, _tol(settings, name))
            out.append(f"<tr><td class='l'>{esc(label)}</td>{cells}</tr>")
        out.append("</table></div>")
    return out


def _per_case_html(rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> list[str]:
    esc = html.escape
    class_rows = [r for r in rows if r.get("label") is not None or r.get("status") == "error"]
    tols = {str(v) for v in (settings.get("nsd_tolerance_mm") or {}).values()}
    nsd_head = (f"nsd @ {_mm(next(iter((settings.get('nsd_tolerance_mm') or {}).values())))} mm"
                if len(tols) == 1 else "nsd (tolerance per class)")
    heads = [nsd_head if c == "nsd" else "nsd tolerance (mm)" if c == "nsd_tolerance_mm"
             else _metric_label(c) for c in CASE_COLUMNS]
    out = ["<h2 id='per-case'>Per case</h2><p class='note'>Every case and class; click a "
           "column to sort. The same rows, with every metric, are in "
           "<a href='per_case.csv'>per_case.csv</a>.</p>",
           "<table class='sortable'><thead><tr>"
           + "".join(f"<th class='l'>{esc(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
    for r in class_rows:
        cells = "".join(f"<td class='l'>{esc(str(r.get(c, '')))}</td>" if c in
                        ("case", "class", "status") else f"<td>{_fmt(r.get(c))}</td>"
                        for c in CASE_COLUMNS)
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return out


def _gallery_html(pictures: Sequence[Mapping[str, Any]]) -> list[str]:
    if not pictures:
        return []
    esc = html.escape
    on_image = any(g.get("on_image") for g in pictures)
    key = ("On the image: reference border red, prediction border blue, yellow where they "
           "coincide; tinted red: reference only (missed); tinted blue: prediction only "
           "(extra)." if on_image else "Grey: both agree; red: reference only (missed); blue: "
           "prediction only (extra); masks alone (no images were given: "
           "<code>--images DIR</code> draws them on the image).")
    out = [f"<h2>Worst cases: slice of largest disagreement</h2><p class='note'>{key} "
           "Pictures also in <code>gallery/</code>.</p><div class='gallery'>"]
    for g in pictures:
        out.append(f"<figure><img alt='{esc(g['case'])} {esc(str(g['class']))}' "
                   f"src='data:image/png;base64,{g['png_base64']}' width='240'>"
                   f"<figcaption>{esc(g['case'])}, {esc(str(g['class']))}: Dice "
                   f"{_fmt(g['dice'])}; {esc(g['slice'])} ({g['n_disagree']} voxels differ)"
                   "</figcaption></figure>")
    out.append("</div>")
    return out


def _detection_html(detection: Mapping[str, Any]) -> list[str]:
    if not detection.get("classes"):
        return []
    esc = html.escape
    out = [f"<h2>Lesion detection</h2><p class='note'>{esc(str(detection.get('rule', '')))}. "
           "Sensitivity = matched reference lesions / reference lesions, pooled over cases "
           "(CI: cluster bootstrap over cases); FP = unmatched predicted components; "
           "lesion-wise Dice as BraTS 2023; FROC over a minimum-size threshold, score = mean "
           "sensitivity at 1/8 to 8 FP per case.</p>",
           "<table><tr><th class='l'>class</th><th>cases</th><th>lesions (ref / pred)</th>"
           "<th>TP / FN / FP</th><th>sensitivity [CI]</th><th>FP per case [CI]</th>"
           "<th>lesion-wise Dice [CI]</th><th>FROC score</th></tr>"]
    for name, d in detection["classes"].items():
        def ci(key: str, item: Mapping[str, Any] = d) -> str:
            if item.get(f"{key}_ci_low") is None:
                return f"{_fmt(item.get(key))} [{esc(item.get('ci_note') or '-')}]"
            return (f"{_fmt(item.get(key))} [{_fmt(item[key + '_ci_low'])}, "
                    f"{_fmt(item[key + '_ci_high'])}]")

        out.append(f"<tr><td class='l'>{esc(str(name))}</td><td>{d['n_cases']}</td>"
                   f"<td>{d['n_ref_lesions']} / {d['n_pred_lesions']}</td>"
                   f"<td>{d['tp']} / {d['fn']} / {d['fp']}</td><td>{ci('sensitivity')}</td>"
                   f"<td>{ci('fp_per_case')}</td><td>{ci('lesion_dice')}</td>"
                   f"<td>{_fmt(d['froc_score'])}</td></tr>")
    out.append("</table>")
    return out


def _agreement_html(agreement: Mapping[str, Any]) -> list[str]:
    if not agreement:
        return []
    out = ["<h2>Volume agreement</h2><p class='note'>Bland-Altman: bias = mean(V_pred - "
           "V_ref), limits of agreement = bias +- 1.96 SD; % relative to the mean of both "
           "volumes; cases where both volumes are 0 left out; [95% CIs]. CCC = Lin's "
           "concordance correlation coefficient (agreement with the identity line; CI by "
           "Lin's z-transform); ICC(A,1) = absolute agreement, ICC(C,1) = consistency "
           "(McGraw & Wong, two-way model, single rater) on the mL volumes.</p>",
           "<table><tr><th class='l'>class</th><th>n</th><th>bias (mL)</th><th>95% CI of bias"
           "</th><th>LoA (mL) [CI of each limit]</th><th>bias (%)</th><th>LoA (%)</th>"
           "<th>CCC [CI]</th><th>ICC(A,1) [CI]</th><th>ICC(C,1) [CI]</th></tr>"]
    plots = []
    for name, a in agreement.items():
        ml, pct = a["ml"], a["pct"]
        ci = "-" if a["n"] <= 1 else f"{_fmt(ml['bias_ci_low'])} to {_fmt(ml['bias_ci_high'])}"
        def with_ci(d: Mapping[str, Any], key: str) -> str:
            return (f"{_fmt(d.get(key))} [{_fmt(d.get(key + '_ci_low'))}, "
                    f"{_fmt(d.get(key + '_ci_high'))}]")

        out.append(f"<tr><td class='l'>{html.escape(str(name))}</td><td>{a['n']}</td>"
                   f"<td>{_fmt(ml['bias'])}</td><td>{ci}</td><td>{with_ci(ml, 'loa_low')} to "
                   f"{with_ci(ml, 'loa_high')}</td><td>{_fmt(pct['bias'])}</td>"
                   f"<td>{_fmt(pct['loa_low'])} to {_fmt(pct['loa_high'])}</td>"
                   f"<td>{with_ci(a, 'ccc')}</td><td>{with_ci(a, 'icc_a1')}</td>"
                   f"<td>{with_ci(a, 'icc_c1')}</td></tr>")
        pts = a.get("points", [])
        if pts:
            mean = [(p["pred_ml"] + p["ref_ml"]) / 2 for p in pts]
            diff = [p["pred_ml"] - p["ref_ml"] for p in pts]
            plots.append(bland_altman_svg(mean, diff, ml["bias"], (ml["loa_low"],
                                          ml["loa_high"]), f"Bland-Altman: {name}", "mL"))
    out.append("</table>")
    out.append("<div class='plots'>" + "".join(plots) + "</div>")
    return out


def _subgroups_html(sub: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    esc = html.escape
    out = [f"<h2>Subgroups</h2><p class='note'>Each grouping on its own; CI = the study's "
           f"interval of the mean, not given below n = {sub['min_n']}. Source: "
           f"{esc(str(sub.get('source', '')))}.</p>"]
    for column in sub["by"]:
        rows = [r for r in sub["rows"] if r["by"] == column]
        metrics = list(dict.fromkeys(r["metric"] for r in rows))
        out.append(f"<h3>by {esc(column)}</h3><table><tr><th class='l'>{esc(column)}</th>"
                   "<th class='l'>class</th><th>cases</th>"
                   + "".join(f"<th>{esc(_metric_label(m))} mean [CI] (n)</th>" for m in metrics)
                   + "</tr>")
        keys = list(dict.fromkeys((r["group"], r["class"]) for r in rows))
        for group, name in keys:
            cells = []
            n_cases = 0
            for m in metrics:
                r = next(x for x in rows if (x["group"], x["class"], x["metric"]) ==
                         (group, name, m))
                n_cases = r["n_cases"]
                ci = (f" [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]" if r["ci_low"] is not None
                      else " [no CI]")
                cells.append(f"<td>{_fmt(r['mean'])}{ci} ({r['n']})</td>")
            out.append(f"<tr><td class='l'>{esc(group)}</td><td class='l'>{esc(str(name))}</td>"
                       f"<td>{n_cases}</td>{''.join(cells)}</tr>")
        out.append("</table>")
    return out


def _readers_html(readers: Mapping[str, Any]) -> list[str]:
    esc = html.escape
    out = [f"<h2>Readers</h2><p class='note'>Readers: {esc(', '.join(readers['readers']))}. "
           f"The summary above is scored against the consensus "
           f"({esc(readers.get('consensus', 'STAPLE'))}). Difference = model's mean agreement "
           "with the readers minus the readers' agreement with each other, per case.</p>"]
    for name, item in readers["classes"].items():
        out.append(f"<h3>{esc(str(name))}</h3><table><tr><th class='l'>metric</th>"
                   "<th class='l'>comparison</th><th>n</th><th>mean</th><th>CI low</th>"
                   "<th>CI high</th></tr>")
        for metric, m in item.items():
            lines = [(f"inter-reader {k}", v) for k, v in m["inter_reader"].items()]
            lines += [(f"model vs {k}", v) for k, v in m["model_vs_reader"].items()]
            lines += [("model vs consensus", m["model_vs_consensus"])]
            for label, s in lines:
                out.append(f"<tr><td class='l'>{esc(_metric_label(metric))}</td><td class='l'>"
                           f"{esc(label)}</td><td>{s['n']}</td><td>{_fmt(s['mean'])}</td>"
                           f"<td>{_ci(s, 'ci_low')}</td><td>{_ci(s, 'ci_high')}</td></tr>")
            d = m["difference"]
            out.append(f"<tr><td class='l'>{esc(_metric_label(metric))}</td><td class='l'>"
                       f"<b>difference</b>: {esc(m['verdict'])}</td><td>{d['n']}</td>"
                       f"<td>{_fmt(d['mean'])}</td><td>{_ci(d, 'ci_low')}</td>"
                       f"<td>{_ci(d, 'ci_high')}</td></tr>")
        out.append("</table>")
    perf = readers.get("reader_performance") or {}
    if perf:
        out.append("<h3>Reader performance (STAPLE estimates)</h3><p class='note'>Each "
                   "reader's sensitivity and specificity as STAPLE estimated them against "
                   "the consensus, per case; mean over cases [CI] (n).</p><table><tr>"
                   "<th class='l'>class</th><th class='l'>reader</th><th>sensitivity</th>"
                   "<th>specificity</th></tr>")
        for name, by_reader in perf.items():
            for reader, est in by_reader.items():
                cells = "".join(
                    f"<td>{_fmt(est[k]['mean'])} [{_ci(est[k], 'ci_low')}, "
                    f"{_ci(est[k], 'ci_high')}] ({est[k]['n']})</td>"
                    for k in ("sensitivity", "specificity"))
                out.append(f"<tr><td class='l'>{esc(str(name))}</td>"
                           f"<td class='l'>{esc(reader)}</td>{cells}</tr>")
        out.append("</table>")
    return out


def render_html(document: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The self-contained report page."""

    esc = html.escape
    settings = document["settings"]
    classes = document["classes"]
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           "<title>medseg evaluation report</title>", f"<style>{CSS}</style></head><body>",
           "<h1>Segmentation evaluation report</h1>",
           f"<p>{document['n_cases']} cases, {document['n_scored']} scored, "
           f"{len(document['errors'])} failed. Created {esc(str(settings.get('created', '')))}"
           f" by medseg {esc(settings['software']['medseg'])}. "
           "<a href='#per-case'>Per-case table</a>.</p>"]
    out += _compact_html(classes, settings)
    if document.get("criteria"):
        out.append("<h2>Acceptance criteria</h2>")
        out.append(criteria_html(document["criteria"]))
    unp = document["unpaired"]
    if unp["pred_only"] or unp["ref_only"]:
        out.append("<h2>Unpaired files (not scored)</h2><ul>")
        for f in unp["pred_only"]:
            out.append(f"<li class='err'>prediction without reference: {esc(f)}</li>")
        for f in unp["ref_only"]:
            out.append(f"<li class='err'>reference without prediction: {esc(f)}</li>")
        out.append("</ul>")
    if unp["ignored"]:
        out.append("<p class='note'>Ignored (not an image): "
                   + ", ".join(esc(f) for f in unp["ignored"]) + "</p>")
    if document["errors"]:
        out.append("<h2>Cases that could not be scored</h2><table><tr><th class='l'>case</th>"
                   "<th class='l'>error</th></tr>")
        for case, err in document["errors"].items():
            out.append(f"<tr><td class='l'>{esc(case)}</td><td class='l err'>{esc(err)}</td></tr>")
        out.append("</table>")
    out += _summary_html(classes, settings)
    class_rows = [r for r in rows if r.get("label") is not None]
    names = list(dict.fromkeys(r["class"] for r in class_rows))
    for metric, unit in (("dice", ""), ("hd95", "mm")):
        groups = {n: [r.get(metric) for r in class_rows if r["class"] == n] for n in names}
        if groups:
            out.append(box_strip_svg(groups, f"{metric} per class", unit))
    out += _agreement_html(document.get("volume_agreement") or {})
    out += _detection_html(document.get("detection") or {})
    if document.get("subgroups"):
        out += _subgroups_html(document["subgroups"], settings)
    if document.get("readers"):
        out += _readers_html(document["readers"])
    out.append("<h2>Worst cases</h2>")
    for metric, per_class in document["worst_cases"].items():
        direction = "lowest" if METRIC_INFO[metric][1] else "highest"
        out.append(f"<p><b>{metric}</b> ({direction})</p><table><tr><th class='l'>class</th>"
                   "<th class='l'>cases</th></tr>")
        for name, items in per_class.items():
            listing = ", ".join(f"{esc(c)} ({v:.4g})" for c, v in items)
            out.append(f"<tr><td class='l'>{esc(str(name))}</td><td class='l'>{listing}</td></tr>")
        out.append("</table>")
    out += _gallery_html(document.get("gallery") or [])
    out += _per_case_html(rows, settings)
    out.append("<h2>Methods</h2><p class='methods'>"
               + esc(methods_paragraph(settings, document, document["n_cases"])) + "</p>")
    out.append("<h2>Settings</h2><table>")
    for key, value in settings.items():
        if isinstance(value, Mapping):
            text = "<br>".join(f"{esc(str(k))}: {esc(str(v))}" for k, v in value.items()) or "none"
        else:
            text = esc(str(value))
        out.append(f"<tr><th class='l'>{esc(key)}</th><td class='l'>{text}</td></tr>")
    out.append(f"</table><script>{SORT_JS}</script></body></html>\n")
    return "\n".join(out)


def comparison_html(document: Mapping[str, Any], plot_metric: str = "dice") -> str:
    """The comparison section: a table per model pair and metric, paired plots per class."""
    esc = html.escape
    out = [f"<h2>Model comparison</h2><p class='note'>Baseline A = "
           f"{esc(document['baseline'])}; difference = B - A per case; {esc(document['method'])}"
           ". Better = higher for Dice/IoU/NSD, lower for distances and volume errors. "
           "Non-inferior: lower CI bound of B - A above -margin (higher-is-better metrics), "
           "upper bound below +margin (lower-is-better).</p>"]
    comps = document["comparisons"]
    pairs = list(dict.fromkeys((c["model_a"], c["model_b"]) for c in comps))
    k = len({c["class"] for c in comps})
    if k > 1:
        out.append(f"<p class='note'><b>Multiple comparisons:</b> {k} classes are tested per "
                   f"metric; at the 5% level about {0.05 * k:.2g} of them would come out "
                   "significant by chance alone. Read the Holm-adjusted p (family-wise error "
                   "over the classes of one metric), not the raw Wilcoxon p.</p>")
    for a, b in pairs:
        out.append(f"<h3>{esc(b)} vs {esc(a)}</h3><table><tr><th class='l'>metric</th>"
                   "<th class='l'>class</th><th>n</th><th>mean A</th><th>mean B</th>"
                   "<th>B - A</th><th>CI</th><th>Hodges-Lehmann [CI]</th>"
                   "<th>Wilcoxon p (n, method)</th><th>Holm p</th><th>FDR p</th>"
                   "<th>excluded</th><th>worst-case</th>"
                   "<th>win/tie/loss</th><th>non-inferior</th></tr>")
        for c in (c for c in comps if (c["model_a"], c["model_b"]) == (a, b)):
            ci = (esc(c["ci_note"]) if c["ci_low"] is None
                  else f"{_fmt(c['ci_low'])} to {_fmt(c['ci_high'])}")
            if c["margin"] is None:
                ni = "-"
            elif c["non_inferior"] is None:
                ni = esc(c.get("non_inferior_note", ""))
            else:
                ni = (f"{'yes' if c['non_inferior'] else 'no'} (margin {c['margin']:g})"
                      + (" &#9888; within MC error" if c.get("non_inferior_mc_flag") else ""))
            label = _metric_label(c["metric"], _tol(document["settings"], c["class"]))
            out.append(f"<tr><td class='l'>{esc(label)}</td>"
                       f"<td class='l'>{esc(str(c['class']))}</td><td>{c['n_pairs']}</td>"
                       f"<td>{_fmt(c['mean_a'])}</td><td>{_fmt(c['mean_b'])}</td>"
                       f"<td>{_fmt(c['mean_diff'])}</td><td>{ci}</td>"
                       f"<td>{_fmt(c.get('hl_estimate'))} [{_fmt(c.get('hl_ci_low'))}, "
                       f"{_fmt(c.get('hl_ci_high'))}]</td>"
                       f"<td>{_fmt(c['p_wilcoxon'])} ({c['n_wilcoxon']}, "
                       f"{esc(c.get('wilcoxon_method', ''))})</td>"
                       f"<td>{_fmt(c['p_holm'])}</td><td>{_fmt(c.get('p_fdr'))}</td>"
                       f"<td>{c['n_excluded']}</td><td>{c.get('n_imputed', '')}</td>"
                       f"<td>{c['wins']}/{c['ties']}/{c['losses']}</td><td>{ni}</td></tr>")
        out.append("</table><div class='plots'>")
        for c in comps:
            if (c["model_a"], c["model_b"]) == (a, b) and c["metric"] == plot_metric:
                out.append(paired_svg(c["a"], c["b"], (a, b), f"{plot_metric}: {c['class']}"))
        out.append("</div>")
    return "\n".join(out)


def render_comparison_page(document: Mapping[str, Any]) -> str:
    """``comparison.html``: the comparison section as a page of its own."""

    esc = html.escape
    models = "".join(f"<li>{esc(n)}: {esc(p)}</li>" for n, p in document["models"].items())
    metric = "dice" if "dice" in document["metrics"] else document["metrics"][0]
    return "\n".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>medseg model comparison</title>", f"<style>{CSS}</style></head><body>",
        "<h1>Model comparison</h1>",
        f"<p>Reference: {esc(document['reference'])}</p><ul>{models}</ul>",
        "<p class='note'>Each model's full report is in its own folder (report.html).</p>",
        criteria_html(document["criteria"]) if document.get("criteria") else "",
        comparison_html(document, metric),
        "<h2>Methods</h2><p class='methods'>"
        + esc(methods_paragraph(document["settings"], {"comparison": True})) + "</p>",
        "</body></html>\n",
    ])
