"""Names and messages shown as text, never as markup.

Streamlit renders Markdown (GitHub-flavoured, plus ``:colour[...]`` directives, ``:emoji:``
codes and ``$`` maths) in ``st.markdown``, banners (``st.error``, ``st.warning``, ...),
captions, headers, expander and status labels, progress texts and ``st.table`` cells. Upload
names, case names, a model's class names, DICOM descriptions and messages that quote them come
from users or servers: ``![x](https://host/)`` would load a remote image and
``[re-authenticate](https://host/)`` would turn an error into a link. Every such string goes
through :func:`plain` (or :func:`html_text` inside HTML given to ``st.markdown``).
"""

from __future__ import annotations

import re
from pathlib import Path

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text: object) -> str:
    """``text`` shown literally by Markdown: every ASCII punctuation character backslash-escaped
    (CommonMark shows an escaped character as itself), line breaks as spaces."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))


def html_text(text: object) -> str:
    """``text`` shown literally inside HTML that Markdown also reads (``unsafe_allow_html``):
    every ASCII punctuation character as a numeric character reference, line breaks as
    spaces."""
    return _PUNCTUATION.sub(lambda m: f"&#{ord(m.group(1))};", " ".join(str(text).split()))


def shown_path(path: object) -> str:
    """A local path as a user reads it: relative to the working directory when inside it,
    ``~/...`` when inside the home folder, else as given (URLs and names unchanged)."""
    text = str(path)
    if "://" in text:
        return text
    full = Path(text).expanduser()
    if not full.is_absolute():
        return text
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        if full.is_relative_to(base) and full != base:
            return prefix + str(full.relative_to(base))
    return text
