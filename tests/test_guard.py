"""ui.guard and ui.uploads without a server: which BackMsgs pass, the upload
middleware's answers and memory rules, the sweep of ended sessions, the registry of
passed sessions; and the page-side helpers (secrets problems, error text without paths).

The same rules against real servers: tests/test_guard_server.py.
"""

from __future__ import annotations

import asyncio

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from ui import guard, uploads
from ui.access import SessionRegistry, secrets_file_problem
from ui.markup import without_paths

MB = 1024 * 1024

# ------------------------------------------------------------------------ BackMsgs


def backmsg(kind: str) -> BackMsg:
    msg = BackMsg()
    if kind == "rerun_script":
        msg.rerun_script.query_string = ""
    elif kind == "file_urls_request":
        msg.file_urls_request.request_id = "r1"
        msg.file_urls_request.file_names.append("a.flac")
    elif kind == "backend_operation_request":
        msg.backend_operation_request.request_id = "op1"
    else:
        setattr(msg, kind, True)
    return msg


class Client:
    def __init__(self):
        self.sent = []

    def write_forward_msg(self, msg) -> None:
        self.sent.append(msg)


def run_filter(kind: str, *, passed: bool) -> tuple[list, Client]:
    handled = []
    handle = guard.filter_backmsg(
        lambda sid, msg, client=None: handled.append(msg.WhichOneof("type")),
        lambda sid: passed,
    )
    client = Client()
    handle("s1", backmsg(kind), client=client)
    return handled, client


KINDS = ["rerun_script", "app_heartbeat", "stop_script", "file_urls_request",
         "backend_operation_request", "clear_cache", "set_run_on_save", "load_git_info",
         "debug_disconnect_websocket", "debug_shutdown_runtime"]  # fmt: skip


def test_every_backmsg_kind_is_ruled_on():
    # a kind added by a new Streamlit would be refused without being looked at
    assert set(KINDS) == {
        f.name for f in BackMsg.DESCRIPTOR.oneofs_by_name["type"].fields
    }


@pytest.mark.parametrize("kind", KINDS)
def test_before_the_gate_a_session_may_only_run_its_page(kind):
    handled, _ = run_filter(kind, passed=False)
    allowed = {"rerun_script", "app_heartbeat", "stop_script"}
    assert handled == ([kind] if kind in allowed else [])


@pytest.mark.parametrize("kind", KINDS)
def test_after_the_gate_uploads_pass_but_nobody_clears_the_caches(kind):
    handled, _ = run_filter(kind, passed=True)
    refused = {"clear_cache", "set_run_on_save", "load_git_info",
               "debug_disconnect_websocket", "debug_shutdown_runtime"}  # fmt: skip
    assert handled == ([] if kind in refused else [kind])


def test_a_refused_upload_url_request_is_answered_with_an_error():
    handled, client = run_filter("file_urls_request", passed=False)
    assert handled == []
    (reply,) = client.sent
    assert reply.file_urls_response.response_id == "r1"
    assert reply.file_urls_response.error_msg == "Enter the access password first."
    assert not reply.file_urls_response.file_urls


def test_widget_states_no_widget_could_send_are_dropped():
    seen = []
    handle = guard.filter_backmsg(
        lambda sid, msg, client=None: seen.append(msg), lambda s: False
    )
    msg = backmsg("rerun_script")
    real = "$$ID-931d5e44cd08ef790aec5d8b72ef4792-access_given"
    for wid in ("access_token", real, "$$STREAMLIT_INTERNAL_KEY_X", ""):
        msg.rerun_script.widget_states.widgets.append(
            WidgetState(id=wid, string_value="x")
        )
    handle("s1", msg)
    assert [w.id for w in seen[0].rerun_script.widget_states.widgets] == [real]


# --------------------------------------------------------------------- upload rules


def test_limits_from_the_environment():
    lim = uploads.limits(50, {})
    assert lim.max_file == 50 * MB and lim.total == 256 * MB
    assert lim.per_session == 2 * (50 * MB + uploads.MULTIPART_SLACK)
    assert (
        uploads.limits(50, {"DEEPFAKE_UPLOAD_MEMORY_MB": "80"}).per_session == 80 * MB
    )
    with pytest.raises(ValueError, match="must be a number of MB, not 'lots'"):
        uploads.limits(50, {"DEEPFAKE_UPLOAD_MEMORY_MB": "lots"})
    with pytest.raises(ValueError, match="must be more than server.maxUploadSize"):
        uploads.limits(50, {"DEEPFAKE_UPLOAD_MEMORY_MB": "40"})


def test_budget_counts_arriving_uploads_per_session_and_in_total():
    budget = uploads.UploadBudget(
        uploads.UploadLimits(max_file=10, per_session=20, total=40)
    )
    assert budget.admit("a", 10, held_session=5, held_total=5) == 0
    assert (
        budget.admit("a", 10, held_session=5, held_total=5) == 413
    )  # 5 + 10 + 10 > 20
    assert (
        budget.admit("b", 10, held_session=0, held_total=15) == 0
    )  # 15 + 10 + 10 <= 40
    assert budget.arriving == {"a": 10, "b": 10}
    assert (
        budget.admit("c", 5, held_session=0, held_total=20) == 503
    )  # 20 + 20 + 5 > 40
    budget.release("a", 10)
    assert budget.arriving == {"b": 10}
    assert budget.admit("c", 5, held_session=0, held_total=20) == 0  # 20 + 10 + 5


def http_scope(method: str, path: str, body: bytes) -> dict:
    headers = [(b"content-length", str(len(body)).encode())]
    return {"type": "http", "method": method, "path": path, "headers": headers}


def call(
    guard_app, method: str, path: str, body: bytes = b"x" * 100
) -> tuple[int, bytes]:
    sent = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(guard_app(http_scope(method, path, body), receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def make_guard(passed: set[str], limits: uploads.UploadLimits):
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    reached = []

    async def streamlit(scope, receive, send):  # stands in for Streamlit's routes
        message = await receive()
        reached.append((scope["method"], scope["path"]))
        session, fid = scope["path"].rsplit("/", 2)[-2:]
        if scope["method"] == "PUT":
            rec = UploadedFileRec(
                file_id=fid, name="a", type="audio/flac", data=message["body"]
            )
            manager.add_file(session, rec)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = uploads.UploadGuard(
        streamlit,
        passed=passed.__contains__,
        manager=lambda: manager,
        budget=uploads.UploadBudget(limits),
    )
    return app, manager, reached


def test_the_upload_route_refuses_sessions_that_did_not_pass():
    app, manager, reached = make_guard({"in"}, uploads.UploadLimits(1000, 2000, 4000))
    for method in ("PUT", "DELETE"):
        status, body = call(app, method, "/_stcore/upload_file/out/f1")
        assert (status, body) == (403, b"enter the access password first")
    # behind a base URL path too, and the agent API for everyone
    assert call(app, "PUT", "/dash/_stcore/upload_file/out/f1")[0] == 403
    assert call(app, "POST", "/_stcore/agent/interact")[0] == 403
    assert reached == [] and manager.file_storage == {}
    assert call(app, "PUT", "/_stcore/upload_file/in/f1")[0] == 204
    assert (
        call(app, "OPTIONS", "/_stcore/upload_file/out/f1")[0] == 204
    )  # CORS preflight
    assert [len(r.data) for r in manager.get_files("in", ["f1"])] == [100]


def test_a_session_keeps_its_newest_uploads_and_all_share_a_total():
    app, manager, _ = make_guard({"a", "b", "c"}, uploads.UploadLimits(100, 250, 400))
    for i in range(4):  # 100 bytes each; the oldest files of "a" go to make room
        assert call(app, "PUT", f"/_stcore/upload_file/a/f{i}")[0] == 204
    assert list(manager.file_storage["a"]) == ["f2", "f3"]
    assert call(app, "PUT", "/_stcore/upload_file/b/g0")[0] == 204
    assert (
        call(app, "PUT", "/_stcore/upload_file/b/g1")[0] == 204
    )  # 400 held: the total
    status, body = call(app, "PUT", "/_stcore/upload_file/c/h0", b"x" * 60)
    assert (status, body) == (
        503,
        b"the server holds too many uploads; try again in a minute",
    )
    assert (
        sum(len(r.data) for f in manager.file_storage.values() for r in f.values())
        == 400
    )
    assert "c" not in manager.file_storage


def test_ended_sessions_lose_their_uploads_and_their_pass():
    now = [0.0]
    sweeper = uploads.Sweeper(grace_s=10, clock=lambda: now[0])
    connected, ended = {"a"}, []
    sessions = {"a", "b"}
    assert (
        sweeper.sweep(sessions, connected=connected.__contains__, end=ended.append)
        == []
    )
    now[0] = 9.9
    assert (
        sweeper.sweep(sessions, connected=connected.__contains__, end=ended.append)
        == []
    )
    connected.discard("a")  # "a" leaves at 9.9; "b" has been gone since 0
    now[0] = 10.0
    assert sweeper.sweep(
        sessions, connected=connected.__contains__, end=ended.append
    ) == ["b"]
    connected.add("a")  # "a" came back before its grace ran out
    now[0] = 25.0
    assert (
        sweeper.sweep({"a"}, connected=connected.__contains__, end=ended.append) == []
    )
    assert ended == ["b"] and sweeper.gone_since == {}


def test_the_registry_admits_revokes_and_stays_bounded():
    reg = SessionRegistry(cap=3)
    for s in "abcd":
        reg.admit(s)
    assert reg.ids() == ["b", "c", "d"] and not reg.passed("a")
    reg.admit("b")  # seen again: now the newest
    reg.admit("e")
    assert reg.ids() == ["d", "b", "e"]
    reg.revoke("b")
    reg.forget("zz")
    assert not reg.passed("b") and reg.passed("e")


# ------------------------------------------------------------------- page helpers


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\xff\xfe\x00bad", "it is not UTF-8 text"),
        (
            b'access_password = "unterminated\n',
            "it is not valid TOML (Illegal character",
        ),
        (b'access_password = "correct horse battery"\n', ""),
    ],
)
def test_secrets_file_problems_name_no_path(tmp_path, content, problem):
    path = tmp_path / "secrets.toml"
    path.write_bytes(content)
    found = secrets_file_problem(path)
    assert found.startswith(problem) if problem else found == ""
    assert str(tmp_path) not in found


def test_a_folder_at_the_secrets_path_is_named_as_such(tmp_path):
    (tmp_path / "secrets.toml").mkdir()
    assert (
        secrets_file_problem(tmp_path / "secrets.toml") == "it is a folder, not a file"
    )


def test_error_text_keeps_no_server_path():
    msg = ("the store /srv/dash/cache/analyses.db stayed locked; see "
           "http://host:8501/a/b, ratio 1/2, ~/x and mp3:32k")  # fmt: skip
    assert without_paths(msg) == (
        "the store analyses.db stayed locked; see http://host:8501/a/b, ratio 1/2, ~/x "
        "and mp3:32k"
    )
    assert without_paths(FileNotFoundError(2, "No such file", "/a/b/c.wav")) == (
        "[Errno 2] No such file: 'c.wav'"
    )
