"""The server side of the access gate: what a browser may do before giving the password.

ui.gate draws the gate inside each page, but Streamlit also takes files and messages
outside any page. `streamlit run streamlit_app.py` finds the module-level ``app`` in
streamlit_app.py and serves it: ``app = st.App(__file__, **guard.app_options())``, set
up before the server takes its first request, so no request passes unguarded:

- the upload route and the agent API: ui.uploads (403 before the gate; held upload
  memory capped per session and in total, and freed when a session ends);
- every BackMsg from a browser goes through ``filter_backmsg``: before the gate a
  session may only run its page (which shows the gate), send heartbeats and stop; once
  it passed, it may also ask for upload URLs and dataframe operations. No session may
  clear the caches (Streamlit's "Clear cache" drops st.cache_data and st.cache_resource
  for every user, the shared Engine included; restart the server instead), switch
  run-on-save, ask for git information or send debug messages. Widget states whose id
  no Streamlit widget has (every widget id starts with ``$$ID``) are dropped: Streamlit
  raises KeyError on the page for them;
- a secrets file that is not UTF-8, a folder where it should be, or one that cannot be
  opened counts as a malformed file: Streamlit logs it in one line and starts, and
  ui.gate shows every page closed with the reason, instead of the server stopping
  with a traceback.

"Passed the gate" is ui.access.PASSED, which ui.gate updates on every run. A server
that was not started this way (a plain script, Streamlit's own entry) keeps every page
closed: see ``unguarded_server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.middleware import Middleware
from streamlit import config, runtime
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.state.common import GENERATED_ELEMENT_ID_PREFIX

from ui import access, uploads

BEFORE_GATE = frozenset({"rerun_script", "app_heartbeat", "stop_script"})
AFTER_GATE = BEFORE_GATE | {"file_urls_request", "backend_operation_request"}
UNGUARDED = (
    "this server was not started with `streamlit run streamlit_app.py`, so uploads "
    "and other requests would bypass the password"
)

log = logging.getLogger(__name__)
_guarded: list[object] = []  # the runtime(s) whose messages go through filter_backmsg


def app_options() -> dict:
    """st.App's middleware and lifespan for the guard (see the module doc)."""
    _tolerate_unreadable_secrets()
    try:
        limits = uploads.limits(config.get_option("server.maxUploadSize"))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    budget = uploads.UploadBudget(limits)
    middleware = Middleware(
        uploads.UploadGuard,
        passed=access.PASSED.passed,
        manager=lambda: runtime.get_instance().uploaded_file_mgr,
        budget=budget,
    )
    return {"middleware": [middleware], "lifespan": _lifespan}


@contextlib.asynccontextmanager
async def _lifespan(_app):
    """after Streamlit's runtime started, before the first request: hook it"""
    rt = runtime.get_instance()
    rt.handle_backmsg = filter_backmsg(rt.handle_backmsg, access.PASSED.passed)
    _guarded.append(rt)
    grace = float(config.get_option("server.disconnectedSessionTTL"))
    task = asyncio.create_task(_sweep_forever(rt, uploads.Sweeper(grace_s=grace)))
    try:
        yield
    finally:
        task.cancel()
        _guarded.remove(rt)


async def _sweep_forever(rt, sweeper: uploads.Sweeper) -> None:
    manager = rt.uploaded_file_mgr

    def end(session: str) -> None:
        manager.remove_session_files(session)
        access.PASSED.forget(session)

    while True:
        await asyncio.sleep(uploads.SWEEP_S)
        try:
            sessions = set(manager.file_storage) | set(access.PASSED.ids())
            sweeper.sweep(sessions, connected=rt.is_active_session, end=end)
        except Exception:  # the sweep must outlive any one failure
            log.exception(
                "the upload sweep failed; retrying in %.0f s", uploads.SWEEP_S
            )


def unguarded_server() -> bool:
    """
    True in a real Streamlit server whose messages do not go through the guard. (AppTest
    runs pages with a stand-in runtime and no browser: nothing to guard there.)
    """
    if not runtime.exists():
        return False
    rt = runtime.get_instance()
    return type(rt) is runtime.Runtime and not any(g is rt for g in _guarded)


def filter_backmsg(handle: Callable, passed: Callable[[str], bool]) -> Callable:
    """Runtime.handle_backmsg, letting through only what the module doc allows."""

    def handle_backmsg(session_id: str, msg: BackMsg, *, client=None) -> None:
        kind = msg.WhichOneof("type")
        if kind not in (AFTER_GATE if passed(session_id) else BEFORE_GATE):
            _refused(session_id, kind, msg, client)
            return
        if kind == "rerun_script":
            _drop_foreign_widgets(session_id, msg)
        handle(session_id, msg, client=client)

    return handle_backmsg


def _drop_foreign_widgets(session_id: str, msg: BackMsg) -> None:
    widgets = msg.rerun_script.widget_states.widgets
    kept = [w for w in widgets if w.id.startswith(GENERATED_ELEMENT_ID_PREFIX)]
    if len(kept) < len(widgets):
        uploads.log_refusal(session_id, "widget states no widget has")
        del widgets[:]
        widgets.extend(kept)


def _refused(session_id: str, kind: str | None, msg: BackMsg, client) -> None:
    uploads.log_refusal(session_id, f"BackMsg {kind}")
    if kind != "file_urls_request" or client is None:
        return
    # answer, so the page's uploader shows an error instead of waiting for ever
    reply = ForwardMsg()
    reply.file_urls_response.response_id = msg.file_urls_request.request_id
    reply.file_urls_response.error_msg = "Enter the access password first."
    with contextlib.suppress(Exception):  # the client may be gone already
        client.write_forward_msg(reply)


def _tolerate_unreadable_secrets() -> None:
    """
    Make Streamlit treat a secrets file it cannot read or decode (or a folder at a
    ``.toml`` path) as it treats a malformed one: one logged line, no secrets, and the
    server starts. Streamlit 1.67 lets these errors out of load_if_toml_exists, which
    runs while the server is built, so the server stopped with a traceback.
    """
    from streamlit.errors import StreamlitSecretNotFoundError
    from streamlit.runtime.secrets import Secrets

    parse = Secrets._parse_file_path
    if getattr(parse, "tolerant", False):
        return

    def parse_file_path(self, path: str):
        try:
            return parse(self, path)
        except (StreamlitSecretNotFoundError, FileNotFoundError):
            raise
        except (OSError, UnicodeDecodeError) as e:
            raise StreamlitSecretNotFoundError(
                "Error reading secrets file at {path}: {error}",
                path=path,
                error=access.secrets_file_problem(path) or type(e).__name__,
                error_id="failed-parsing-secrets-file",
            ) from None

    parse_file_path.tolerant = True
    # on the class: the Secrets instance refuses attribute assignment
    Secrets._parse_file_path = parse_file_path
