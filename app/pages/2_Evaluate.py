"""Evaluate page: score the current case against a reference, or a whole cohort."""

from __future__ import annotations

import shutil

import streamlit as st

from medseg.evaluation import evaluate_folders, evaluate_pair
from medseg.io.archive import safe_extract_zip
from medseg.report import summary_rows
from medseg_ui import engine
from medseg_ui.session import (
    DEFAULT_MAX_UPLOAD_MB,
    LABEL_SUFFIXES,
    ZIP_SUFFIXES,
    display_name,
    error_message,
    save_upload,
    session_folder,
    uploader_limit,
)

st.set_page_config(page_title="medseg · Evaluate", page_icon=":material/analytics:", layout="wide")
st.title("Evaluate")

state = st.session_state
folder = session_folder(state)
HIDE = {str(folder.path): "session"}
max_mb = float(st.get_option("server.maxUploadSize") or DEFAULT_MAX_UPLOAD_MB)
COLUMNS = ("class", "label", "status", "dice", "iou", "hd95", "nsd", "ref_volume_ml",
           "pred_volume_ml")


def class_labels() -> dict[int, str] | None:
    """Class names of the model that made the current mask (background left out)."""
    seg = state.get("seg")
    if seg is None:
        return None
    return {v: n for v, n in seg.label_names.items() if v != 0}


def dice_chart(rows: list[dict]) -> None:
    data = {"class": [r["class"] for r in rows], "Dice": [r["dice"] for r in rows]}
    st.bar_chart(data, x="class", y="Dice", height=260)


# ---- this case ------------------------------------------------------------------------------
st.header("This case")
seg = state.get("seg")
if seg is None:
    st.info("Run a segmentation on the **Segment** page first.")
else:
    st.markdown(f"Mask of **{state['image_name']}** by model **{state['seg_model']}**.")
    resample = st.checkbox("Resample the mask onto the reference grid when the grids differ",
                           value=True, key="pair_resample")
    sample = state.get("sample")
    reference = None
    shown = ""
    has_bundled = sample is not None and sample.reference is not None
    if has_bundled and st.button("Score against the bundled reference", key="score_bundled"):
        reference, shown = sample.reference, f"{sample.case} reference"
    upload = st.file_uploader("…or upload a reference mask (NIfTI, NRRD, MHA, PNG)",
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
        st.error(state["pair_error"])
    if state.get("pair_rows"):
        result = state["pair_rows"]
        class_rows = [r for r in result["rows"] if r["class"] != "all"]
        st.markdown(f"Scores against **{result['reference']}**")
        st.dataframe([{c: r.get(c) for c in COLUMNS} for r in class_rows], hide_index=True,
                     key="dice_table")
        overall = next(r for r in result["rows"] if r["class"] == "all")
        c1, c2 = st.columns(2)
        c1.metric("Mean Dice", f"{sum(r['dice'] for r in class_rows) / len(class_rows):.3f}"
                  if class_rows else "–")
        c2.metric("Mean IoU (semantic)", f"{overall.get('miou', float('nan')):.3f}")
        dice_chart(class_rows)

# ---- cohort ---------------------------------------------------------------------------------
st.header("Cohort")
mode = st.radio("Cases", ["Masks predicted in this session (bundled test references)",
                          "Upload zips of predictions and references"], key="cohort_mode")
cohort = folder.path / "cohort"
ready = False
if mode.startswith("Masks predicted"):
    preds = state.get("predictions", {})
    if preds:
        st.markdown("Cases: " + ", ".join(f"**{c}** ({p['model']})" for c, p in preds.items()))
        ready = st.button("Evaluate cohort", key="cohort_run")
        if ready:
            shutil.rmtree(cohort, ignore_errors=True)
            pred_dir, ref_dir = folder.subdir("cohort/pred"), folder.subdir("cohort/ref")
            for case, p in preds.items():
                shutil.copyfile(p["mask"], pred_dir / f"{case}.nii.gz")
                shutil.copyfile(p["reference"], ref_dir / f"{case}.nii.gz")
    else:
        st.info("Segment one or more bundled test samples on the **Segment** page; their "
                "masks are scored here against the bundled references.")
else:
    c1, c2 = st.columns(2)
    pred_zip = c1.file_uploader("Predictions (.zip of masks)", key="pred_zip",
                                **uploader_limit(max_mb))
    ref_zip = c2.file_uploader("References (.zip of masks, same case names)", key="ref_zip",
                               **uploader_limit(max_mb))
    if pred_zip is not None and ref_zip is not None and st.button("Evaluate cohort",
                                                                   key="cohort_run"):
        try:
            shutil.rmtree(cohort, ignore_errors=True)
            zips = folder.subdir("cohort_zips")
            for upload, role in ((pred_zip, "pred"), (ref_zip, "ref")):
                archive = save_upload(upload.getvalue(), upload.name, zips, role, ZIP_SUFFIXES,
                                      max_mb)
                safe_extract_zip(archive, folder.subdir(f"cohort/{role}"))
            ready = True
        except Exception as exc:
            state["cohort_error"] = error_message(exc, HIDE)
            state.pop("cohort", None)

if ready:
    try:
        with st.spinner("Scoring cases…"):
            result = evaluate_folders(cohort / "pred", cohort / "ref", cohort / "report",
                                      labels=class_labels(), resample=True, workers=1,
                                      progress=False)
    except Exception as exc:
        state["cohort_error"] = error_message(exc, HIDE)
        state.pop("cohort", None)
    else:
        state.pop("cohort_error", None)
        state["cohort"] = {
            "summary": summary_rows(result.summary),
            "per_case": [r for r in result.rows if r["class"] != "all"],
            "errors": result.errors,
            "unpaired": result.pairing.pred_only + result.pairing.ref_only,
            "files": {k: p.read_bytes() for k, p in result.files.items()},
        }
if state.get("cohort_error"):
    st.error(state["cohort_error"])
if state.get("cohort"):
    res = state["cohort"]
    for case, err in res["errors"].items():
        st.warning(f"{case}: {err.replace(str(folder.path), 'session')}")
    if res["unpaired"]:
        st.warning(f"Unpaired cases (left out): {', '.join(res['unpaired'])}")
    dice = [r for r in res["summary"] if r["metric"] == "dice"]
    st.subheader("Dice per class")
    st.dataframe([{k: r.get(k) for k in ("class", "n", "mean", "std", "median", "min", "max",
                                          "ci_low", "ci_high")} for r in dice],
                 hide_index=True, key="cohort_table")
    st.bar_chart({"class": [r["class"] for r in dice], "mean Dice": [r["mean"] for r in dice]},
                 x="class", y="mean Dice", height=260)
    with st.expander("Per case"):
        st.dataframe([{c: r.get(c) for c in ("case", *COLUMNS)} for r in res["per_case"]],
                     hide_index=True)
    files = res["files"]
    c1, c2, c3 = st.columns(3)
    c1.download_button("Report (HTML)", files["html"], "report.html", mime="text/html",
                       key="dl_report")
    c2.download_button("Per case (CSV)", files["per_case"], "per_case.csv", mime="text/csv",
                       key="dl_per_case")
    c3.download_button("Summary (JSON)", files["summary_json"], "summary.json",
                       mime="application/json", key="dl_summary")
