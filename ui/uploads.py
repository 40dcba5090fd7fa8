"""The upload route behind the gate, and a bound on the memory uploads may hold.

Streamlit keeps every uploaded file in memory (MemoryUploadedFileManager) until the page
deletes it or its session shuts down, and a session that disconnects is never shut down
(it only falls out of the reconnect store), so left alone uploads pile up for good.
Here, as ASGI middleware in front of Streamlit's routes (ui.guard installs it):

    PUT / DELETE /_stcore/upload_file/<session>/<file>
        403 unless <session> passed the gate (ui.access.PASSED); the body of a refused
        request is read and dropped, at most DRAIN_BYTES of it, never kept
    PUT, from a session that passed
        the session holds at most ``per_session`` bytes: its oldest files go first (the
        uploader keeps one file; an older one is one it replaced); 413 if in-flight
        uploads alone would pass that. All sessions together hold at most ``total``
        bytes, counting uploads still arriving: beyond it 503, try again later (these
        two refusals read the body to its end, and drop it, so the page gets the reason)
    POST (any method but GET) /_stcore/agent/...
        403: the agent API drives the app without a browser, so without the gate

``sweep`` (every SWEEP_S, from ui.guard) frees the files of sessions that have ended:
not connected for longer than Streamlit keeps a session for reconnecting
(server.disconnectedSessionTTL). Everything here runs on the server's event loop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

UPLOAD_ROUTE = "/_stcore/upload_file/"
AGENT_ROUTE = "/_stcore/agent/"
MEMORY_ENV = "DEEPFAKE_UPLOAD_MEMORY_MB"  # all sessions' uploads together, MB
DEFAULT_TOTAL_MB = 256
MULTIPART_SLACK = 64 * 1024  # bytes of multipart framing allowed around one file
DRAIN_BYTES = 1 << 20  # of a refused body, read and dropped so the client is answered
SWEEP_S = 5.0  # how often ended sessions' files are looked for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadLimits:
    max_file: int  # bytes: server.maxUploadSize
    per_session: int  # bytes one session may hold (files kept plus arriving)
    total: int  # bytes all sessions may hold together


def limits(max_upload_mb: float, environ=os.environ) -> UploadLimits:
    """
    Per session: two files of the largest size (one kept, its replacement arriving);
    in total: $DEEPFAKE_UPLOAD_MEMORY_MB (default 256 MB). ValueError, in one line,
    for a total that is not a number or cannot hold one largest file.
    """
    max_file = int(max_upload_mb * 1024 * 1024)
    raw = environ.get(MEMORY_ENV, "").strip()
    try:
        total_mb = float(raw) if raw else DEFAULT_TOTAL_MB
    except ValueError:
        raise ValueError(f"${MEMORY_ENV} must be a number of MB, not {raw!r}") from None
    total = int(total_mb * 1024 * 1024)
    if not total >= max_file + MULTIPART_SLACK:
        raise ValueError(
            f"${MEMORY_ENV} ({raw} MB) must be more than server.maxUploadSize "
            f"({max_upload_mb:g} MB), or no file could ever be uploaded"
        )
    return UploadLimits(max_file, min(2 * (max_file + MULTIPART_SLACK), total), total)


class UploadBudget:
    """Bytes of uploads still arriving, per session; the admission rule."""

    def __init__(self, limits: UploadLimits):
        self.limits = limits
        self.arriving: dict[str, int] = {}

    def admit(self, session: str, n: int, *, held_session: int, held_total: int) -> int:
        """
        0 and ``n`` bytes reserved for ``session``, or the HTTP status that refuses it:
        413 (this session would pass its share), 503 (the server would pass its total).
        """
        mine = self.arriving.get(session, 0)
        if held_session + mine + n > self.limits.per_session:
            return 413
        if held_total + sum(self.arriving.values()) + n > self.limits.total:
            return 503
        self.arriving[session] = mine + n
        return 0

    def release(self, session: str, n: int) -> None:
        left = self.arriving.get(session, 0) - n
        if left > 0:
            self.arriving[session] = left
        else:
            self.arriving.pop(session, None)


def held(manager) -> dict[str, list[tuple[str, int]]]:
    """(file id, bytes) of every kept upload, per session, oldest first"""
    # list() of a dict is one step under the GIL: no lock of Streamlit's is needed
    return {
        session: [(fid, len(rec.data)) for fid, rec in list(files.items())]
        for session, files in list(manager.file_storage.items())
    }


class UploadGuard:
    """ASGI middleware: the rules in the module doc, in front of Streamlit's app."""

    def __init__(
        self, app, *, passed: Callable[[str], bool], manager: Callable[[], Any],
        budget: UploadBudget,
    ):  # fmt: skip
        self.app, self.passed, self.manager, self.budget = app, passed, manager, budget

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        path = scope["path"]
        if AGENT_ROUTE in path:
            return await _refuse(receive, send, 403, "the agent API is not served here")
        at = path.find(UPLOAD_ROUTE)
        if at < 0:
            return await self.app(scope, receive, send)
        session = path[at + len(UPLOAD_ROUTE) :].split("/", 1)[0]
        if not self.passed(session):
            log_refusal(session, f"{scope['method']} upload")
            return await _refuse(receive, send, 403, "enter the access password first")
        if scope["method"] != "PUT":
            return await self.app(scope, receive, send)
        n = self._expected_size(scope)
        status = self._admit(session, n)
        if status:
            why = (
                "this session holds too many uploads"
                if status == 413
                else "the server holds too many uploads; try again in a minute"
            )
            # a session that passed the gate is read to the end (and dropped), so its
            # page gets the reason rather than a closed connection
            drain = self.budget.limits.max_file + MULTIPART_SLACK
            return await _refuse(receive, send, status, why, drain=drain)
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.release(session, n)

    def _expected_size(self, scope) -> int:
        """Content-Length, else the most one file may take (0: Streamlit refuses it)"""
        cap = self.budget.limits.max_file + MULTIPART_SLACK
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    n = int(value)
                except ValueError:
                    return 0  # Streamlit answers 400
                return n if 0 <= n <= cap else 0  # over the cap: Streamlit answers 413
        return cap

    def _admit(self, session: str, n: int) -> int:
        manager = self.manager()
        kept = held(manager)
        mine = kept.get(session, [])
        total = sum(size for files in kept.values() for _, size in files)
        # the uploader keeps one file: make room by dropping this session's oldest
        share = (
            self.budget.limits.per_session - self.budget.arriving.get(session, 0) - n
        )
        while mine and sum(size for _, size in mine) > share:
            fid, size = mine.pop(0)
            manager.remove_file(session, fid)
            total -= size
        return self.budget.admit(
            session, n, held_session=sum(s for _, s in mine), held_total=total
        )


class Sweeper:
    """Frees what ended sessions left: their uploads and their gate pass."""

    def __init__(self, *, grace_s: float, clock: Callable[[], float] = time.monotonic):
        self.grace_s, self.clock = grace_s, clock
        self.gone_since: dict[str, float] = {}  # session -> first seen not connected

    def sweep(self, sessions: set[str], *, connected: Callable[[str], bool],
              end: Callable[[str], None]) -> list[str]:  # fmt: skip
        """``end`` each session not connected for grace_s; returns those ended"""
        now, ended = self.clock(), []
        for session in set(self.gone_since) - sessions:
            del self.gone_since[session]
        for session in sessions:
            if connected(session):
                self.gone_since.pop(session, None)
            elif now - self.gone_since.setdefault(session, now) >= self.grace_s:
                end(session)
                del self.gone_since[session]
                ended.append(session)
        return ended


_refusals_logged: set[str] = set()
MAX_LOGGED = 1000  # refusals logged per server process; then they are only answered


def log_refusal(session: str, what: str) -> None:
    key = f"{session}:{what}"
    if key not in _refusals_logged and len(_refusals_logged) < MAX_LOGGED:
        _refusals_logged.add(key)
        log.warning("refused %s from session %s: it has not passed the gate", what,
                    session[:8])  # fmt: skip


async def _refuse(
    receive, send, status: int, why: str, *, drain: int = DRAIN_BYTES
) -> None:
    # read (and drop) up to ``drain`` bytes of the body, so a request that size gets
    # its answer instead of a reset connection; the rest is never read
    seen, more = 0, True
    while more and seen < drain:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        seen += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = why.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
