"""Single flight: a missing result is computed once across threads and processes.

The computing caller holds a claim row (INSERT OR IGNORE inside BEGIN IMMEDIATE) plus a
per-key threading lock; the others poll for the result row with backoff. A claim whose
owner died (same host, pid gone) or whose heartbeat stopped for CLAIM_STALE_S is taken
over.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlite_utils import Database

from core.store.schema import (
    CLAIM_STALE_S,
    HEARTBEAT_S,
    POLL_MAX_S,
    POLL_MIN_S,
    StoreError,
    one_line,
    open_db,
    transaction,
)

T = TypeVar("T")

_KEY_LOCKS: dict[tuple[str, str], list] = {}  # (db, key) -> [lock, users]

_KEY_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _key_lock(path: Path, key: str) -> Iterator[None]:
    """One thread per key per process; the lock entry goes when nobody holds it."""
    k = (str(path), key)
    with _KEY_LOCKS_GUARD:
        entry = _KEY_LOCKS.setdefault(k, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _KEY_LOCKS_GUARD:
            entry[1] -= 1
            if entry[1] == 0:
                _KEY_LOCKS.pop(k, None)


_HOST = socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _claim_is_stale(claim: dict, now: float) -> bool:
    if now - float(claim["heartbeat"]) > CLAIM_STALE_S:
        return True
    return claim["host"] == _HOST and not _pid_alive(int(claim["pid"]))


def _try_claim(conn: Database, table: str, key: str, kind: str, owner: str) -> str:
    """'done' (result present), 'claimed' (ours: compute it) or 'busy' (someone's)."""
    with transaction(conn):
        if conn.execute(f"SELECT 1 FROM {table} WHERE key = ?", [key]).fetchone():
            return "done"
        now = time.time()
        rows = list(conn.query("SELECT * FROM claims WHERE key = ?", [key]))
        if rows and _claim_is_stale(rows[0], now):
            conn.execute(
                "DELETE FROM claims WHERE key = ? AND owner = ?",
                [key, rows[0]["owner"]],
            )
        cur = conn.execute(
            "INSERT OR IGNORE INTO claims (key, kind, owner, host, pid, claimed_at, heartbeat) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [key, kind, owner, _HOST, os.getpid(), now, now],
        )
        return "claimed" if cur.rowcount == 1 else "busy"


def _release(path: Path, key: str, owner: str) -> None:
    with open_db(path) as conn, transaction(conn):
        conn.execute("DELETE FROM claims WHERE key = ? AND owner = ?", [key, owner])


class _Heartbeat:
    """Refresh our claim while computing, so waiters can tell slow from dead."""

    def __init__(self, path: Path, key: str, owner: str):
        self.path, self.key, self.owner = path, key, owner
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, daemon=True, name="store-heartbeat"
        )

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                with open_db(self.path) as conn, transaction(conn):
                    conn.execute(
                        "UPDATE claims SET heartbeat = ? WHERE key = ? AND owner = ?",
                        [time.time(), self.key, self.owner],
                    )
            except Exception as e:  # a missed beat only risks a duplicate compute
                print(f"warning: store heartbeat: {one_line(e)}", file=sys.stderr)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def single_flight(
    path: Path,
    table: str,
    key: str,
    kind: str,
    lookup: Callable[[Database], T | None],
    compute: Callable[[], Any],
    save: Callable[[Database, Any], None],
    *,
    on_wait: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> tuple[T, bool]:
    """
    Return (stored result, cached). A missing result is computed by exactly one caller
    across threads and processes; the others wait for its row. ``compute`` runs with
    no connection open; ``save`` runs inside the transaction that drops the claim.
    """

    with _key_lock(path, key):
        with open_db(path) as conn:
            found = lookup(conn)
        if found is not None:
            return found, True
        owner = uuid.uuid4().hex
        waited, pause, t0 = False, POLL_MIN_S, time.monotonic()
        while True:
            with open_db(path) as conn:
                state = _try_claim(conn, table, key, kind, owner)
                if state == "done":
                    found = lookup(conn)
            if state == "done" and found is not None:
                return found, True
            if state == "claimed":
                break
            if not waited and on_wait is not None:
                on_wait(f"another session is computing this {kind}; waiting for it")
            waited = True
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise StoreError(f"waited {timeout:.0f} s for another session's {kind}")
            time.sleep(pause)
            pause = min(pause * 1.5, POLL_MAX_S)
        try:
            with _Heartbeat(path, key, owner):
                value = compute()
            with open_db(path) as conn:
                with transaction(conn):
                    save(conn, value)
                    conn.execute(
                        "DELETE FROM claims WHERE key = ? AND owner = ?", [key, owner]
                    )
                found = lookup(conn)
        except BaseException:
            with contextlib.suppress(Exception):
                _release(path, key, owner)
            raise
        assert found is not None, f"{kind} {key[:12]} missing right after saving it"
        return found, False


# -------------------------------------------------------------------- predictions
