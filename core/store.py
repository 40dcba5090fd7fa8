"""The result store: SQLite (through sqlite-utils 4.x) keyed by the audio's SHA-256.

Every verdict and every explanation is computed once and then served from here, to
any session and any process that shares the store file.

Tables (schema built by MIGRATIONS, version in ``PRAGMA user_version`` too):

    audio         sha256 PK, size, duration, original rate/channels/format, first and
                  last seen; the original bytes live in ``<store dir>/audio/<sha256>``
                  (named by the hash, never by an uploaded name)
    filenames     (sha256, filename) PK: every name the audio was uploaded under
    predictions   key PK = hash(audio, model, weights sha256, params); per-window
                  results, file score, label, seconds, created
    explanations  key PK = hash(audio, model, weights sha256, method, method version,
                  params); meta JSON, arrays as np.savez_compressed (loaded with
                  allow_pickle=False), quality JSON, seconds, created
    claims        key PK: who is computing a missing result right now (single flight)
    batches, batch_files   corpus runs of core.batch: per file done/failed, sha256

Concurrency: WAL journal, a busy timeout, every write inside BEGIN IMMEDIATE (so a
transaction never has to upgrade a read lock, the usual source of "database is
locked"), one connection per operation (sqlite3 connections stay on their thread).
A missing result is computed under a claim row (INSERT OR IGNORE inside BEGIN
IMMEDIATE) plus a per-key threading lock: other callers wait for the row instead of
computing it again. A claim whose owner died (same host, pid gone) or whose heartbeat
stopped for CLAIM_STALE_S is taken over.

A file at the store path that is not our SQLite store (foreign, truncated, corrupt)
raises StoreError with a one-line message; it is never replaced.

This module is the only one that touches SQL; it knows rows and dicts, not Verdicts or
Explanations (core.analyze converts).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
from sqlite_utils import Database, Migrations

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DB_ENV = "DEEPFAKE_DB"
DEFAULT_DB = PROJECT_ROOT / "cache" / "analyses.db"

BUSY_TIMEOUT_S = 60.0  # a writer waits this long for the lock before giving up
HEARTBEAT_S = 2.0  # a computing claim refreshes its heartbeat this often
CLAIM_STALE_S = 30.0  # a claim whose heartbeat is this old is taken over
POLL_MIN_S, POLL_MAX_S = 0.01, 0.25  # waiting for another's result: backoff bounds

SQLITE_MAGIC = b"SQLite format 3\x00"  # first 16 bytes of every SQLite 3 file
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SORT_KEYS = ("last_seen", "first_seen", "filename", "duration", "size", "p_spoof")
LABELS = ("spoof", "bonafide")

T = TypeVar("T")


class StoreError(RuntimeError):
    """The store cannot be used. ``str(err)`` is a one-line message for users."""


class NotStoredError(StoreError, LookupError):
    """The requested audio is not in the store."""


# --------------------------------------------------------------------------- schema

MIGRATIONS = Migrations("deepfake-store")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db.table("audio").create(
        {
            "sha256": str,
            "n_bytes": int,
            "duration": float,  # seconds at 16 kHz
            "orig_sample_rate": int,
            "orig_channels": int,
            "orig_format": str,
            "rms_dbfs": float,
            "near_silent": int,
            "first_seen": str,  # ISO 8601 UTC
            "last_seen": str,
        },
        pk="sha256",
    )
    db.table("filenames").create(
        {"sha256": str, "filename": str, "first_seen": str, "last_seen": str},
        pk=("sha256", "filename"),
    )
    db.table("predictions").create(
        {
            "key": str,
            "audio_sha256": str,
            "model": str,
            "weights_sha256": str,
            "params": str,  # canonical JSON
            "p_spoof": float,
            "label": str,
            "max_p_spoof": float,
            "max_window": int,
            "windows": str,  # JSON [{start, end, p_spoof}]
            "seconds": float,
            "created": str,
        },
        pk="key",
    )
    db.table("predictions").create_index(["audio_sha256", "model"])
    db.table("explanations").create(
        {
            "key": str,
            "audio_sha256": str,
            "model": str,
            "weights_sha256": str,
            "method": str,
            "method_version": str,
            "params": str,  # canonical JSON
            "window": int,
            "target": int,
            "target_label": str,
            "meta": str,  # JSON: the Explanation's non-array fields
            "arrays": bytes,  # np.savez_compressed
            "quality": str,  # JSON
            "seconds": float,
            "created": str,
        },
        pk="key",
    )
    db.table("explanations").create_index(["audio_sha256", "model", "method"])
    db.table("claims").create(
        {
            "key": str,
            "kind": str,
            "owner": str,
            "host": str,
            "pid": int,
            "claimed_at": float,  # unix time
            "heartbeat": float,
        },
        pk="key",
    )


@MIGRATIONS()
def m002_batches(db: Database) -> None:
    # corpus runs (core.batch): which files of a protocol are done, failed, and why
    db.table("batches").create(
        {
            "name": str,
            "protocol": str,
            "audio_dir": str,
            "models": str,  # JSON list
            "methods": str,  # JSON list
            "created": str,
            "updated": str,
        },
        pk="name",
    )
    db.table("batch_files").create(
        {
            "batch": str,
            "file_id": str,
            "system": str,  # attack id, "-" for bona fide (ASVspoof protocol)
            "key": str,  # "bonafide" | "spoof"
            "sha256": str,  # NULL when the file could not be read
            "status": str,  # "done" | "failed"
            "error": str,
            "updated": str,
        },
        pk=("batch", "file_id"),
    )
    db.table("batch_files").create_index(["sha256"])


SCHEMA_VERSION = len(MIGRATIONS._migrations)  # mirrored in PRAGMA user_version


# ----------------------------------------------------------------------- location


def resolve_db_path(db: str | Path | None = None) -> Path:
    """--db PATH, else $DEEPFAKE_DB, else cache/analyses.db under the project root."""
    raw = db if db not in (None, "") else os.environ.get(DB_ENV) or DEFAULT_DB
    if str(raw) == ":memory:":
        raise StoreError("the store must be a file (one connection per operation)")
    return Path(raw).expanduser().resolve()


def audio_dir(db: str | Path | None = None) -> Path:
    """Where the original bytes live: ``audio/`` next to the store file."""
    return resolve_db_path(db).parent / "audio"


# ---------------------------------------------------------------------- connection

_READY: set[tuple[str, int, int]] = set()  # (path, st_dev, st_ino) migrated here
_READY_LOCK = threading.Lock()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _check_header(path: Path) -> None:
    """A non-empty file must start as SQLite does; refuse anything else untouched."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return
    except OSError as e:
        raise StoreError(f"cannot read the store {path}: {e.strerror or e}") from e
    if head and head != SQLITE_MAGIC[: len(head)] or 0 < len(head) < 16:
        raise StoreError(
            f"{path} is not a SQLite database, so not an analysis store; it was left "
            f"untouched - move it aside or choose another path (--db or ${DB_ENV})"
        )


def _store_error(path: Path, e: sqlite3.Error) -> StoreError:
    msg = _one_line(e)
    if isinstance(e, sqlite3.OperationalError) and "locked" in msg:
        return StoreError(
            f"the store {path} stayed locked for {BUSY_TIMEOUT_S:.0f} s: {msg}"
        )
    if isinstance(e, sqlite3.DatabaseError) and not isinstance(
        e, sqlite3.OperationalError
    ):
        return StoreError(
            f"the store {path} is corrupt or truncated ({msg}); it was left untouched - "
            f"move it aside or choose another path (--db or ${DB_ENV})"
        )
    return StoreError(f"the store {path}: {msg}")


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[Database]:
    """One connection for one operation; sqlite errors become StoreError."""
    _check_header(path)
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as e:
        raise _store_error(path, e) from e
    try:
        db = Database(conn)
        yield db
    except sqlite3.Error as e:
        raise _store_error(path, e) from e
    finally:
        conn.close()


@contextlib.contextmanager
def _write(db: Database) -> Iterator[Database]:
    """BEGIN IMMEDIATE: take the write lock up front (waits up to the busy timeout)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    db.execute("COMMIT")


def _ready_key(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (str(path), st.st_dev, st.st_ino)


def _enable_wal(db: Database, path: Path) -> None:
    # switching journal mode needs a moment alone with the file; retry briefly
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if db.journal_mode != "wal":
                db.enable_wal()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _migrate(db: Database, path: Path) -> None:
    known = {m.name for m in MIGRATIONS._migrations}
    with _write(db):
        tables = set(db.table_names())
        applied = {m.name for m in MIGRATIONS.applied(db)}
        if tables and not applied:
            shown = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"{path} is a SQLite database but not an analysis store (tables: "
                f"{shown}); it was left untouched - choose another path (--db or ${DB_ENV})"
            )
        unknown = applied - known
        if unknown:
            raise StoreError(
                f"the store {path} was written by a newer version (schema steps "
                f"{', '.join(sorted(unknown))}); upgrade this program to use it"
            )
        MIGRATIONS.apply(db)
        db.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")


@contextlib.contextmanager
def open_db(db: str | Path | None = None) -> Iterator[Database]:
    """
    ``with open_db(path) as db:`` a validated, migrated store, WAL mode, busy timeout.

    The first open of a file in this process creates or migrates it; later opens only
    check its header. Raises StoreError for a foreign, corrupt or truncated file.
    """
    path = resolve_db_path(db)
    key = _ready_key(path)
    if key is None or key not in _READY:
        with _READY_LOCK:
            key = _ready_key(path)
            if key is None or key not in _READY:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise StoreError(
                        f"cannot create {path.parent}: {e.strerror or e}"
                    ) from e
                with _connect(path) as conn:
                    _enable_wal(conn, path)
                    _migrate(conn, path)
                key = _ready_key(path)
                if key is not None:
                    _READY.add(key)
    with _connect(path) as conn:
        yield conn


def schema_version(db: str | Path | None = None) -> int:
    with open_db(db) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


# ------------------------------------------------------------------- serialisation


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces; NaN/inf refused (not valid JSON)."""
    return json.dumps(
        obj,
        sort_keys=True,
        separators=(",", ":"),
        default=_json_default,
        allow_nan=False,
    )


def _dumps_lenient(obj: Any) -> str:
    # metrics such as R² can be NaN; keep them readable by json.loads
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def cache_key(kind: str, **parts: Any) -> str:
    """sha256 of the canonical JSON of every part that determines a result."""
    return hashlib.sha256(dumps({"kind": kind, **parts}).encode()).hexdigest()


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """np.savez_compressed bytes; object arrays are refused (they would need pickle)."""
    clean = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.hasobject:
            raise ValueError(
                f"array {name!r} has dtype object; only numeric arrays are stored"
            )
        clean[name] = a
    buf = io.BytesIO()
    np.savez_compressed(buf, **clean)
    return buf.getvalue()


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


# ------------------------------------------------------------------------ audio


def _check_sha(sha256: str) -> str:
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {str(sha256)[:80]!r}")
    return sha256


def clean_filename(name: str) -> str:
    """The uploaded name as data only: last path component, printable, <= 255 chars."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = "".join(c for c in base if c.isprintable()).strip()
    return base[:255] or "(unnamed)"


def _write_bytes(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data):
        return  # content-addressed: same name, same bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(
            tmp, 0o644
        )  # mkstemp makes 0600; other local users of the store read it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def record_audio(
    info: dict, data: bytes, filename: str, *, db: str | Path | None = None
) -> dict:
    """
    Add (or touch) one audio file: its row, the name it came under, its bytes.

    info : dict with sha256, n_bytes, duration, orig_sample_rate, orig_channels,
        orig_format, rms_dbfs, near_silent (core.audio.Audio's fields)
    Returns the stored audio row (see get_audio).
    """
    sha = _check_sha(info["sha256"])
    if hashlib.sha256(data).hexdigest() != sha:
        raise ValueError("the bytes do not match info['sha256']")
    path = resolve_db_path(db)
    name, now = clean_filename(filename), _now()
    rms = info.get("rms_dbfs")
    row = {
        "sha256": sha,
        "n_bytes": int(info.get("n_bytes", len(data))),
        "duration": float(info["duration"]),
        "orig_sample_rate": int(info["orig_sample_rate"]),
        "orig_channels": int(info["orig_channels"]),
        "orig_format": str(info.get("orig_format", "")),
        # -inf (digital silence) is not JSON; keep it as NULL
        "rms_dbfs": float(rms) if rms is not None and math.isfinite(rms) else None,
        "near_silent": int(bool(info.get("near_silent", False))),
        "first_seen": now,
        "last_seen": now,
    }
    with open_db(path) as conn, _write(conn):
        # the bytes are written under the write lock, so a concurrent delete of the
        # same hash cannot leave a row without its file
        _write_bytes(path.parent / "audio" / sha, data)
        conn.execute(
            "INSERT INTO audio (sha256, n_bytes, duration, orig_sample_rate, "
            "orig_channels, orig_format, rms_dbfs, near_silent, first_seen, last_seen) "
            "VALUES (:sha256, :n_bytes, :duration, :orig_sample_rate, :orig_channels, "
            ":orig_format, :rms_dbfs, :near_silent, :first_seen, :last_seen) "
            "ON CONFLICT (sha256) DO UPDATE SET last_seen = excluded.last_seen",
            row,
        )
        conn.execute(
            "INSERT INTO filenames (sha256, filename, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?) "
            "ON CONFLICT (sha256, filename) DO UPDATE SET last_seen = excluded.last_seen",
            [sha, name, now, now],
        )
        out = _audio_row(conn, sha)
    assert out is not None, "audio row vanished inside its own transaction"
    return out


def _audio_row(conn: Database, sha: str) -> dict | None:
    rows = list(conn.query("SELECT * FROM audio WHERE sha256 = ?", [sha]))
    if not rows:
        return None
    row = rows[0]
    names = list(
        conn.query(
            "SELECT filename FROM filenames WHERE sha256 = ? "
            "ORDER BY last_seen DESC, filename",
            [sha],
        )
    )
    row["near_silent"] = bool(row["near_silent"])
    row["filenames"] = [n["filename"] for n in names]
    row["filename"] = row["filenames"][0] if names else ""
    return row


def get_audio(sha256: str, *, db: str | Path | None = None) -> dict | None:
    """The audio row plus ``filenames`` (most recent first) and ``filename``; or None."""
    _check_sha(sha256)
    with open_db(db) as conn:
        return _audio_row(conn, sha256)


def audio_bytes(sha256: str, *, db: str | Path | None = None) -> bytes:
    """The original file's bytes, checked against the hash; NotStoredError if absent."""
    _check_sha(sha256)
    path = resolve_db_path(db).parent / "audio" / sha256
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotStoredError(
            f"no stored audio {sha256[:12]}... in {path.parent}"
        ) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StoreError(
            f"stored audio {path} does not match its SHA-256; it is damaged"
        )
    return data


def find_sha256(prefix: str, *, db: str | Path | None = None) -> str:
    """The one stored hash starting with ``prefix`` (>= 6 hex digits)."""
    prefix = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,64}", prefix):
        raise ValueError(f"{prefix!r}: give at least 6 hex digits of a SHA-256")
    with open_db(db) as conn:
        rows = list(
            conn.query(
                "SELECT sha256 FROM audio WHERE sha256 >= ? AND sha256 < ? LIMIT 2",
                [prefix, prefix + "g"],
            )
        )
    if not rows:
        raise NotStoredError(f"no stored analysis has a hash starting with {prefix}")
    if len(rows) > 1:
        raise ValueError(f"{prefix} matches several analyses; give more digits")
    return rows[0]["sha256"]


# -------------------------------------------------------------------- single flight

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
    with _write(conn):
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
    with open_db(path) as conn, _write(conn):
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
                with open_db(self.path) as conn, _write(conn):
                    conn.execute(
                        "UPDATE claims SET heartbeat = ? WHERE key = ? AND owner = ?",
                        [time.time(), self.key, self.owner],
                    )
            except Exception as e:  # a missed beat only risks a duplicate compute
                print(f"warning: store heartbeat: {_one_line(e)}", file=sys.stderr)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _single_flight(
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
                with _write(conn):
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


def prediction_key(
    audio_sha256: str, model: str, weights_sha256: str, params: dict
) -> str:
    return cache_key(
        "prediction",
        audio=audio_sha256,
        model=model,
        weights=weights_sha256,
        params=params,
    )


def _prediction_row(row: dict) -> dict:
    row = dict(row)
    row["params"] = json.loads(row["params"])
    row["windows"] = json.loads(row["windows"])
    return row


def _lookup_prediction(key: str) -> Callable[[Database], dict | None]:
    def lookup(conn: Database) -> dict | None:
        rows = list(conn.query("SELECT * FROM predictions WHERE key = ?", [key]))
        return _prediction_row(rows[0]) if rows else None

    return lookup


def get_prediction(
    audio_sha256: str, model: str, weights_sha256: str, params: dict, *, db=None
) -> dict | None:
    key = prediction_key(audio_sha256, model, weights_sha256, params)
    with open_db(db) as conn:
        return _lookup_prediction(key)(conn)


def get_or_compute_prediction(
    audio_sha256: str,
    model: str,
    weights_sha256: str,
    params: dict,
    compute: Callable[[], dict],
    *,
    db: str | Path | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[dict, bool]:
    """
    (row, cached). ``compute()`` returns a verdict dict (Verdict.to_json(): p_spoof,
    label, max_p_spoof, max_window, windows, seconds); it runs only on a miss, once.
    The row has those fields plus key, audio_sha256, model, weights_sha256, params,
    created.
    """
    _check_sha(audio_sha256)
    path = resolve_db_path(db)
    key = prediction_key(audio_sha256, model, weights_sha256, params)

    def save(conn: Database, v: dict) -> None:
        conn.table("predictions").upsert(
            {
                "key": key,
                "audio_sha256": audio_sha256,
                "model": model,
                "weights_sha256": weights_sha256,
                "params": dumps(params),
                "p_spoof": float(v["p_spoof"]),
                "label": str(v["label"]),
                "max_p_spoof": float(v["max_p_spoof"]),
                "max_window": int(v["max_window"]),
                "windows": dumps(v["windows"]),
                "seconds": float(v.get("seconds", 0.0)),
                "created": _now(),
            },
            pk="key",
        )

    return _single_flight(
        path,
        "predictions",
        key,
        "prediction",
        _lookup_prediction(key),
        compute,
        save,
        on_wait=on_wait,
    )


# ------------------------------------------------------------------- explanations

_EXPLANATION_SUMMARY = (
    "key, audio_sha256, model, weights_sha256, method, method_version, params, window, "
    "target, target_label, quality, seconds, created, length(arrays) AS arrays_bytes"
)


def explanation_key(
    audio_sha256: str,
    model: str,
    weights_sha256: str,
    method: str,
    method_version: str,
    params: dict,
) -> str:
    return cache_key(
        "explanation",
        audio=audio_sha256,
        model=model,
        weights=weights_sha256,
        method=method,
        version=str(method_version),
        params=params,
    )


def _summary(row: dict) -> dict:
    row = dict(row)
    row["params"] = json.loads(row["params"])
    row["quality"] = json.loads(row["quality"]) if row.get("quality") else {}
    return row


def _lookup_explanation(key: str) -> Callable[[Database], tuple | None]:
    def lookup(conn: Database) -> tuple | None:
        rows = list(
            conn.query("SELECT meta, arrays FROM explanations WHERE key = ?", [key])
        )
        if not rows:
            return None
        return json.loads(rows[0]["meta"]), decode_arrays(rows[0]["arrays"])

    return lookup


def get_explanation(
    key: str, *, db: str | Path | None = None
) -> tuple[dict, dict] | None:
    """(meta, arrays) of one stored explanation by its key; None when absent."""
    with open_db(db) as conn:
        return _lookup_explanation(key)(conn)


def get_or_compute_explanation(
    audio_sha256: str,
    model: str,
    weights_sha256: str,
    method: str,
    method_version: str,
    params: dict,
    compute: Callable[[], tuple[dict, dict[str, np.ndarray]]],
    *,
    db: str | Path | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[dict, dict[str, np.ndarray], bool]:
    """
    (meta, arrays, cached). ``compute()`` returns Explanation.to_record(): a JSON-able
    meta dict (window, target, target_label, quality, seconds are indexed from it) and
    a dict of numeric arrays. The key covers every argument but ``compute``.
    """
    _check_sha(audio_sha256)
    path = resolve_db_path(db)
    key = explanation_key(
        audio_sha256, model, weights_sha256, method, method_version, params
    )

    def save(conn: Database, record: tuple[dict, dict]) -> None:
        meta, arrays = record
        window, target = meta.get("window"), meta.get("target")
        conn.table("explanations").upsert(
            {
                "key": key,
                "audio_sha256": audio_sha256,
                "model": model,
                "weights_sha256": weights_sha256,
                "method": method,
                "method_version": str(method_version),
                "params": dumps(params),
                "window": int(window) if window is not None else None,
                "target": int(target) if target is not None else None,
                "target_label": meta.get("target_label"),
                "meta": _dumps_lenient(meta),
                "arrays": encode_arrays(arrays),
                "quality": _dumps_lenient(meta.get("quality") or {}),
                "seconds": float(meta.get("seconds") or 0.0),
                "created": _now(),
            },
            pk="key",
        )

    (meta, arrays), cached = _single_flight(
        path,
        "explanations",
        key,
        "explanation",
        _lookup_explanation(key),
        compute,
        save,
        on_wait=on_wait,
    )
    return meta, arrays, cached


# ------------------------------------------------------------------------ reading


def get_analysis(
    sha256: str, *, db: str | Path | None = None, arrays: bool = False
) -> dict | None:
    """
    One analysis: {"audio": audio row, "predictions": [rows, newest first],
    "explanations": [summaries]}; None for an unknown hash. With ``arrays=True`` each
    explanation also carries "meta" and "arrays" (decoded), in the same read.
    """
    _check_sha(sha256)
    with open_db(db) as conn:
        audio = _audio_row(conn, sha256)
        if audio is None:
            return None
        preds = [
            _prediction_row(r)
            for r in conn.query(
                "SELECT * FROM predictions WHERE audio_sha256 = ? "
                "ORDER BY model, created DESC",
                [sha256],
            )
        ]
        cols = _EXPLANATION_SUMMARY + (", meta, arrays" if arrays else "")
        expls = []
        for r in conn.query(
            f"SELECT {cols} FROM explanations WHERE audio_sha256 = ? "
            "ORDER BY model, method, window, created",
            [sha256],
        ):
            s = _summary(r)
            if arrays:
                s["meta"] = json.loads(s["meta"])
                s["arrays"] = decode_arrays(s["arrays"])
            expls.append(s)
    return {"audio": audio, "predictions": preds, "explanations": expls}


@dataclass(frozen=True)
class HistoryPage:
    items: list[dict]  # one per audio, see list_history
    total: int  # matching analyses, all pages
    limit: int
    offset: int

    def to_json(self) -> dict:
        return {
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "items": self.items,
        }


def _bound(value: str | dt.date | dt.datetime | None, *, upper: bool) -> str | None:
    """A date or datetime (or ISO string) as an ISO UTC string bound; date-only upper
    bounds cover the whole day."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        s = value.strip()
        try:
            value = (
                dt.datetime.fromisoformat(s)
                if "T" in s or " " in s
                else dt.date.fromisoformat(s)
            )
        except ValueError:
            raise ValueError(
                f"{s!r} is not a date (YYYY-MM-DD) or ISO datetime"
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    day = dt.datetime.combine(value, dt.time(), tzinfo=dt.timezone.utc)
    if upper:
        day += dt.timedelta(days=1)
    return day.isoformat(timespec="microseconds")


def _like(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def list_history(
    *,
    db: str | Path | None = None,
    filename: str | None = None,
    label: str | None = None,
    model: str | None = None,
    since: str | dt.date | dt.datetime | None = None,
    until: str | dt.date | dt.datetime | None = None,
    date_field: str = "last_seen",
    sort: str = "last_seen",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> HistoryPage:
    """
    Past analyses, one item per audio, filtered, sorted and paginated.

    filename : case-insensitive substring of any name the audio was uploaded under
    label, model : some prediction has this label / is by this model (both: that
        model said that label)
    since, until : on ``date_field`` ("last_seen" or "first_seen"); dates or ISO
        datetimes, UTC; a date-only ``until`` includes that whole day
    sort : one of SORT_KEYS; "p_spoof" is the highest file score (of ``model`` if
        given)

    Each item: the audio row (with filename, filenames), ``predictions``:
    {model: {p_spoof, label, max_p_spoof, weights_sha256, created}} (newest per model)
    and ``n_explanations``.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}")
    if date_field not in ("last_seen", "first_seen"):
        raise ValueError("date_field must be 'last_seen' or 'first_seen'")
    if label is not None and label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}")
    limit, offset = max(0, int(limit)), max(0, int(offset))
    where, params = [], []
    if filename:
        where.append(
            "EXISTS (SELECT 1 FROM filenames n WHERE n.sha256 = a.sha256 "
            "AND n.filename LIKE ? ESCAPE '\\')"
        )
        params.append(_like(filename))
    if label or model:
        cond, p = ["p.audio_sha256 = a.sha256"], []
        if label:
            cond.append("p.label = ?")
            p.append(label)
        if model:
            cond.append("p.model = ?")
            p.append(model)
        where.append(f"EXISTS (SELECT 1 FROM predictions p WHERE {' AND '.join(cond)})")
        params += p
    lo, hi = _bound(since, upper=False), _bound(until, upper=True)
    if lo:
        where.append(f"a.{date_field} >= ?")
        params.append(lo)
    if hi:
        where.append(f"a.{date_field} < ?")
        params.append(hi)
    where_sql = ("WHERE " + " AND ".join(where)) if where else ""
    order_params: list = []
    order_expr = {
        "last_seen": "a.last_seen",
        "first_seen": "a.first_seen",
        "duration": "a.duration",
        "size": "a.n_bytes",
        "filename": "(SELECT min(n.filename COLLATE NOCASE) FROM filenames n "
        "WHERE n.sha256 = a.sha256)",
        "p_spoof": "(SELECT max(p.p_spoof) FROM predictions p WHERE p.audio_sha256 = "
        "a.sha256" + (" AND p.model = ?" if model else "") + ")",
    }[sort]
    if sort == "p_spoof" and model:
        order_params.append(model)
    direction = "DESC" if descending else "ASC"
    with open_db(db) as conn:
        total = conn.execute(
            f"SELECT count(*) FROM audio a {where_sql}", params
        ).fetchone()[0]
        shas = [
            r["sha256"]
            for r in conn.query(
                f"SELECT a.sha256 FROM audio a {where_sql} "
                f"ORDER BY {order_expr} {direction}, a.sha256 LIMIT ? OFFSET ?",
                params + order_params + [limit, offset],
            )
        ]
        items = [_history_item(conn, sha) for sha in shas]
    return HistoryPage(items=items, total=total, limit=limit, offset=offset)


def _history_item(conn: Database, sha: str) -> dict:
    item = _audio_row(conn, sha) or {}
    preds: dict[str, dict] = {}
    for r in conn.query(
        "SELECT model, weights_sha256, p_spoof, label, max_p_spoof, created "
        "FROM predictions WHERE audio_sha256 = ? ORDER BY created DESC",
        [sha],
    ):
        preds.setdefault(r.pop("model"), r)
    item["predictions"] = dict(sorted(preds.items()))
    item["n_explanations"] = conn.execute(
        "SELECT count(*) FROM explanations WHERE audio_sha256 = ?", [sha]
    ).fetchone()[0]
    return item


# ------------------------------------------------------------------------ batches


def record_batch(
    name: str,
    *,
    protocol: str,
    audio_dir: str,
    models: list[str],
    methods: list[str],
    db: str | Path | None = None,
) -> None:
    """Create or update a named corpus run (core.batch); its files keep their rows."""
    now = _now()
    with open_db(db) as conn, _write(conn):
        conn.execute(
            "INSERT INTO batches (name, protocol, audio_dir, models, methods, created, "
            "updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "protocol = excluded.protocol, audio_dir = excluded.audio_dir, "
            "models = excluded.models, methods = excluded.methods, "
            "updated = excluded.updated",
            [name, str(protocol), str(audio_dir), dumps(list(models)),
             dumps(list(methods)), now, now],
        )  # fmt: skip


def record_batch_file(
    *,
    batch: str,
    file_id: str,
    system: str,
    key: str,
    sha256: str | None,
    status: str,
    error: str | None,
    db: str | Path | None = None,
) -> None:
    """The outcome of one file of a batch ("done" with its hash, or "failed")."""
    if sha256 is not None:
        _check_sha(sha256)
    with open_db(db) as conn, _write(conn):
        conn.table("batch_files").upsert(
            {
                "batch": batch,
                "file_id": file_id,
                "system": system,
                "key": key,
                "sha256": sha256,
                "status": status,
                "error": error,
                "updated": _now(),
            },
            pk=("batch", "file_id"),
        )


def get_batch(name: str, *, db: str | Path | None = None) -> dict | None:
    with open_db(db) as conn:
        rows = list(conn.query("SELECT * FROM batches WHERE name = ?", [name]))
    if not rows:
        return None
    row = rows[0]
    row["models"], row["methods"] = json.loads(row["models"]), json.loads(row["methods"])
    return row


def list_batches(*, db: str | Path | None = None) -> list[dict]:
    """Every batch with its file counts (done / failed), newest first."""
    with open_db(db) as conn:
        rows = list(
            conn.query(
                "SELECT b.*, "
                "(SELECT count(*) FROM batch_files f WHERE f.batch = b.name) AS n_files, "
                "(SELECT count(*) FROM batch_files f WHERE f.batch = b.name "
                "AND f.status = 'failed') AS n_failed "
                "FROM batches b ORDER BY b.updated DESC"
            )
        )
    for row in rows:
        row["models"], row["methods"] = json.loads(row["models"]), json.loads(row["methods"])
    return rows


def batch_files(name: str, *, db: str | Path | None = None) -> list[dict]:
    """Every file row of a batch, by file_id; [] for an unknown batch."""
    with open_db(db) as conn:
        return list(
            conn.query(
                "SELECT * FROM batch_files WHERE batch = ? ORDER BY file_id", [name]
            )
        )


# ----------------------------------------------------------------------- deleting


def delete_analysis(sha256: str, *, db: str | Path | None = None) -> bool:
    """Delete the audio row, its names, predictions, explanations and stored bytes.
    Returns False when nothing was stored under that hash."""
    _check_sha(sha256)
    path = resolve_db_path(db)
    blob = path.parent / "audio" / sha256
    with open_db(path) as conn, _write(conn):
        n = 0
        for table, col in (
            ("explanations", "audio_sha256"),
            ("predictions", "audio_sha256"),
            ("filenames", "sha256"),
            ("audio", "sha256"),
        ):
            n += conn.execute(f"DELETE FROM {table} WHERE {col} = ?", [sha256]).rowcount
        # unlink under the write lock: a concurrent record_audio of the same hash
        # either finished before (and is deleted with it) or starts after
        had_file = blob.exists()
        blob.unlink(missing_ok=True)
    return bool(n) or had_file


def store_stats(*, db: str | Path | None = None) -> dict:
    """Counts and sizes, for the benchmark and the app's footer."""
    path = resolve_db_path(db)
    with open_db(path) as conn:
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("audio", "predictions", "explanations")
        }
    files = [p for p in (path.parent / "audio").glob("*") if SHA256_RE.match(p.name)]
    sizes = {
        "db_bytes": sum(
            p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()
        ),
        "audio_bytes": sum(p.stat().st_size for p in files),
    }
    return {**counts, **sizes, "path": str(path)}


# ---------------------------------------------------------------------------- CLI


def _print_err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _add_db(p) -> None:
    p.add_argument(
        "--db",
        metavar="PATH",
        help=f"store file (default: ${DB_ENV}, else cache/analyses.db)",
    )


def cmd_history(args) -> int:
    try:
        page = list_history(
            db=args.db,
            filename=args.filename,
            label=args.label,
            model=args.model,
            since=args.since,
            until=args.until,
            date_field=args.date_field,
            sort=args.sort,
            descending=not args.asc,
            limit=args.limit,
            offset=args.offset,
        )
    except (StoreError, ValueError) as e:
        _print_err(_one_line(e))
        return 1
    if args.json:
        print(json.dumps(page.to_json(), indent=2))
        return 0
    print(f"{page.total} analyses; showing {len(page.items)} from {page.offset + 1}")
    for it in page.items:
        verdicts = "  ".join(
            f"{m} {p['label']} {p['p_spoof']:.3f}" for m, p in it["predictions"].items()
        )
        more = (
            f" (+{len(it['filenames']) - 1} names)" if len(it["filenames"]) > 1 else ""
        )
        print(
            f"{it['last_seen'][:19].replace('T', ' ')}  {it['sha256'][:12]}  "
            f"{it['duration']:7.2f} s  {it['filename']}{more}"
        )
        if verdicts:
            print(f"    {verdicts}  [{it['n_explanations']} explanations]")
    return 0


def cmd_show(args) -> int:
    try:
        sha = find_sha256(args.sha256, db=args.db)
        a = get_analysis(sha, db=args.db)
    except (StoreError, ValueError) as e:
        _print_err(_one_line(e))
        return 1
    assert a is not None
    if args.json:
        print(json.dumps(a, indent=2))
        return 0
    au = a["audio"]
    print(f"{au['sha256']}  {au['duration']:.2f} s  {', '.join(au['filenames'])}")
    print(f"  first seen {au['first_seen']}  last seen {au['last_seen']}")
    for p in a["predictions"]:
        print(
            f"  {p['model']:<18} P(spoof) {p['p_spoof']:.3f}  {p['label']:<8} "
            f"weights {p['weights_sha256'][:12]}  {p['created'][:19]}"
        )
    for e in a["explanations"]:
        print(
            f"  {e['model']:<18} {e['method']:<8} window {e['window']}  "
            f"target {e['target_label']}  {e['seconds']:.2f} s  {e['arrays_bytes']} B"
        )
    return 0


def cmd_delete(args) -> int:
    try:
        sha = find_sha256(args.sha256, db=args.db)
        delete_analysis(sha, db=args.db)
    except (StoreError, ValueError) as e:
        _print_err(_one_line(e))
        return 1
    print(f"deleted {sha} (rows and stored audio)")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("history", help="list stored analyses")
    p.add_argument("--filename", metavar="TEXT", help="substring of an uploaded name")
    p.add_argument("--label", choices=LABELS)
    p.add_argument("--model", metavar="KEY")
    p.add_argument("--since", metavar="DATE", help="YYYY-MM-DD or ISO datetime (UTC)")
    p.add_argument("--until", metavar="DATE", help="inclusive for a date")
    p.add_argument(
        "--date-field", choices=("last_seen", "first_seen"), default="last_seen"
    )
    p.add_argument("--sort", choices=SORT_KEYS, default="last_seen")
    p.add_argument("--asc", action="store_true", help="ascending (default: descending)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    _add_db(p)
    p.set_defaults(func=cmd_history)

    p = subparsers.add_parser("show", help="one stored analysis by SHA-256 (or prefix)")
    p.add_argument("sha256")
    p.add_argument("--json", action="store_true")
    _add_db(p)
    p.set_defaults(func=cmd_show)

    p = subparsers.add_parser("delete", help="delete a stored analysis and its audio")
    p.add_argument("sha256", help="full SHA-256 or a unique prefix (>= 6 hex digits)")
    _add_db(p)
    p.set_defaults(func=cmd_delete)
