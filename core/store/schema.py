"""The store's file: location, connections (read-write or read-only), errors.

Tables and their steps: see migrations.py (the step count is mirrored in
``PRAGMA user_version``).

Concurrency: WAL journal, a busy timeout, every write inside BEGIN IMMEDIATE
(``transaction``: a transaction never has to upgrade a read lock, the usual source of
"database is locked"), one connection per operation (sqlite3 connections stay on their
thread). A file at the store path that is not our store (foreign, truncated, corrupt,
written by a newer version) raises StoreError with a one-line message; it is never
replaced, nor changed: an existing file is first opened read-only, and only once its
schema is confirmed as ours (or it holds no table) is it opened for writing, switched
to WAL and migrated.

Read-only: with ``open_db(read_only=True)``, with $DEEPFAKE_DB_READONLY=1, or when the
file or its folder is not writable, the store opens ``mode=ro`` (``immutable=1`` where
a WAL store's shared memory cannot be created) with no migration and no WAL switch. It
must already be at SCHEMA_VERSION; history and results read as usual, and every write
raises StoreError saying the store is read-only.
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

from sqlite_utils import Database

from core.store.migrations import MIGRATIONS, SCHEMA_VERSION

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DB_ENV = "DEEPFAKE_DB"
DEFAULT_DB = PROJECT_ROOT / "cache" / "analyses.db"
READONLY_ENV = "DEEPFAKE_DB_READONLY"  # "1": open the store read-only, whatever it is

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


def is_read_only(db: str | Path | None = None, *, read_only: bool | None = None) -> bool:
    """
    Whether the store opens read-only: ``read_only`` when given, else $DEEPFAKE_DB_READONLY,
    else whether the file exists and it or its folder is not writable. (Root writes
    through any chmod, so a read-only copy served as root needs the variable.)
    """
    if read_only is not None:
        return bool(read_only)
    flag = os.environ.get(READONLY_ENV, "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag not in ("", "0", "false", "no", "off"):
        raise StoreError(f"${READONLY_ENV} must be 1 or 0, not {flag!r}")
    path = resolve_db_path(db)
    return path.exists() and not (
        os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    )


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


def read_only_error(path: Path) -> StoreError:
    return StoreError(
        f"the store {path} is read-only, so it cannot be changed (it can still be "
        f"browsed); unset ${READONLY_ENV} or make the file and its folder writable"
    )


def _store_error(path: Path, e: sqlite3.Error) -> StoreError:
    msg = one_line(e)
    if isinstance(e, sqlite3.OperationalError) and "readonly" in msg:
        return read_only_error(path)
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


def _open_read_only(path: Path) -> sqlite3.Connection:
    """mode=ro, else immutable=1 where the WAL's shared memory cannot be created."""
    if not path.exists():
        raise StoreError(
            f"there is no store at {path}; a read-only store cannot be created"
        )
    try:
        conn = sqlite3.connect(
            f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            conn.close()
            raise
    except sqlite3.OperationalError as e:
        if "readonly" not in str(e) and "unable to open" not in str(e):
            raise
        # immutable ignores the WAL, so it is only safe when the WAL holds nothing
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"the store {path} is read-only and {wal.name} holds changes not yet "
                f"written back; open it once with write access, then read-only"
            ) from e
        conn = sqlite3.connect(
            f"{path.as_uri()}?immutable=1", uri=True, timeout=BUSY_TIMEOUT_S
        )
    conn.execute("PRAGMA query_only = ON")
    return conn


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False) -> Iterator[Database]:
    """One connection for one operation; sqlite errors become StoreError."""
    _check_header(path)
    try:
        if read_only:
            conn = _open_read_only(path)
        else:
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
    if db.execute("PRAGMA query_only").fetchone()[0]:
        # before the body runs: record_audio writes the bytes file inside it
        raise read_only_error(Path(db.execute("PRAGMA database_list").fetchone()[2]))
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


def _holds_data(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


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


def _pending(db: Database, path: Path) -> list[str]:
    """The schema steps not yet applied; StoreError for a foreign or newer file."""
    known = [m.name for m in MIGRATIONS._migrations]
    tables = set(db.table_names())
    applied = {m.name for m in MIGRATIONS.applied(db)}
    if tables and not applied:
        shown = ", ".join(sorted(tables)[:5])
        raise StoreError(
            f"{path} is a SQLite database but not an analysis store (tables: "
            f"{shown}); it was left untouched - choose another path (--db or ${DB_ENV})"
        )
    unknown = applied - set(known)
    if unknown:
        raise StoreError(
            f"the store {path} was written by a newer version (schema steps "
            f"{', '.join(sorted(unknown))}); upgrade this program to use it"
        )
    return [name for name in known if name not in applied]


def _migrate(db: Database, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if not _pending(db, path) and version == SCHEMA_VERSION:
        return  # current: no write lock needed
    with transaction(db):
        _pending(db, path)  # again under the lock: another process may have migrated
        MIGRATIONS.apply(db)
        db.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")


def _require_current(db: Database, path: Path) -> None:
    """A read-only store cannot be created or migrated: say which, in one line."""
    pending = _pending(db, path)
    if len(pending) == SCHEMA_VERSION:
        raise StoreError(
            f"{path} holds no analysis store yet; a read-only store cannot be created"
        )
    if pending:
        raise StoreError(
            f"the store {path} has schema step {SCHEMA_VERSION - len(pending)} of "
            f"{SCHEMA_VERSION} (written by an older version) and cannot be migrated "
            f"read-only; open it once with write access to upgrade it"
        )


@contextlib.contextmanager
def open_db(
    db: str | Path | None = None, *, read_only: bool | None = None
) -> Iterator[Database]:
    """
    ``with open_db(path) as db:`` a validated, migrated store, WAL mode, busy timeout.

    The first open of a file in this process creates or migrates it; later opens only
    check its header. Raises StoreError for a foreign, corrupt or truncated file.
    Read-only (see is_read_only): no migration, the schema must be current, writes
    raise StoreError.
    """
    path = resolve_db_path(db)
    if is_read_only(path, read_only=read_only):
        with _connect(path, read_only=True) as conn:
            _require_current(conn, path)
            yield conn
        return
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
                if _holds_data(path):
                    # a file this process did not create: confirm it is our store (or
                    # an empty database) through a read-only connection, so a foreign
                    # or newer file is refused with nothing written, not even the
                    # switch to WAL
                    with _connect(path, read_only=True) as conn:
                        _pending(conn, path)
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

