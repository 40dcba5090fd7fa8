"""The page shell: access password gate, page_setup (every page's first call), sidebar.

The password comes from st.secrets["access_password"], else $DEEPFAKE_PASSWORD; with
neither the app is open, and says so. A secrets file that exists but cannot be read
keeps the app closed (it might hold the password) and says why. A session that gave
the password keeps a fingerprint of it, never the password itself, so changing the
password logs every session out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import streamlit as st

from core.colours import BONAFIDE_BLUE, SPOOF_RED
from ui import PAGES, engine
from ui.widgets import badge

PASSWORD_ENV = "DEEPFAKE_PASSWORD"
PASSWORD_SECRET = "access_password"
GATE_TITLE = ":material/lock: Synthetic speech detector"


class GateError(RuntimeError):
    """A password may be configured but cannot be read: the app stays closed."""


def configured_password() -> str | None:
    """st.secrets["access_password"], else $DEEPFAKE_PASSWORD, else None (open)."""
    if st.secrets.load_if_toml_exists():
        value = st.secrets.get(PASSWORD_SECRET)
        if value:
            return str(value)
    else:
        # load_if_toml_exists is False both for "no file" and for "a file that does not
        # parse"; only the first means no secret
        present = [p for p in st.get_option("secrets.files") if Path(p).exists()]
        if present:
            raise GateError(f"the secrets file {present[0]} exists but cannot be read")
    return os.environ.get(PASSWORD_ENV) or None


def _fingerprint(password: str) -> str:
    # kept in session state instead of the password; a changed password logs all out
    return hashlib.sha256(b"deepfake-dashboard:" + password.encode()).hexdigest()


def require_access() -> bool:
    """
    True when the visitor may see the app. With a password configured and not yet
    given in this session, draws the password form (and nothing else) and returns False.
    """
    try:
        password = configured_password()
    except GateError as e:
        st.title(GATE_TITLE)
        st.error(f"Access is closed: {e}. Fix or remove it and restart the server.")
        return False
    if password is None:
        return True
    if st.session_state.get("access_token") == _fingerprint(password):
        return True
    st.title(GATE_TITLE)
    st.write("This dashboard is protected. Enter the access password to continue.")
    with st.form("access_form"):
        given = st.text_input("Access password", type="password", key="access_given")
        submitted = st.form_submit_button("Enter", type="primary")
    if submitted:
        if hmac.compare_digest(given.encode(), password.encode()):
            st.session_state["access_token"] = _fingerprint(password)
            st.rerun()
        st.error("Wrong password. Ask the person who runs this server.")
    return False


def page_setup(page: str) -> None:
    """
    First call of every page: page config, the access gate (nothing below it runs
    until the password is given), then the shared sidebar.
    """
    spec = PAGES[page]
    st.set_page_config(
        page_title=f"{spec.title} · Synthetic speech detector",
        page_icon=spec.icon,
        layout="wide",
        menu_items={"About": "Tells synthetic speech from real speech and shows why."},
    )
    if not require_access():
        st.stop()
    sidebar()


def access_notice() -> None:
    """Whether the app is open to anyone who can reach it, in one caption."""
    if configured_password() is None:
        st.caption(
            ":material/lock_open: **Open access**: no password is configured, so "
            "anyone who can reach this server can use it. Set "
            f"`{PASSWORD_SECRET}` in .streamlit/secrets.toml or ${PASSWORD_ENV} to "
            "require one."
        )
    else:
        st.caption(":material/lock: Password protected.")


def sidebar() -> None:
    """
    The menu (Streamlit's own is off: client.showSidebarNavigation), the models ready,
    the colour legend and the access notice.
    """
    with st.sidebar:
        st.markdown("### :material/mic: Synthetic speech detector")
        # Analyze and Compare keep the file in view when switching between them
        sha = st.query_params.get("sha")
        for key, page in PAGES.items():
            carry = {"sha": sha} if sha and key in ("analyze", "compare") else None
            st.page_link(
                page.file, label=page.title, icon=page.icon, query_params=carry
            )
        st.divider()
        keys = engine.model_keys()
        st.markdown("**Models ready**")
        st.caption(
            ", ".join(engine.model_name(k) for k in keys)
            if keys
            else "none: see the Models page"
        )
        red = badge("red", style=f"background:{SPOOF_RED};color:white")
        blue = badge("blue", style=f"background:{BONAFIDE_BLUE};color:white")
        st.markdown(
            f"{red} evidence for spoof · {blue} evidence for bona fide",
            unsafe_allow_html=True,
        )
        access_notice()
