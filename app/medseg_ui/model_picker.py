"""The sidebar's model choice, shared by the Segment and PACS pages: a model found by name
(any format), a caption with its format, classes and modality, and the trust checkbox for
formats whose config runs code."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from medseg.io.display import count_text
from medseg.models import ModelInfo
from medseg_ui import engine
from medseg_ui.session import error_message
from medseg_ui.text import plain


@dataclass
class PickedModel:
    name: str | None
    info: ModelInfo | None
    trust: bool


def pick_model(models: list[str], *, key: str, trust_key: str,
               hide: dict[str, str]) -> PickedModel:
    """Draw the picker (inside the caller's ``st.sidebar``) and return the choice."""
    # no default: a CT model run unasked on an MR head labels the brain "liver"; the page may
    # put a suggestion by modality into st.session_state[key] before this is drawn
    name = st.selectbox("Model", models, key=key, index=None, placeholder="Choose a model",
                        help="Every model found by name: bundled, $MEDSEG_MODELS_DIR and "
                             "TotalSegmentator's folders (medseg bundles, nnU-Net v2 result "
                             "folders, MONAI bundles, plugin formats)")
    info, trust = None, False
    if name is not None:
        try:
            info = engine.model_info(name)
            st.caption(plain(f"{info.format} · "
                             + count_text(len(info.labels) - 1, "class", "classes")
                             + (f" · {info.modality}" if info.modality else "")))
        except Exception as exc:
            st.error(plain(error_message(exc, hide)))
        if engine.takes_trust(name):
            trust = _trust_checkbox(info, trust_key)
    return PickedModel(name, info, trust)


def _trust_checkbox(info: ModelInfo | None, key: str) -> bool:
    """The trust checkbox, under the list of every code item the trust would let run (and
    the modules the bundle's folder would make importable), shown as plain text."""
    details = info.details if info is not None else {}
    code = [str(item) for item in details.get("code") or []]
    modules = [str(m) for m in details.get("modules") or []]
    if code:
        with st.expander(f"Code this bundle runs when trusted ({len(code)} "
                         f"item{'s' if len(code) != 1 else ''})", expanded=True):
            st.code("\n".join(code), language=None, wrap_lines=True)
            if modules:
                st.caption(plain("Importable from its folder when trusted: "
                                 + ", ".join(modules)))
    elif info is not None:
        st.caption("No code in this bundle's config: it runs without trust")
    return st.checkbox(f"Trust this bundle's code ({len(code)} item"
                       f"{'s' if len(code) != 1 else ''})" if code else
                       "Trust this bundle's code", key=key,
                       help="A MONAI bundle's config runs Python expressions; tick only "
                            "for bundles from a source you trust, after reading the list")
