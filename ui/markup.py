"""Text made safe for Streamlit markdown and HTML, error text without server paths, and
the coloured badge: no heavy imports, so the access gate and the sidebar draw before
torch is loaded."""

from __future__ import annotations

import html
import re


def md(text: str) -> str:
    """User text (file names, link parameters) made inert for st.markdown."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>:~$])", r"\\\1", str(text))


# an absolute path of two parts or more, not inside a URL ("http://h/a/b") or a ratio
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"`()<>,;]+){2,}")


def without_paths(text: object) -> str:
    """
    An error's text fit for the page: every absolute path on this server cut to its
    last part ("/srv/dash/cache/analyses.db" -> "analyses.db"). The CLI keeps the
    full paths; a visitor of the page has no use for them.
    """
    return _SERVER_PATH.sub(lambda m: m.group(0).rsplit("/", 1)[-1], str(text))


def esc(text: str) -> str:
    """User text made inert inside unsafe_allow_html markup."""
    return html.escape(str(text))


def badge(text: str, *, style: str, pill: bool = False) -> str:
    """
    An inline coloured label (HTML); ``style`` gives its background and ink. It never
    breaks inside (a row of badges wraps between them, each keeping its words together).
    """
    shape = (
        "padding:0.2rem 0.6rem;border-radius:1rem"
        if pill
        else ("padding:0.15rem 0.5rem;border-radius:0.3rem")
    )
    keep = "display:inline-block;white-space:nowrap;margin:0 0.4rem 0.3rem 0"
    return f"<span class='badge' style='{style};{shape};{keep}'>{esc(text)}</span>"
