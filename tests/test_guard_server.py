"""The password covers the whole server, checked against real `streamlit run` servers on
127.0.0.1, driven by benchmarks.stclient (Streamlit's websocket protocol, no browser).

- tests/fixtures/guarded_server.py serves tests/fixtures/gated_page.py through ui.guard
  as streamlit_app.py serves the dashboard (small upload limits, sessions end 1 s after
  they disconnect); the page draws a st.cache_resource token above the gate, so a
  cleared cache shows. The same page served plain is the control: there clear_cache
  does change the token, and the gate stays closed.
- streamlit_app.py itself: the dashboard's upload route and gate, and its start with a
  secrets file that cannot be decoded or is a folder (the server starts; the page
  says why it is closed).

Upload memory is read from Streamlit's own /_stcore/metrics (UploadedFileManager bytes;
Streamlit recomputes it every 5 s, so each reading waits that long).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from benchmarks.common import ROOT, start_streamlit
from benchmarks.stclient import ProtocolError, Visit
from ui.gate import GATE_TITLE

GOOD = "correct horse battery"
FIXTURES = ROOT / "tests" / "fixtures"
KB = 1024


def serve(
    tmp: Path, script: str | Path, *args: str, secrets: Path | None = None, **env: str
):
    tmp.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "DEEPFAKE_DB": str(tmp / "a.db"),
               "DEEPFAKE_WEIGHTS_DIR": str(tmp / "weights"), **env}  # fmt: skip
    for var in (
        "DEEPFAKE_ALLOWED_NETWORKS",
        "DEEPFAKE_PASSWORD",
        "DEEPFAKE_UPLOAD_MEMORY_MB",
    ):
        if var not in env:
            environ.pop(var, None)
    flags = ("--secrets.files", str(secrets or tmp / "no-secrets.toml"), *args)
    return start_streamlit(script, tmp / "server.log", env=environ, args=flags)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    proc, url = serve(
        tmp_path_factory.mktemp("guarded"), FIXTURES / "guarded_server.py",
        "--server.maxUploadSize", "1", "--server.disconnectedSessionTTL", "1",
        DEEPFAKE_PASSWORD=GOOD, DEEPFAKE_UPLOAD_MEMORY_MB="3",
    )  # fmt: skip
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    proc, url = serve(tmp_path_factory.mktemp("dashboard"), "streamlit_app.py",
                      DEEPFAKE_PASSWORD=GOOD)  # fmt: skip
    yield url
    proc.terminate()
    proc.wait(timeout=30)


METRICS_TTL_S = 5.0  # Streamlit computes cache_memory_bytes at most this often


def held_upload_bytes(url: str) -> int:
    """the uploads the server holds now (waits out the metric's cache)"""
    time.sleep(METRICS_TTL_S + 0.2)
    with urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(
        r'cache_memory_bytes\{cache_type="UploadedFileManager"[^}]*\} (\d+)', text
    )
    return int(m.group(1)) if m else 0


def put_status(v: Visit, path: str, size: int) -> int:
    try:
        v.put(path, "clip.flac", b"\x00" * size)
    except urllib.error.HTTPError as e:
        return e.code
    return 204


def token(v: Visit) -> str:
    return next(t for t in reversed(v.texts) if t.startswith("cache token "))


async def logged_in(v: Visit) -> Visit:
    await v.run("")
    await v.login(GOOD)
    await v.run("")
    assert "past the gate" in v.texts
    return v


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- the upload route


def test_before_the_gate_no_upload_url_and_no_put(guarded):
    async def go():
        async with Visit(guarded) as v:
            await v.run("")
            assert GATE_TITLE in " ".join(v.texts) and "past the gate" not in v.texts
            resp = await v.upload_urls("clip.flac")
            assert (
                resp.error_msg == "Enter the access password first."
                and not resp.file_urls
            )
            # a URL made up from the session's own id, as Streamlit would have given it
            made_up = f"/_stcore/upload_file/{v.session_id}/{uuid.uuid4()}"
            assert await asyncio.to_thread(put_status, v, made_up, 100 * KB) == 403
            assert await asyncio.to_thread(held_upload_bytes, guarded) == 0
            # the same session, once it gave the password: the route works
            await logged_in(v)
            resp = await v.upload_urls("clip.flac")
            assert not resp.error_msg
            url = resp.file_urls[0].upload_url
            assert await asyncio.to_thread(put_status, v, url, 100 * KB) == 204
            assert await asyncio.to_thread(held_upload_bytes, guarded) == 100 * KB

    run(go())
    # the session ended (closed, then 1 s): its upload is freed by the sweep (every 5 s)
    wait_until(lambda: held_upload_bytes(guarded) == 0, 30)


def wait_until(check, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not true within {seconds} s"
        time.sleep(0.5)


def test_held_uploads_are_bounded_per_session_and_in_total(guarded):
    # maxUploadSize 1 MB: a session holds at most 2 x (1 MB + 64 KB); all, 3 MB
    size = 900 * KB

    async def upload(v: Visit) -> int:
        resp = await v.upload_urls("clip.flac")
        return await asyncio.to_thread(
            put_status, v, resp.file_urls[0].upload_url, size
        )

    async def go():
        async with Visit(guarded) as a, Visit(guarded) as b:
            await logged_in(a)
            assert [await upload(a) for _ in range(3)] == [204, 204, 204]
            # its oldest file made room
            assert await asyncio.to_thread(held_upload_bytes, guarded) == 2 * size
            await logged_in(b)
            assert await upload(b) == 204  # 2.7 MB held
            assert await upload(b) == 503  # 3.6 MB would pass the 3 MB total
            assert await asyncio.to_thread(held_upload_bytes, guarded) == 3 * size
            return a.session_id

    ended = run(go())
    wait_until(lambda: held_upload_bytes(guarded) == 0, 30)
    # an ended session's pass is gone too

    async def late():
        async with Visit(guarded) as v:
            return await asyncio.to_thread(
                put_status, v, f"/_stcore/upload_file/{ended}/{uuid.uuid4()}", 100
            )

    assert run(late()) == 403


# --------------------------------------------------------------------- the websocket


def clear_cache() -> BackMsg:
    msg = BackMsg()
    msg.clear_cache = True
    return msg


def test_clear_cache_changes_nothing(guarded):
    async def go():
        async with Visit(guarded) as v:
            await v.run("")
            before = token(v)
            await v.send(clear_cache())
            await v.run("")
            assert token(v) == before  # nothing was cleared
            await logged_in(v)  # nor by a session that passed: it is every user's cache
            await v.send(clear_cache())
            await v.run("")
            assert token(v) == before

    run(go())


def test_control_unguarded_clear_cache_clears_and_the_gate_stays_closed(tmp_path):
    proc, url = serve(tmp_path, FIXTURES / "gated_page.py", DEEPFAKE_PASSWORD=GOOD)
    try:

        async def go():
            async with Visit(url) as v:
                await v.run("")
                before = token(v)
                assert any("was not started with `streamlit run streamlit_app.py`" in t
                           for t in v.texts)  # fmt: skip
                await v.send(clear_cache())
                await v.run("")
                assert token(v) != before

        run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


FAKED = [
    WidgetState(id="access_token", string_value="0" * 64),
    WidgetState(id="access_given", string_value=GOOD),
    WidgetState(
        id="$$STREAMLIT_INTERNAL_KEY_SCRIPT_RUN_WITHOUT_ERRORS", bool_value=True
    ),
]


@pytest.mark.parametrize("server", ["guarded", "dashboard"])
def test_faked_widget_states_show_the_gate(server, request):
    url = request.getfixturevalue(server)

    async def go():
        async with Visit(url) as v:
            await v.run("")
            typed = WidgetState(
                id=v.widget_ids["Access password"], int_value=7
            )  # not text
            pressed = WidgetState(id=v.widget_ids["Enter"], trigger_value=True)
            try:
                await v.run("", widgets=[*FAKED, typed, pressed])
                await v.run("", widgets=FAKED)
            except ProtocolError as e:  # an exception element on the page
                pytest.fail(f"the gate page raised: {e}")
            assert v.texts.count(GATE_TITLE) >= 3
            assert "past the gate" not in v.texts

    run(go())


def test_the_dashboard_refuses_uploads_before_the_gate(dashboard):
    async def go():
        async with Visit(dashboard) as v:
            await v.run("")
            assert v.texts[:1] == [GATE_TITLE]
            resp = await v.upload_urls("clip.flac")
            assert resp.error_msg and not resp.file_urls
            made_up = f"/_stcore/upload_file/{v.session_id}/{uuid.uuid4()}"
            assert await asyncio.to_thread(put_status, v, made_up, 100 * KB) == 403
            await v.send(clear_cache())
            await v.run("")
            assert v.texts[-2] == GATE_TITLE  # still the gate, nothing else
        assert held_upload_bytes(dashboard) == 0

    run(go())


# -------------------------------------------------------------------- secrets file


@pytest.mark.parametrize(
    "make, problem",
    [
        (
            lambda p: p.write_bytes(b"\xff\xfeaccess_password = 'x'\n"),
            "it is not UTF-8 text",
        ),
        (lambda p: p.mkdir(), "it is a folder, not a file"),
    ],
    ids=["undecodable", "folder"],
)
def test_a_secrets_file_that_cannot_be_read_closes_every_page(tmp_path, make, problem):
    secrets = tmp_path / "conf" / "secrets.toml"
    secrets.parent.mkdir()
    make(secrets)
    proc, url = serve(tmp_path / "server", "streamlit_app.py", secrets=secrets)
    try:

        async def go():
            async with Visit(url) as v:
                await v.run("")
                return v.texts

        texts = run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    closed = (
        f"Access is closed: the secrets file (secrets.toml) cannot be read: {problem}."
    )
    assert texts[0] == GATE_TITLE and texts[1].startswith(closed)
    assert not any(str(tmp_path) in t for t in texts)
