"""A segmentation's quality flag on the page: a warning banner with its reasons.

Streamlit renders banner text as Markdown (with emoji ``:codes:``, ``:colour[...]``
directives and ``$`` maths), so every ASCII punctuation character of the reasons, which hold
class names from a model's config, is backslash-escaped (CommonMark shows an escaped character
as itself).
"""

from __future__ import annotations

from typing import Any

from medseg_ui.text import plain as escape_markdown


def banner_text(qc: Any, model: str) -> str | None:
    """The warning banner's Markdown for a ``warn`` flag (None for ``ok`` or no flag)."""
    if qc is None or qc.status != "warn":
        return None
    lines = [f"**{escape_markdown('Quality check: warn.')}** "
             + escape_markdown(f"Review this result of model {model} before using it:")]
    lines += [f"- {escape_markdown(r)}" for r in qc.reasons]
    return "\n".join(lines)


def show(qc: Any, model: str) -> None:
    """A visible warning banner for ``warn``; a one-line caption for ``ok``."""
    import streamlit as st

    text = banner_text(qc, model)
    if text is not None:
        st.warning(text, icon=":material/warning:")
    elif qc is not None:
        st.caption(escape_markdown(f"Quality check: {qc.summary()}"))
