"""Share links: the app's base URL, the URL of a view, the share box, the query string.

A share link is ``{base}/{page path}?sha=...&model=...&method=...&window=...`` (and
``&target=...`` when not the predicted class); Analyze is the root, so ``/?sha=...``
opens a file. Values in the query string are
always strings; the readers here turn them back into what the pages need.
"""

from __future__ import annotations

import urllib.parse

import streamlit as st

from ui import PAGES


def base_url() -> str:
    """The app's root URL as the visitor's browser sees it (page path stripped)."""
    url = st.context.url or f"http://localhost:{st.get_option('server.port')}"
    url = url.split("?")[0].rstrip("/")
    for page in PAGES.values():
        if page.url_path and url.endswith("/" + page.url_path):
            return url[: -len(page.url_path) - 1]
    return url


def share_url(sha: str, *, page: str = "analyze", **params) -> str:
    """The URL of one view; parameters that are None or "" are left out."""
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    query = {"sha": sha, **kept}
    return f"{base_url()}/{PAGES[page].url_path}?{urllib.parse.urlencode(query)}"


def share_box(url: str, *, label: str = "Share link") -> None:
    st.markdown(
        f"**{label}** — anyone who can reach this server opens exactly this view:"
    )
    st.code(url, language=None)


def query_str(name: str) -> str | None:
    """A query parameter, or None when absent or empty."""
    return st.query_params.get(name) or None


def query_int(name: str) -> int | None:
    """A query parameter as an int, or None when absent or not a number."""
    try:
        return int(st.query_params.get(name, ""))
    except ValueError:
        return None


def index_in(options: list, value, default: int = 0) -> int:
    """The position of a (query) value among a widget's options, else ``default``."""
    return options.index(value) if value in options else default
