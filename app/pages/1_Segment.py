"""Segment page: load an image, run a model bundle, view slices with the mask, download."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from medseg.io.names import case_name
from medseg_ui import (
    engine,
    modality_ui,
    prompt_mode,
    qc_banner,
    seg_download,
    viewer,
    volumes_table,
)
from medseg_ui.model_picker import pick_model
from medseg_ui.session import (
    DEFAULT_MAX_UPLOAD_MB,
    IMAGE_SUFFIXES,
    display_name,
    error_message,
    save_upload,
    session_folder,
    uploader_limit,
)
from medseg_ui.text import plain

st.set_page_config(page_title="medseg · Segment", page_icon=":material/image_search:",
                   layout="wide")
st.title("Segment")

state = st.session_state
folder = session_folder(state)
HIDE = {str(folder.path): "session"}


def set_image(volume, name: str, sample=None, source=None) -> None:
    """A new input: forget the previous result and viewer positions. ``source``: the file or
    folder read (a DICOM folder gets a DICOM SEG download)."""
    state["image"] = volume
    state["image_name"] = name
    state["sample"] = sample
    state["dicom_source"] = seg_download.dicom_folder(source)
    if state.get("model") is None:  # nothing chosen yet: suggest a model by modality
        found = modality_ui.of_input(state, volume)
        state["model_suggest"] = modality_ui.suggest(engine.models(), found, volume)
        state["rerun_for_model"] = state["model_suggest"] is not None
    for key in ("seg", "seg_model", "seg_codes_model", "mask_bytes", "pair_rows"):
        state.pop(key, None)
    viewer.reset(state)
    prompt_mode.reset(state)


def keep_result(seg, model: str, codes_model: str) -> None:
    """A new segmentation for the viewer, volumes and downloads (``codes_model``: the model
    whose DICOM segment codes the SEG uses)."""
    state["seg"] = seg
    state["seg_model"] = model
    state["seg_codes_model"] = codes_model
    state["seg_serial"] = state.get("seg_serial", 0) + 1  # fresh class selector
    case = state["sample"].case if state.get("sample") else "upload"
    mask_path = folder.subdir("predictions", fresh=False) / f"{case}.nii.gz"
    state["mask_bytes"] = engine.write_mask(seg, image, mask_path)
    if state.get("sample") is not None and state["sample"].reference is not None:
        preds = state.setdefault("predictions", {})
        preds[case] = {"mask": mask_path, "reference": state["sample"].reference,
                       "model": model, "image": state["sample"].path}


# ---- model and settings (sidebar) -----------------------------------------------------------
models = engine.models()
if state.get("model") is None and state.get("model_suggest") in models:
    state["model"] = state.pop("model_suggest")  # before the picker is drawn
with st.sidebar:
    st.header("Model")
    picked = pick_model(models, key="model", trust_key="trust", hide=HIDE)
    model, trust = picked.name, picked.trust
    postprocessors = st.multiselect(
        "Postprocessors", list(engine.registry().postprocessors), key="postprocessors",
        help="Registry postprocessors applied in order after the model")
    fast = st.checkbox("Fast (coarser grid, less overlap)", key="fast")
    mirror = st.checkbox("Test-time mirroring", key="mirror")
    own_overlap = st.checkbox("Model's own window overlap", value=True, key="own_overlap",
                              help="medseg bundles: their config (0.25); nnU-Net: 0.5")
    overlap = None if own_overlap else st.slider("Window overlap", 0.0, 0.75, 0.25, 0.05,
                                                 key="overlap")

# ---- input ----------------------------------------------------------------------------------
source = st.radio("Input", ["Upload a file", "Bundled sample"], horizontal=True, key="source")
max_mb = float(st.get_option("server.maxUploadSize") or DEFAULT_MAX_UPLOAD_MB)
if source == "Upload a file":
    upload = st.file_uploader(
        "NIfTI (.nii/.nii.gz), NRRD/MHA, a zipped DICOM series (.zip), one DICOM file (.dcm, "
        "single or multi-frame) or a 2D image "
        f"(PNG/JPEG/TIFF); up to {max_mb:.0f} MB", key="upload", **uploader_limit(max_mb))
    if upload is not None and state.get("upload_id") != upload.file_id:
        state["upload_id"] = upload.file_id
        try:
            work = folder.subdir("input")
            path = save_upload(upload.getvalue(), upload.name, work, "image", IMAGE_SUFFIXES,
                               max_mb)
            shown = display_name(upload.name)
            unzipped = folder.subdir("input_unzipped")
            volume = engine.read_input(path, unzipped)
            set_image(volume, shown, source=unzipped)
        except Exception as exc:
            state.pop("image", None)
            # the upload is saved as image<suffix>: show the user's own file name instead
            saved = {str(folder.path / "input" / f"image{sfx}"): display_name(upload.name)
                     for sfx in IMAGE_SUFFIXES}
            state["load_error"] = error_message(exc, {**HIDE, **saved})
        else:
            state.pop("load_error", None)
else:
    options = {s.title: s for s in engine.samples()}
    title = st.selectbox("Sample", list(options), key="sample_pick")
    choice = options.get(title)
    if st.button("Load sample", key="load_sample") and choice is not None:
        try:
            set_image(engine.read_input(choice.path, folder.subdir("input_unzipped")),
                      choice.title, choice, source=choice.path)
        except Exception as exc:
            state["load_error"] = error_message(exc, HIDE)
        else:
            state.pop("load_error", None)

if state.get("load_error"):
    st.error(plain(state["load_error"]))
if state.pop("rerun_for_model", False):
    st.rerun()  # draw the sidebar again with the model suggested for this input

image = state.get("image")
if image is None:
    st.info("Upload an image or load a sample to begin.")
    st.stop()

sp = " × ".join(f"{s:.3g}" for s in image.spacing)
shape = " × ".join(map(str, image.spatial_shape))
st.markdown(f"**{plain(state['image_name'])}** · shape {shape} · "
            f"spacing {sp} mm · orientation {image.orientation} · {image.n_channels} channel(s)")

# ---- run ------------------------------------------------------------------------------------
STEPS = ("preprocessing", "sliding-window inference", "resampling to the input grid",
         "postprocessing")
found = modality_ui.of_input(state, image)
run = False
if not models:
    st.warning("No model is available yet, so only viewing is possible.")
elif model is None:
    st.info("Choose a model in the sidebar. None is picked for you unless the input's "
            "modality fits one.")
    if found.modality:
        st.caption(plain(f"Input: {found.describe()}"))
elif picked.info is not None and picked.info.prompts:  # a promptable model: point at things
    st.subheader("Prompts")
    added = prompt_mode.show(state, image, model, trust=trust, hide=HIDE)
    if added is not None:
        keep_result(added.seg, added.made_by, added.codes_model)
        st.rerun()  # the picture again, with the result's classes and no prompts
else:
    modality_ui.banner(image, picked.info, found, modality_ui.declared(state))
    run = st.button("Run segmentation", type="primary", key="run")
if run:
    with st.status(plain(f"Segmenting with {model}…"), expanded=True) as status:
        bar = st.progress(0.0, text="loading the model")

        def progress(message: str) -> None:
            step = next((i for i, s in enumerate(STEPS) if message.startswith(s)), 0)
            bar.progress((step + 1) / (len(STEPS) + 1), text=plain(message))
            st.markdown(plain(message))

        try:
            seg = engine.segmenter(model, overlap=overlap, mirror=mirror, fast=fast,
                                   postprocessors=tuple(postprocessors), trust=trust)(
                image, where=state["image_name"], progress=progress,
                modality=modality_ui.declared(state))
            bar.progress(1.0, text="done")
            status.update(label=plain(f"Segmented with {model}"), state="complete",
                          expanded=False)
        except Exception as exc:
            status.update(label="Segmentation failed", state="error", expanded=False)
            state["run_error"] = error_message(exc, HIDE)
        else:
            state.pop("run_error", None)
            keep_result(seg, model, model)
if state.get("run_error"):
    st.error(plain(state["run_error"]))

seg = state.get("seg")
if seg is not None:
    qc_banner.show(getattr(seg, "qc", None), state.get("seg_model", ""))

# ---- viewer ---------------------------------------------------------------------------------
st.subheader("Viewer")
instances = viewer.show(state, image, seg)

# ---- volumes and downloads ------------------------------------------------------------------
if seg is not None:
    st.subheader(plain(f"Volumes ({state['seg_model']})"))
    rows = seg.volumes()
    st.table(volumes_table.frame(seg))  # st.table renders markdown: names escaped there
    base = (state["sample"].case if state.get("sample")
            else case_name(Path(state["image_name"]), bare=True))
    c1, c2, c3 = st.columns(3)
    # named as the CLI names them (X.nii.gz, X_volumes.csv, X_seg.dcm)
    c1.download_button("Download mask (NIfTI)", state["mask_bytes"], f"{base}.nii.gz",
                       mime="application/gzip", key="dl_mask")
    c2.download_button("Download volumes (CSV)", engine.volumes_csv(rows, seg.qc),
                       f"{base}_volumes.csv", mime="text/csv", key="dl_csv")
    with c3:
        seg_download.offer(state, key="seg_dicom", seg=seg, source=state.get("dicom_source"),
                           target=folder.subdir("seg_out", fresh=False) / "seg.dcm",
                           model=state.get("seg_codes_model") or state["seg_model"],
                           trust=trust, file_name=f"{base}_seg.dcm",
                           hide=HIDE)
    dicom = f", {base}_seg.dcm" if state.get("dicom_source") else ""
    # st.text: no markdown
    st.text(f"Files: {base}.nii.gz (on the input's grid), {base}_volumes.csv{dicom}")
    st.caption("Open **Evaluate** to score this mask against a reference.")
    if instances is not None:
        st.subheader("Instances")
        st.dataframe(pd.DataFrame(instances.rows()).set_index("instance_id"))
