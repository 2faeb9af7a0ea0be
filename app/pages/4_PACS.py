"""PACS page: browse a DICOMweb server, segment one series, view it, push the SEG back.

Everything the server sends (descriptions, UIDs, names) is shown through ``st.dataframe`` /
``st.text`` / plain widget options, never as markdown. Credentials come from the server's
environment (``MEDSEG_DICOMWEB_USER``/``_PASSWORD`` or ``_TOKEN``, or the JSON file named by
``MEDSEG_DICOMWEB_AUTH_FILE``), the URL from ``MEDSEG_DICOMWEB_URL`` unless typed in.
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from medseg.io import read_image
from medseg.io.names import series_case_name
from medseg.pacs.auth import resolve_credentials
from medseg.pacs.client import Server, open_client
from medseg.pacs.query import NON_IMAGE_MODALITIES, list_series, list_studies
from medseg.pacs.retrieve import download_series
from medseg.pacs.segmented import mark_segmented, segmented_series
from medseg.pacs.store import push_seg, same_study_seg
from medseg_ui import engine, qc_banner, seg_download, viewer, volumes_table
from medseg_ui.model_picker import pick_model
from medseg_ui.session import error_message, session_folder
from medseg_ui.text import plain

st.set_page_config(page_title="medseg · PACS", page_icon=":material/dns:", layout="wide")
st.title("PACS")

state = st.session_state
folder = session_folder(state)
HIDE = {str(folder.path): "session"}
STEPS = ("preprocessing", "sliding-window inference", "resampling to the input grid",
         "postprocessing")


def connect(url: str):
    """The server and a client for it (credentials and CA bundle from the environment)."""
    server = Server(url.strip(),
                    credentials=resolve_credentials(os.environ.get("MEDSEG_DICOMWEB_AUTH_FILE")),
                    ca_bundle=os.environ.get("MEDSEG_DICOMWEB_CA_BUNDLE") or None)
    return server, open_client(server)


def forget(*keys: str) -> None:
    for key in keys:
        state.pop(key, None)


def series_case(row) -> str:
    """The series' case name, as ``medseg segment --dicomweb`` names it (date, modality,
    series number, a hash of the UID)."""
    return series_case_name(str(row["SeriesInstanceUID"]), str(row.get("SeriesDate") or ""),
                            str(row.get("Modality") or ""), str(row.get("SeriesNumber", "")))


def load_series(client, server, study: str) -> None:
    """List the study's series and which of them a SEG on the server references."""
    rows = list_series(client, server, study)
    state["pacs_seg_links"] = segmented_series(client, server, study, rows)
    state["pacs_series"] = rows
    state["pacs_series_of"] = (server.url, study)


# ---- model (sidebar) ------------------------------------------------------------------------
models = engine.models()
with st.sidebar:
    st.header("Model")
    picked = pick_model(models, key="pacs_model", trust_key="pacs_trust", hide=HIDE)
    model, trust = picked.name, picked.trust
    modality = picked.info.modality if picked.info else None

# ---- server and studies ---------------------------------------------------------------------
url = st.text_input("DICOMweb URL", value=os.environ.get("MEDSEG_DICOMWEB_URL", ""),
                    key="pacs_url", placeholder="https://pacs.example.org/dicom-web",
                    help="The DICOMweb root. Credentials and CA bundle come from the server's "
                         "environment (docs/pacs.md), never from this page.")
if st.button("List studies", key="pacs_list") and url.strip():
    # a fresh listing: the series of the chosen study are listed again too
    forget("pacs_studies", "pacs_series", "pacs_series_of", "pacs_seg_links", "pacs_error",
           "pacs_image", "pacs_seg", "pacs_pushed")
    try:
        server, client = connect(url)
        state["pacs_studies"] = list_studies(client, server)
        state["pacs_server_url"] = server.url
    except Exception as exc:
        state["pacs_error"] = error_message(exc, HIDE)

if state.get("pacs_error"):
    st.error(plain(state["pacs_error"]))
studies = state.get("pacs_studies")
if studies is None:
    st.info("Enter the server's DICOMweb URL and list its studies.")
    st.stop()
if not studies:
    st.warning("The server holds no study.")
    st.stop()

st.subheader("Studies")
st.dataframe(pd.DataFrame(studies), hide_index=True, key="pacs_studies_table")
uids = [r["StudyInstanceUID"] for r in studies]
label = {r["StudyInstanceUID"]: f"{r['StudyDate'] or 'no date'} · {r['ModalitiesInStudy']} · "
                                f"{r['StudyDescription'] or 'no description'} · "
                                f"{r['StudyInstanceUID']}" for r in studies}
study = st.selectbox("Study", uids, format_func=label.get, key="pacs_study")
st.text(f"Study {study}")

if state.get("pacs_series_of") != (state.get("pacs_server_url"), study):
    forget("pacs_series", "pacs_series_of", "pacs_seg_links", "pacs_image", "pacs_seg",
           "pacs_pushed")
    try:
        server, client = connect(state["pacs_server_url"])
        load_series(client, server, study)
    except Exception as exc:
        st.error(plain(error_message(exc, HIDE)))
        st.stop()
series_rows = state["pacs_series"]
seg_links = state.get("pacs_seg_links") or {}
st.subheader("Series")
st.caption("SEG: whether a DICOM SEG stored in this study references the series.")
st.dataframe(pd.DataFrame(mark_segmented(series_rows, seg_links)), hide_index=True,
             key="pacs_series_table")
images = [r for r in series_rows if str(r["Modality"]).upper() not in NON_IMAGE_MODALITIES]
if not images:
    st.warning("This study holds no image series.")
    st.stop()
# the model's modality first
images.sort(key=lambda r: (str(r["Modality"]).upper() != (modality or "").upper()))
slabel = {r["SeriesInstanceUID"]: f"{r['Modality']} · #{r['SeriesNumber']} · "
                                  f"{r['SeriesDescription'] or 'no description'} · "
                                  f"{r['NumberOfSeriesRelatedInstances']} instances"
                                  + (" · has a SEG" if seg_links.get(r["SeriesInstanceUID"])
                                     else "")
          for r in images}
series = st.selectbox("Series", list(slabel), format_func=slabel.get, key="pacs_pick")
chosen = next(r for r in images if r["SeriesInstanceUID"] == series)
st.text(f"Series {series} · files named {series_case(chosen)}")

# ---- download + segment ---------------------------------------------------------------------
if not models:
    st.warning("No model is available, so nothing can be segmented.")
    st.stop()
if model is None:
    st.info("Choose a model in the sidebar.")
    st.stop()
if modality and chosen["Modality"] and str(chosen["Modality"]).upper() != modality.upper():
    st.warning(plain(f"Modality mismatch: model {model} is made for {modality} images, but "
                     f"this series is {chosen['Modality']} (declared in its DICOM header)."),
               icon=":material/warning:")
if st.button("Segment series", type="primary", key="pacs_run"):
    forget("pacs_image", "pacs_seg", "pacs_pushed", "pacs_run_error")
    viewer.reset(state)
    with st.status(plain(f"Segmenting series with {model}…"), expanded=True) as status:
        expected = chosen["NumberOfSeriesRelatedInstances"]
        expected = int(expected) if str(expected).isdigit() else None
        down = st.progress(0.0, text="downloading")
        bar = st.progress(0.0, text="segmentation: waiting for the download")

        def downloaded(n: int, total: int | None) -> None:
            down.progress(min(1.0, n / total) if total else 0.5,
                          text=f"downloading: {n}/{total or '?'} instances")

        def progress(message: str) -> None:
            step = next((i for i, s in enumerate(STEPS) if message.startswith(s)), 0)
            bar.progress((step + 1) / (len(STEPS) + 1), text=plain(f"segmentation: {message}"))

        try:
            server, client = connect(state["pacs_server_url"])
            target = folder.subdir("pacs_series")
            download_series(client, server, study, series, target, expected=expected,
                            progress=downloaded)
            down.progress(1.0, text="download done")
            image = read_image(target)
            seg = engine.segmenter(model, trust=trust)(image, where=series, progress=progress,
                                                       modality=str(chosen["Modality"]) or None)
            bar.progress(1.0, text="segmentation done")
            status.update(label=plain(f"Segmented with {model}"), state="complete",
                          expanded=False)
        except Exception as exc:
            status.update(label="Segmentation failed", state="error", expanded=False)
            state["pacs_run_error"] = error_message(exc, {**HIDE, str(folder.path / "pacs_series"):
                                                          f"{url.strip()} series {series}"})
        else:
            state.update(pacs_image=image, pacs_seg=seg, pacs_seg_model=model,
                         pacs_source=(study, series))
            state["seg_serial"] = state.get("seg_serial", 0) + 1
if state.get("pacs_run_error"):
    st.error(plain(state["pacs_run_error"]))

image, seg = state.get("pacs_image"), state.get("pacs_seg")
if image is None or seg is None or state.get("pacs_source") != (study, series):
    st.stop()
qc_banner.show(getattr(seg, "qc", None), state.get("pacs_seg_model", ""))
st.subheader("Viewer")
viewer.show(state, image, seg)
st.subheader(plain(f"Volumes ({state['pacs_seg_model']})"))
st.table(volumes_table.frame(seg))  # st.table renders markdown: names escaped there
seg_file = seg_download.offer(state, key="pacs_seg_file", seg=seg,
                              source=folder.path / "pacs_series",
                              target=folder.subdir("pacs_out", fresh=False) / "seg.dcm",
                              model=state["pacs_seg_model"], trust=trust,
                              file_name=f"{series_case(chosen)}_seg.dcm", hide=HIDE)

# ---- push -----------------------------------------------------------------------------------
st.subheader("Send back")
st.caption("Stores a DICOM SEG into this study on the server. It references the source "
           "series and carries the study's patient and study attributes (docs/pacs.md).")
if st.button("Push SEG to the server", key="pacs_push", disabled=seg_file is None):
    up = st.progress(0.0, text="upload: sending the SEG")
    try:
        server, client = connect(state["pacs_server_url"])
        source = folder.path / "pacs_series"
        up.progress(0.4, text="upload: sending")
        state["pacs_pushed"] = push_seg(client, server, same_study_seg(seg_file, source))
        up.progress(1.0, text="upload: done")
        forget("pacs_push_error")
        load_series(client, server, study)  # now with the SEG series, and the series marked
        st.rerun()
    except Exception as exc:
        state["pacs_push_error"] = error_message(exc, HIDE)
if state.get("pacs_push_error"):
    st.error(plain(state["pacs_push_error"]))
if state.get("pacs_pushed"):
    st.success("SEG stored on the server")
    st.text(f"SEG SOPInstanceUID {state['pacs_pushed']} in study {study}")
