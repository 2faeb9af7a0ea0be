"""Evaluate page: score the current case against a reference, or a whole cohort; a study adds
acceptance criteria (PASS/FAIL), subgroups from a metadata CSV, volume agreement and a
paired comparison with a second model. File and case names are shown as plain text (never
as markdown)."""

from __future__ import annotations

import shutil
from pathlib import Path

import streamlit as st

from medseg.evaluation.classes import parse_class_tokens, split_text
from medseg.evaluation.intervals import DEFAULT_MIN_N, StatsOptions
from medseg.evaluation.metrics import VOXEL_TOLERANCE
from medseg.evaluation.options import EvaluationOptions
from medseg.evaluation.pairs import evaluate_pair
from medseg.evaluation.report import paired_svg, summary_rows
from medseg.evaluation.run import evaluate_folders
from medseg.evaluation.study.compare import compare_folders
from medseg.evaluation.study.criteria import load_criteria
from medseg.evaluation.study.options import StudyOptions
from medseg.evaluation.study.subgroups import read_metadata
from medseg.io.archive import safe_extract_zip
from medseg_ui import engine
from medseg_ui.session import (
    DEFAULT_MAX_UPLOAD_MB,
    LABEL_SUFFIXES,
    ZIP_SUFFIXES,
    UploadError,
    display_name,
    error_message,
    save_upload,
    session_folder,
    uploader_limit,
)
from medseg_ui.text import plain

st.set_page_config(page_title="medseg · Evaluate", page_icon=":material/analytics:", layout="wide")
st.title("Evaluate")

state = st.session_state
folder = session_folder(state)
HIDE = {str(folder.path): "session"}
max_mb = float(st.get_option("server.maxUploadSize") or DEFAULT_MAX_UPLOAD_MB)
COLUMNS = ("class", "label", "status", "dice", "iou", "hd95", "nsd", "ref_volume_ml",
           "pred_volume_ml")


def class_labels():
    """The classes scored: the Labels box when filled in (names, or values merged as
    ``brain=1,2,3``), else the names of the model that made the current mask (background
    left out), else None (the values found, named from the masks' headers)."""
    text = state.get("eval_labels", "").strip()
    if text:
        return parse_class_tokens(split_text(text), option="Labels")
    seg = state.get("seg")
    if seg is None:
        return None
    return {v: n for v, n in seg.label_names.items() if v != 0}


#: column titles with units (NSD's carries the tolerance used: see nsd_title)
COLUMN_TITLES = {"hd95": "hd95 (mm)", "ref_volume_ml": "ref volume (mL)",
                 "pred_volume_ml": "pred volume (mL)"}


def nsd_title(rows: list[dict]) -> str:
    """``nsd @ 5 mm``: evaluate_pair's default tolerance is the case's voxel size."""
    tols = sorted({r["nsd_tolerance_mm"] for r in rows if r.get("nsd_tolerance_mm")})
    return f"nsd @ {tols[0]:g} mm" if len(tols) == 1 else "nsd"


def dice_chart(rows: list[dict], value: str = "dice", title: str = "Dice") -> None:
    """Dice per class, bars in the table's order (label order), not alphabetical."""
    import pandas as pd

    frame = pd.DataFrame({"class": pd.Categorical([r["class"] for r in rows],
                                                  categories=[r["class"] for r in rows],
                                                  ordered=True),
                          title: [r[value] for r in rows]})
    st.bar_chart(frame, x="class", y=title, height=260, sort=False)


def lift_single_folder(target) -> None:
    """A zip holding one folder of masks (``preds/case.nii.gz``): its files move up into
    ``target`` (macOS's ``__MACOSX`` folder is dropped)."""
    shutil.rmtree(target / "__MACOSX", ignore_errors=True)
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        for item in inner.iterdir():
            item.rename(target / item.name)
        inner.rmdir()


def mean_of(values: list) -> str:
    """Mean over the classes that have a value (a class empty in both maps has none)."""
    found = [float(v) for v in values if v is not None and v == v]
    return f"{sum(found) / len(found):.3f}" if found else "–"


st.text_input("Labels (optional): name classes or merge values, e.g. brain=1,2,3",
              key="eval_labels", placeholder="brain=1,2,3",
              help="Applied to both masks before scoring. brain=1,2,3 scores the union of "
                   "classes 1, 2 and 3 as one class 'brain' (a reference that outlines the "
                   "whole brain against a tissue model); liver=1 spleen=2 only names values. "
                   "Empty: the model's classes.")

# ---- this case ------------------------------------------------------------------------------
st.header("This case")
seg = state.get("seg")
if seg is None:
    st.info("Run a segmentation on the **Segment** page first.")
else:
    st.markdown(f"Mask of **{plain(state['image_name'])}** by model "
                f"**{plain(state['seg_model'])}**.")
    resample = st.checkbox("Resample the mask onto the reference grid when the grids differ",
                           value=True, key="pair_resample")
    sample = state.get("sample")
    reference = None
    shown = ""
    has_bundled = sample is not None and sample.reference is not None
    if has_bundled and st.button("Score against the bundled reference", key="score_bundled"):
        reference, shown = sample.reference, f"{sample.case} reference"
    upload = st.file_uploader(("…or upload" if has_bundled else "Upload")
                              + " a reference mask (NIfTI, NRRD, MHA, PNG)",
                              key="ref_upload", **uploader_limit(max_mb))
    if upload is not None and st.button("Score against the uploaded reference",
                                        key="score_upload"):
        shown = display_name(upload.name)
        try:
            reference = save_upload(upload.getvalue(), upload.name,
                                    folder.subdir("reference"), "reference", LABEL_SUFFIXES,
                                    max_mb)
        except Exception as exc:
            state["pair_error"] = error_message(exc, HIDE)
            state.pop("pair_rows", None)
    if reference is not None:
        try:
            ref = engine.read_reference(reference)
            rows = evaluate_pair(seg.labels, ref, class_labels(), resample=resample)
        except Exception as exc:
            state["pair_error"] = error_message(
                exc, {**HIDE, str(reference): shown, str(reference.parent): "sample_data"})
            state.pop("pair_rows", None)
        else:
            state.pop("pair_error", None)
            state["pair_rows"] = {"rows": rows, "reference": shown}
    if state.get("pair_error"):
        st.error(plain(state["pair_error"]))
    if state.get("pair_rows"):
        result = state["pair_rows"]
        class_rows = sorted((r for r in result["rows"] if r["class"] != "all"),
                            key=lambda r: r["label"])  # table and chart in label order
        overall = next(r for r in result["rows"] if r["class"] == "all")
        if overall.get("note"):  # before any score: say why it may mean nothing
            st.warning(plain(f"Check the reference: {overall['note']}"))
        st.markdown(f"Scores against **{plain(result['reference'])}**")
        titles = {**COLUMN_TITLES, "nsd": nsd_title(class_rows)}
        st.dataframe([{titles.get(c, c): r.get(c) for c in COLUMNS} for r in class_rows],
                     hide_index=True, key="dice_table")
        st.caption(f"NSD tolerance: {VOXEL_TOLERANCE} (CLI: `medseg evaluate --tolerance MM` "
                   "sets another).")
        c1, c2 = st.columns(2)
        c1.metric("Mean Dice (classes above)", mean_of([r["dice"] for r in class_rows]))
        c2.metric("Semantic mIoU, background included", f"{overall.get('miou', float('nan')):.3f}",
                  help="Mean IoU over every label value including the background, over all "
                       "voxels (the semantic-segmentation convention); not the mean of the "
                       "class IoUs in the table")
        dice_chart(class_rows)

# ---- cohort ---------------------------------------------------------------------------------
st.header("Cohort")
mode = st.radio("Cases", ["Masks predicted in this session (bundled test references)",
                          "Upload zips of predictions and references"], key="cohort_mode")
cohort = folder.path / "cohort"
ready = False
second_zip = None
if mode.startswith("Masks predicted"):
    preds = state.get("predictions", {})
    if preds:
        st.markdown("Cases: " + ", ".join(f"**{plain(c)}** ({plain(p['model'])})"
                                          for c, p in preds.items()))
        ready = st.button("Evaluate cohort", key="cohort_run")
        if ready:
            shutil.rmtree(cohort, ignore_errors=True)
            pred_dir, ref_dir = folder.subdir("cohort/pred"), folder.subdir("cohort/ref")
            image_dir = folder.subdir("cohort/images")  # the report's gallery is drawn on them
            for case, p in preds.items():
                shutil.copyfile(p["mask"], pred_dir / f"{case}.nii.gz")
                shutil.copyfile(p["reference"], ref_dir / f"{case}.nii.gz")
                if p.get("image") and Path(p["image"]).is_file():
                    shutil.copyfile(p["image"], image_dir / Path(p["image"]).name)
    else:
        st.info("Segment one or more bundled test samples on the **Segment** page; their "
                "masks are scored here against the bundled references.")
else:
    c1, c2 = st.columns(2)
    pred_zip = c1.file_uploader("Predictions (.zip of masks)", key="pred_zip",
                                **uploader_limit(max_mb))
    ref_zip = c2.file_uploader("References (.zip of masks, same case names)", key="ref_zip",
                               **uploader_limit(max_mb))
    second_zip = st.file_uploader("Compare with a second model: its predictions (.zip, "
                                  "optional; the first zip is model A)", key="pred2_zip",
                                  **uploader_limit(max_mb))
    images_zip = st.file_uploader("Images (.zip, optional: case.nii.gz or case_0000.nii.gz; "
                                  "the report's gallery is drawn on them)", key="images_zip",
                                  **uploader_limit(max_mb))
    if pred_zip is not None and ref_zip is not None and st.button("Evaluate cohort",
                                                                   key="cohort_run"):
        try:
            shutil.rmtree(cohort, ignore_errors=True)
            zips = folder.subdir("cohort_zips")
            uploads = [(pred_zip, "pred"), (ref_zip, "ref")]
            if second_zip is not None:
                uploads.append((second_zip, "pred2"))
            if images_zip is not None:
                uploads.append((images_zip, "images"))
            for upload, role in uploads:
                archive = save_upload(upload.getvalue(), upload.name, zips, role, ZIP_SUFFIXES,
                                      max_mb)
                target = folder.subdir(f"cohort/{role}")
                safe_extract_zip(archive, target)
                lift_single_folder(target)
            ready = True
        except Exception as exc:
            state["cohort_error"] = error_message(exc, HIDE)
            state.pop("cohort", None)

with st.expander("Study: acceptance criteria and subgroups (optional)"):
    crit_upload = st.file_uploader("Acceptance criteria (JSON or YAML, written before the "
                                   "study)", key="criteria_file", type=["json", "yaml", "yml"])
    meta_upload = st.file_uploader("Case metadata (CSV with a 'case' column)",
                                   key="metadata_file", type=["csv"])
    by_text = st.text_input("Group by (metadata columns, comma separated)", key="group_by")
    min_n = st.number_input("Fewest cases for a CI or a CI-based decision (also per subgroup)",
                            min_value=2, value=DEFAULT_MIN_N, step=1, key="min_n")
    st.caption("Criteria: a list of {class, metric, statistic (mean, median, ci_low, "
               "ci_high, pNN), op (>=, >, <=, <), threshold}; checked before any scoring. "
               "Classes are the model's class names after a segmentation in this session, "
               "label values (1, 2, ...) otherwise.")


def study_options(labels: dict[int, str] | None) -> StudyOptions | None:
    """Criteria and metadata from the uploads, validated before scoring (one-line errors)."""
    study_dir = folder.subdir("study")
    criteria = ()
    if crit_upload is not None:
        suffix = ".yaml" if crit_upload.name.lower().endswith((".yaml", ".yml")) else ".json"
        path = save_upload(crit_upload.getvalue(), f"c{suffix}", study_dir, "criteria",
                           (suffix,), max_mb)
        criteria = load_criteria(path, labels)
    by = tuple(b.strip() for b in by_text.split(",") if b.strip())
    metadata = None
    if meta_upload is not None:
        path = save_upload(meta_upload.getvalue(), "m.csv", study_dir, "metadata", (".csv",),
                           max_mb)
        metadata = read_metadata(path, by)
    elif by:
        raise UploadError("grouping needs a metadata CSV")
    if not criteria and not by:
        return None
    return StudyOptions(criteria=criteria, metadata=metadata, by=by, min_n=int(min_n),
                        metadata_source="uploaded metadata")


if ready:
    try:
        labels = class_labels()
        study = study_options(labels)
        with st.spinner("Scoring cases…"):
            options = EvaluationOptions(labels=labels, resample=True, workers=1, progress=False,
                                        stats=StatsOptions(min_n=int(min_n)),
                                        images=(cohort / "images") if (cohort / "images")
                                        .is_dir() else None)
            comparison = None
            if (cohort / "pred2").is_dir():
                compared = compare_folders(cohort / "ref", [cohort / "pred", cohort / "pred2"],
                                           cohort / "report", options, names=["A", "B"],
                                           study=study)
                result = compared.models["A"]
                comparison = {"rows": compared.rows,
                              "html": compared.files["html"].read_bytes()}
            else:
                result = evaluate_folders(cohort / "pred", cohort / "ref", cohort / "report",
                                          options, study=study)
    except Exception as exc:
        state["cohort_error"] = error_message(exc, {**HIDE, str(cohort / "ref"): "references",
                                                    str(cohort / "pred"): "predictions"})
        state.pop("cohort", None)
    else:
        state.pop("cohort_error", None)
        state["cohort"] = {
            "summary": summary_rows(result.summary),
            "per_case": [r for r in result.rows if r["class"] != "all"],
            "errors": result.errors,
            "unpaired": result.pairing.pred_only + result.pairing.ref_only,
            "files": {k: p.read_bytes() for k, p in result.files.items()},
            "sections": dict(result.sections),
            "agreement": result.sections.get("volume_agreement", {}),
            "comparison": comparison,
        }
if state.get("cohort_error"):
    st.error(plain(state["cohort_error"]))
if state.get("cohort"):
    res = state["cohort"]
    for case, err in res["errors"].items():
        st.warning(plain(f"{case}: {err.replace(str(folder.path), 'session')}"))
    if res["unpaired"]:
        st.warning(plain(f"Unpaired cases (left out): {', '.join(res['unpaired'])}"))
    crit = res["sections"].get("criteria")
    if crit:
        n_pass = sum(c["result"] == "PASS" for c in crit["criteria"])
        verdict = (f"Acceptance criteria: {crit.get('verdict', 'FAIL')} "
                   f"({n_pass} of {len(crit['criteria'])} passed)")
        (st.success if crit["passed"] else st.error)(verdict)
        st.dataframe([{k: c[k] for k in ("id", "text", "value", "n", "result", "note")}
                      for c in crit["criteria"]], hide_index=True, key="criteria_table")
    dice = [r for r in res["summary"] if r["metric"] == "dice"]
    st.subheader("Dice per class")
    st.dataframe([{k: r.get(k) for k in ("class", "n", "mean", "std", "median", "min", "max",
                                          "ci_low", "ci_high")} for r in dice],
                 hide_index=True, key="cohort_table")
    dice_chart(dice, value="mean", title="mean Dice")  # in the table's (label) order
    comparison = res.get("comparison")
    if comparison:
        st.subheader("Model B versus model A (paired, same cases)")
        st.dataframe([{k: c[k] for k in ("class", "metric", "n_pairs", "mean_a", "mean_b",
                                         "mean_diff", "ci_low", "ci_high", "ci_note",
                                         "p_wilcoxon", "n_wilcoxon", "p_holm", "wins", "ties",
                                         "losses", "n_excluded", "n_imputed")}
                      for c in comparison["rows"]], hide_index=True, key="comparison_table")
        plots = [paired_svg(c["a"], c["b"], ("A", "B"), f"dice: {c['class']}")
                 for c in comparison["rows"] if c["metric"] == "dice"]
        st.html("<div style='display:flex;flex-wrap:wrap;gap:8px'>" + "".join(plots)
                + "</div>")
    sub = res["sections"].get("subgroups")
    if sub:
        st.subheader("Subgroups")
        st.dataframe([{k: r[k] for k in ("by", "group", "class", "metric", "n", "mean",
                                         "ci_low", "ci_high", "ci_note")}
                      for r in sub["rows"] if r["metric"] == "dice"], hide_index=True,
                     key="subgroup_table")
    if res["agreement"]:
        st.subheader("Volume agreement (Bland-Altman, Lin's CCC)")
        st.dataframe([{"class": name, "n": a["n"], "bias_ml": a["ml"]["bias"],
                       "loa_low_ml": a["ml"]["loa_low"], "loa_high_ml": a["ml"]["loa_high"],
                       "bias_pct": a["pct"]["bias"], "ccc": a["ccc"]}
                      for name, a in res["agreement"].items()], hide_index=True,
                     key="agreement_table")
    with st.expander("Per case"):
        st.dataframe([{c: r.get(c) for c in ("case", *COLUMNS)} for r in res["per_case"]],
                     hide_index=True)
    files = res["files"]
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Report (HTML)", files["html"], "report.html", mime="text/html",
                       key="dl_report")
    c2.download_button("Per case (CSV)", files["per_case"], "per_case.csv", mime="text/csv",
                       key="dl_per_case")
    c3.download_button("Summary (JSON)", files["summary_json"], "summary.json",
                       mime="application/json", key="dl_summary")
    if comparison:
        c4.download_button("Comparison (HTML)", comparison["html"], "comparison.html",
                           mime="text/html", key="dl_comparison")
    elif "criteria" in files:
        c4.download_button("Criteria (JSON)", files["criteria"], "criteria.json",
                           mime="application/json", key="dl_criteria")
