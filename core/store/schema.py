"""The store's file: location, schema (sqlite-utils migrations), connections, errors.

Tables (built by MIGRATIONS; the step count is mirrored in ``PRAGMA user_version``):

    audio         sha256 PK, size, duration, original rate/channels/format, first and
                  last seen; the original bytes live in ``<store dir>/audio/<sha256>``
                  (named by the hash, never by an uploaded name)
    filenames     (sha256, filename) PK: every name the audio was uploaded under
    predictions   key PK = core.keys.VerdictKey.key; per-window results, file score,
                  label, seconds, created
    explanations  key PK = core.keys.ExplanationKey.key; meta JSON, arrays as
                  np.savez_compressed (loaded with allow_pickle=False), quality JSON
    claims        key PK: who is computing a missing result right now (single flight)
    batches, batch_files   corpus runs of core.batch: per file done/failed, sha256

Concurrency: WAL journal, a busy timeout, every write inside BEGIN IMMEDIATE
(``transaction``: a transaction never has to upgrade a read lock, the usual source of
"database is locked"), one connection per operation (sqlite3 connections stay on their
thread). A file at the store path that is not our store (foreign, truncated, corrupt,
written by a newer version) raises StoreError with a one-line message; it is never
replaced.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database, Migrations

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DB_ENV = "DEEPFAKE_DB"
DEFAULT_DB = PROJECT_ROOT / "cache" / "analyses.db"

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


@MIGRATIONS()
def m003_audio_quality(db: Database) -> None:
    # input-quality measurements of the signal (core.quality.InputQuality JSON), so a
    # stored analysis shows its warnings without decoding the audio again
    db.table("audio").add_column("quality", str)


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


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def one_line(e: BaseException) -> str:
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
    msg = one_line(e)
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
def transaction(db: Database) -> Iterator[Database]:
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
    with transaction(db):
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
