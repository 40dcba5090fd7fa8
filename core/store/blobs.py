"""Audio in the store: one row per SHA-256, every name it came under, its bytes on disk.

The bytes live in ``audio/<sha256>`` next to the store file, written atomically under
the write lock and checked against the hash whenever they are read back. An uploaded
name is data only (``clean_filename``); it never becomes a path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path

from sqlite_utils import Database

from core.store.codecs import dumps_lenient
from core.store.schema import (
    SHA256_RE,
    NotStoredError,
    StoreError,
    now,
    open_db,
    resolve_db_path,
    transaction,
)


def check_sha(sha256: str) -> str:
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
        orig_format, rms_dbfs, near_silent (core.audio.decode.Audio's fields)
    Returns the stored audio row (see get_audio).
    """
    sha = check_sha(info["sha256"])
    if hashlib.sha256(data).hexdigest() != sha:
        raise ValueError("the bytes do not match info['sha256']")
    path = resolve_db_path(db)
    name, stamp = clean_filename(filename), now()
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
        "first_seen": stamp,
        "last_seen": stamp,
    }
    with open_db(path) as conn, transaction(conn):
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
            [sha, name, stamp, stamp],
        )
        out = audio_row(conn, sha)
    assert out is not None, "audio row vanished inside its own transaction"
    return out


def audio_row(conn: Database, sha: str) -> dict | None:
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
    row["quality"] = json.loads(row["quality"]) if row.get("quality") else None
    row["filenames"] = [n["filename"] for n in names]
    row["filename"] = row["filenames"][0] if names else ""
    return row


def get_audio(sha256: str, *, db: str | Path | None = None) -> dict | None:
    """The audio row plus ``filenames`` (most recent first) and ``filename``; or None."""
    check_sha(sha256)
    with open_db(db) as conn:
        return audio_row(conn, sha256)


def audio_bytes(sha256: str, *, db: str | Path | None = None) -> bytes:
    """The original file's bytes, checked against the hash; NotStoredError if absent."""
    check_sha(sha256)
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



def set_audio_quality(sha256: str, quality: dict, *, db: str | Path | None = None) -> None:
    """Record the input-quality measurements of a stored audio (JSON-able dict)."""
    check_sha(sha256)
    with open_db(db) as conn, transaction(conn):
        conn.execute(
            "UPDATE audio SET quality = ? WHERE sha256 = ?", [dumps_lenient(quality), sha256]
        )
