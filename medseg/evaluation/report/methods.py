"""A methods paragraph generated from the settings of a report, ready to paste into a paper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _mm(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _tolerances(tol: Mapping[str, Any]) -> str:
    values = {_mm(v) for v in tol.values() if v is not None}
    if len(values) == 1:
        return f"{next(iter(values))} mm"
    return ", ".join(f"{name} {_mm(mm)} mm" for name, mm in tol.items() if mm is not None)


def _intervals(settings: Mapping[str, Any]) -> str:
    rec = settings.get("intervals")
    if not rec:
        return ("Means are reported with 95% percentile-bootstrap confidence intervals (2000 "
                "resamples of cases, fixed seed).")
    method = {"bca": "bias-corrected and accelerated (BCa) bootstrap intervals with "
                     "Hesterberg's small-sample expansion",
              "percentile": "percentile-bootstrap intervals",
              "t": "t-based intervals"}[rec["ci_method"]]
    side = "one-sided " if rec["one_sided"] else ""
    unit = f"patients (cluster bootstrap by {rec['cluster']})" if rec["cluster"] else "cases"
    boot = (f" ({rec['resamples']} resamples of {unit}, seed {rec['seed']}; the Monte-Carlo "
            "error of each bound was reported and "
            "decisions within two Monte-Carlo standard errors of a threshold flagged)"
            if rec["resamples"] else "")
    return (f"Means are reported with {100 * rec['ci_level']:g}% {side}{method}{boot}. No "
            f"interval, interval-based criterion or non-inferiority verdict was given below "
            f"{rec['min_n']} cases (reported as not evaluable).")


def methods_paragraph(settings: Mapping[str, Any], sections: Mapping[str, Any] | None = None,
                      n_cases: int | None = None) -> str:
    """Plain text: metrics and their definitions, the empty-mask policy, the bootstrap, the
    tests used, the study additions present in ``sections``, and software versions."""
    sections = sections or {}
    sw = settings.get("software", {})
    tol = settings.get("nsd_tolerance_mm") or {}
    empty = settings.get("empty_score")
    cohort = f"{n_cases} cases were" if n_cases is not None else "Each case was"
    parts = [
        f"{cohort} scored per class with medseg {sw.get('medseg', '?')} (metric definitions "
        f"version {settings.get('metrics_version', '?')}). Dice = 2TP/(2TP+FP+FN) and IoU = "
        "TP/(TP+FP+FN) were computed from voxel counts. Surface metrics used the border of "
        "each mask (the mask minus its face-connected erosion) and exact Euclidean distances "
        "in mm between border-voxel centres, scaled by the voxel spacing: HD95 is the larger "
        "of the two directed 95th percentiles, ASSD the mean of all directed distances, and "
        "the normalized surface Dice (NSD; Nikolov et al. 2021) the fraction of border voxels "
        f"within a tolerance of {_tolerances(tol) if tol else 'the set tolerance'} of the "
        f"other border ({settings.get('nsd_tolerance', 'set by the user')}). Volumes were "
        "voxel counts times the voxel volume.",
        "A class absent from both prediction and reference was "
        + (f"scored {empty:g} for Dice, IoU and NSD" if empty is not None
           else "left out of Dice, IoU and NSD (undefined)")
        + "; a class present in only one of them scored 0 for Dice, IoU and NSD with "
        "undefined surface distances, which were counted apart and never averaged.",
        _intervals(settings),
    ]
    missing = settings.get("missing_distance")
    if missing == "worst":
        parts[1] = parts[1].replace(
            "with undefined surface distances, which were counted apart and never averaged",
            "and HD95, HD and ASSD equal to the diagonal of the image extent in mm (the worst "
            "possible distance, as Metrics Reloaded recommends for a missed or spurious "
            "structure); the number of such cases is reported beside every statistic")
    agreement = sections.get("volume_agreement")
    if agreement:
        parts.append("Volume agreement was assessed with Bland-Altman analysis (bias and 95% "
                     "limits of agreement, bias +- 1.96 SD of the paired differences, in mL and "
                     "in percent of the mean of both volumes, with 95% CIs of the bias and of "
                     "each limit), Lin's concordance correlation coefficient (95% CI by Lin's "
                     "z-transform) and the two-way intraclass correlations ICC(A,1), absolute "
                     "agreement, and ICC(C,1), consistency (McGraw and Wong 1996), with their "
                     "95% CIs.")
    detection = sections.get("detection")
    if detection and detection.get("classes"):
        parts.append(f"For {', '.join(map(str, detection['classes']))}, lesions were the "
                     f"{detection.get('rule', 'connected components')}; per-lesion sensitivity "
                     "was pooled over cases with a cluster-bootstrap CI (cases as clusters), "
                     "false positives were counted per case, the lesion-wise Dice followed the "
                     "BraTS 2023 definition, and a free-response ROC was traced over a minimum "
                     "lesion size.")
    if "criteria" in sections:
        crit = sections["criteria"]["criteria"]
        n = len(crit)
        text = (f"{n} acceptance criteria fixed before the analysis were each judged PASS or "
                "FAIL on the stated statistic of the per-case values (value and threshold "
                "compared at 12 decimals), or NOT EVALUABLE when too few cases were available")
        if any(c.get("endpoint") for c in crit):
            text += ("; the primary criteria decided the result and the secondary ones were "
                     "tested in a fixed sequence (each only after every earlier one passed)")
        parts.append(text + ".")
    if "subgroups" in sections:
        sub = sections["subgroups"]
        parts.append(f"Results were summarised per subgroup ({', '.join(sub['by'])}); subgroups "
                     f"with fewer than {sub['min_n']} cases are reported without a confidence "
                     "interval.")
    if "readers" in sections:
        r = sections["readers"]
        parts.append(f"{len(r['readers'])} readers segmented every case; inter-reader Dice and "
                     "HD95 were computed for every reader pair, the model was compared with each "
                     "reader and with a STAPLE consensus (Warfield et al. 2004; SimpleITK), which "
                     "served as the reference for the summary, and the model's mean agreement "
                     "with the readers was compared per case with the readers' agreement with "
                     "each other (paired bootstrap CI of the difference).")
    if "comparison" in sections:
        parts.append("Models were compared on the same cases by the mean paired difference with "
                     "a paired bootstrap CI (as above) and the two-sided Wilcoxon signed-rank "
                     "test (SciPy; zero differences excluded, absolute differences within 1e-9 "
                     "treated as ties; exact distribution without ties up to 50 pairs, exact "
                     "permutation with ties up to 13, otherwise the tie-corrected normal "
                     "approximation without continuity correction) with the Hodges-Lehmann "
                     "estimate and its distribution-free CI, and with Holm's (family-wise) and "
                     "Benjamini-Hochberg's (false discovery rate) adjustments over classes.")
    versions = ", ".join(f"{k} {v}" for k, v in sw.items() if k != "platform")
    parts.append(f"Software: {versions}.")
    return " ".join(parts)
