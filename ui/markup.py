"""Text made safe for Streamlit markdown and HTML, and the coloured badge: no heavy
imports, so the access gate and the sidebar draw before torch is loaded."""

from __future__ import annotations

import html
import re


def md(text: str) -> str:
    """User text (file names, link parameters) made inert for st.markdown."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>:~$])", r"\\\1", str(text))


def esc(text: str) -> str:
    """User text made inert inside unsafe_allow_html markup."""
    return html.escape(str(text))


def badge(text: str, *, style: str, pill: bool = False) -> str:
    """An inline coloured label (HTML); ``style`` gives its background and ink."""
    shape = (
        "padding:0.2rem 0.6rem;border-radius:1rem"
        if pill
        else ("padding:0.15rem 0.5rem;border-radius:0.3rem")
    )
    return f"<span style='{style};{shape};margin-right:0.4rem'>{esc(text)}</span>"
