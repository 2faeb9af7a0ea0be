"""Models and plugins page: every registered component and every bundled model."""

from __future__ import annotations

import json

import streamlit as st

from medseg_ui import engine
from medseg_ui.session import error_message

st.set_page_config(page_title="medseg · Models and plugins", page_icon=":material/extension:",
                   layout="wide")
st.title("Models and plugins")

st.header("Registered components")
try:
    rows = engine.registry().describe()
except Exception as exc:
    st.error(error_message(exc))
    rows = []
kinds = ["architecture", "loss", "postprocessor", "reader", "metric"]
kinds += sorted({r["kind"] for r in rows} - set(kinds))
PLURAL = {"loss": "losses"}
titles = [f"{PLURAL.get(k, k + 's')} ({sum(r['kind'] == k for r in rows)})" for k in kinds]
for tab, kind in zip(st.tabs(titles), kinds, strict=True):
    with tab:
        if not any(r["kind"] == kind for r in rows):
            st.info(f"No {PLURAL.get(kind, kind + 's')} registered; plugins add them through "
                    f"the medseg_register_{PLURAL.get(kind, kind + 's')} hook.")
            continue
        st.dataframe([{"name": r["name"], "plugin": r["plugin"],
                       "description": r["description"]} for r in rows if r["kind"] == kind],
                     hide_index=True, width="stretch", key=f"components_{kind}")

st.header("Model bundles")
names = engine.bundles()
if not names:
    st.info("No model bundle found (sample_data/models/ or $MEDSEG_MODELS_DIR).")
for name in names:
    try:
        bundle = engine.bundle(name)
    except Exception as exc:
        st.error(f"{name}: {error_message(exc)}")
        continue
    cfg = bundle.config
    training = cfg.get("training", {})
    with st.expander(f"{bundle.name} ({name})", expanded=True):
        arch = cfg["architecture"]
        st.markdown(f"Architecture **{arch['name']}** · {bundle.spatial_dims}D · "
                    f"{bundle.in_channels} input channel(s) · patch "
                    f"{' × '.join(map(str, bundle.patch_size))} · "
                    f"{training.get('iterations_done', '?')} iterations")
        val, test = training.get("val_dice", {}), training.get("test_dice", {})
        st.dataframe(
            [{"label": v, "class": n, "validation Dice": val.get(n), "test Dice": test.get(n)}
             for v, n in sorted(bundle.label_names.items())],
            hide_index=True, key=f"labels_{name}")
        c1, c2 = st.columns(2)
        c1.markdown("**Preprocessing**")
        c1.json(cfg.get("preprocessing", {}), expanded=True)
        c2.markdown("**Architecture parameters**")
        c2.code(json.dumps(arch.get("params", {}), indent=2), language="json")
