"""medseg web app: start page (``medseg app``, or ``streamlit run app/Home.py``)."""

from __future__ import annotations

import streamlit as st

from medseg import __version__
from medseg_ui import engine
from medseg_ui.session import sweep_stale_folders
from medseg_ui.text import plain

st.set_page_config(page_title="medseg", page_icon=":material/neurology:", layout="wide")
sweep_stale_folders()  # uploads left by a killed app (live sessions' folders stay)

st.title("medseg")
st.caption(f"Plugin-based medical image segmentation · version {__version__}")
st.markdown(
    "Segment a CT or MRI volume with a trained model (a medseg bundle, an nnU-Net v2 result "
    "folder or a MONAI bundle), look at the result slice by "
    "slice, and score it against a reference. Everything you upload stays in a private "
    "temporary folder of your session and is deleted when the session ends."
)

col1, col2, col3, col4 = st.columns(4)
with col1:
    st.page_link("pages/1_Segment.py", label="Segment", icon=":material/image_search:")
    st.caption("Upload a NIfTI, a zipped DICOM series or a 2D image (or pick a sample), "
               "run a model, view axial, coronal and sagittal slices, download the mask.")
with col2:
    st.page_link("pages/2_Evaluate.py", label="Evaluate", icon=":material/analytics:")
    st.caption("Dice and surface metrics for the current case or a whole cohort, with a "
               "downloadable report.")
with col3:
    st.page_link("pages/3_Models_and_plugins.py", label="Models and plugins",
                 icon=":material/extension:")
    st.caption("Registered architectures, losses, postprocessors, readers, metrics and "
               "model formats; every model found by name (medseg, nnU-Net, MONAI) with its "
               "labels.")
with col4:
    st.page_link("pages/4_PACS.py", label="PACS", icon=":material/cloud:")
    st.caption("Browse a DICOMweb server, segment a series and store the DICOM SEG back "
               "into its study.")

models = engine.models()
if models:
    st.success(plain(f"Models available: {', '.join(models)}"))
else:
    st.warning("No trained model bundle found yet (sample_data/models/ or $MEDSEG_MODELS_DIR).")
