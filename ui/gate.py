"""The page shell: the access gate, page_setup (every page's first call), sidebar.

The policy lives in ui.access; this module reads its settings and draws it. The
password comes from st.secrets["access_password"], else $DEEPFAKE_PASSWORD; the
allowed networks from st.secrets["allowed_networks"], else $DEEPFAKE_ALLOWED_NETWORKS.
With no password the app is open, and says so. Any error reading either setting (a
secrets file that does not parse, a password under 12 characters, a network that is
not CIDR) keeps every page closed with the reason. The network list is checked on
every run of every session; wrong passwords wait in ui.access.LIMITER. A session that
gave the password keeps a fingerprint of it, never the password itself, so changing
the password logs every session out. Each run records whether the session passed in
ui.access.PASSED: ui.guard, the server side, refuses uploads and every other message
that changes state from a session that has not. A real server that was not started
through ui.guard (streamlit_app.py's ``app``) stays closed.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import logging
import math
import os
import sys
import uuid
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.export.colours import BONAFIDE_BLUE, SPOOF_RED
from ui import FAVICON, PAGES, access, guard
from ui.access import PASSWORD_ENV, PASSWORD_SECRET, AccessConfig, AccessConfigError
from ui.markup import badge

# Cold start: this module imports nothing heavy (no torch, captum, sklearn, altair), so
# the gate, the sidebar and the page's title reach the browser at once; the page's view
# (and with it the engine) is imported after them under a spinner, and the detectors
# are loaded in a background thread (warm_up) so the first upload does not pay for it.

GATE_TITLE = ":material/lock: Synthetic speech detector"
GateError = AccessConfigError  # the settings cannot be read: the app stays closed

log = logging.getLogger(__name__)


def _secrets() -> dict:
    """The parsed secrets ({} with no secrets file); GateError for any that fails."""
    error: Exception | None = None
    try:
        if st.secrets.load_if_toml_exists():
            return st.secrets.to_dict()
    except Exception as e:  # unreadable, not UTF-8, a folder: the password may be in it
        error = e
    # load_if_toml_exists is False both for "no file" and for "a file that cannot be
    # used" (ui.guard makes a served app say False for an undecodable file or a folder
    # too); only the first means no secret. Visitors see why, never the file's path.
    for path in st.get_option("secrets.files"):
        if Path(path).exists():
            problem = access.secrets_file_problem(path) or "it could not be loaded"
            log.warning("the secrets file %s cannot be used: %s", path, problem)
            name = Path(path).name
            raise GateError(f"the secrets file ({name}) cannot be read: {problem}")
    if error is not None:
        # an OSError's strerror, not str(): that one names the file's path
        reason = getattr(error, "strerror", None) or error
        kind = type(error).__name__
        raise GateError(f"the secrets cannot be read ({kind}: {reason})")
    return {}


def access_config() -> AccessConfig:
    """The access settings; GateError (AccessConfigError) for anything wrong in them."""
    return access.read_config(_secrets(), os.environ)


def configured_password() -> str | None:
    """st.secrets["access_password"], else $DEEPFAKE_PASSWORD, else None (open)."""
    return access_config().password


def client_address() -> str | None:
    """The client's IP address; None for this machine (Streamlit's convention)."""
    return st.context.ip_address


def _fingerprint(password: str) -> str:
    # kept in session state instead of the password; a changed password logs all out
    return hashlib.sha256(b"deepfake-dashboard:" + password.encode()).hexdigest()


def _log_once(flag: str, msg: str, *args) -> None:
    # a refusal is logged once per session, not on every rerun
    if not st.session_state.get(flag):
        st.session_state[flag] = True
        log.warning(msg, *args)


def _closed(message: str) -> bool:
    st.title(GATE_TITLE)
    st.error(message)
    return False


def require_access() -> bool:
    """
    True when the visitor may see the app. Otherwise draws the gate (a refusal, or the
    password form) and nothing else, and returns False. Either way the session is
    recorded in (or removed from) ui.access.PASSED, which the server side (ui.guard)
    consults before it takes an upload or any other message from this session.
    """
    session_id = _session_id()
    passed = _gate()
    if session_id is not None:
        (access.PASSED.admit if passed else access.PASSED.revoke)(session_id)
    return passed


def _session_id() -> str | None:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _gate() -> bool:
    try:
        cfg = access_config()
    except AccessConfigError as e:
        _log_once("access_logged_config", "access is closed: %s", e)
        return _closed(f"Access is closed: {e}. Fix it and restart the server.")
    if guard.unguarded_server():
        _log_once("access_logged_guard", "access is closed: %s", guard.UNGUARDED)
        return _closed(f"Access is closed: {guard.UNGUARDED}.")
    address = client_address()
    if not access.address_allowed(address, cfg.networks):
        _log_once("access_logged_network", "refused a session from %s: not in "
                  "the allowed networks", address or "localhost")  # fmt: skip
        return _closed(
            f"This server does not accept connections from your address "
            f"({address or 'localhost'}). Ask the person who runs it."
        )
    if cfg.password is None:
        return True
    if st.session_state.get("access_token") == _fingerprint(cfg.password):
        return True
    st.title(GATE_TITLE)
    st.write("This dashboard is protected. Enter the access password to continue.")
    with st.form("access_form"):
        given = st.text_input("Access password", type="password", key="access_given")
        submitted = st.form_submit_button("Enter", type="primary")
    if submitted:
        # a client can send any value for any widget: only a string is a password
        _check(given if isinstance(given, str) else "", cfg.password, address)
    return False


def _check(given: str, password: str, address: str | None) -> None:
    """One try, after the delay earned by earlier wrong ones; reruns on success."""
    session = st.session_state.setdefault("access_session", uuid.uuid4().hex)
    keys = (access.address_key(address), f"session:{session}")
    limiter = access.LIMITER
    wait = limiter.begin(keys)
    if wait > 0:
        with st.spinner(
            f"Wrong passwords were tried from here: this try is checked in "
            f"{math.ceil(wait)} s."
        ):
            limiter.sleep(wait)
        wait = limiter.begin(keys)
    if wait > 0:  # another session from this address took the turn
        st.error(
            f"Another try is being checked: wait {math.ceil(wait)} s and try again."
        )
        return
    if hmac.compare_digest(given.encode(), password.encode()):
        limiter.succeeded(keys)
        st.session_state["access_token"] = _fingerprint(password)
        st.rerun()
    wait = limiter.failed(keys, address=address)
    st.error(
        "Wrong password. Ask the person who runs this server. The next try is "
        f"checked after {math.ceil(wait)} s."
    )


def page_setup(page: str) -> None:
    """
    First call of every page: page config, the access gate (nothing below it runs
    until the password is given), the shared sidebar, the page's title and intro; then
    its view module is imported (on a cold server, under a spinner) and the sidebar's
    model list filled in.
    """
    spec = PAGES[page]
    st.set_page_config(
        page_title=f"{spec.title} · Synthetic speech detector",
        page_icon=FAVICON,  # not the page's :material/...: icon (see ui.FAVICON)
        layout="wide",
        menu_items={"About": "Tells synthetic speech from real speech and shows why."},
    )
    if not require_access():
        st.stop()
    models_slot = sidebar()
    st.title(spec.heading or spec.title)
    if spec.intro:
        st.write(spec.intro)
    view = f"ui.views.{page}"
    if view not in sys.modules:
        with st.spinner("Starting up: loading the detectors and the explanation engine…"):
            importlib.import_module(view)
    from ui import engine

    keys = engine.model_keys()
    with models_slot.container():
        st.markdown("**Models ready**")
        st.caption(
            ", ".join(engine.model_name(k) for k in keys) if keys else "none: see the Models page"
        )
    engine.warm_up(keys)



def access_notice() -> None:
    """Whether the app is open to anyone who can reach it, in one caption."""
    cfg = access_config()
    nets = ", ".join(str(n) for n in cfg.networks)
    where = f" Only from {nets}." if nets else ""
    if cfg.password is None:
        st.caption(
            ":material/lock_open: **Open access**: no password is configured, so "
            "anyone who can reach this server can use it. Set "
            f"`{PASSWORD_SECRET}` in .streamlit/secrets.toml or ${PASSWORD_ENV} to "
            f"require one.{where}"
        )
    else:
        st.caption(f":material/lock: Password protected.{where}")


def sidebar():
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
        models_slot = st.empty()  # filled by page_setup once the engine is imported
        red = badge("red", style=f"background:{SPOOF_RED};color:white")
        blue = badge("blue", style=f"background:{BONAFIDE_BLUE};color:white")
        st.markdown(
            f"{red} evidence for spoof · {blue} evidence for bona fide",
            unsafe_allow_html=True,
        )
        access_notice()
    return models_slot
