"""Reading and removing many rows: history (filter, sort, page), batches, delete, stats."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from core.store.blobs import audio_row, check_sha
from core.store.codecs import dumps
from core.store.schema import (
    LABELS,
    SHA256_RE,
    SORT_KEYS,
    now,
    open_db,
    resolve_db_path,
    transaction,
)


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


MAX_SEARCH_CHARS = 500  # longer file-name searches are refused (SQLite caps LIKE)


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
    if filename and len(filename) > MAX_SEARCH_CHARS:
        raise ValueError(
            f"the file-name search is {len(filename)} characters long; at most "
            f"{MAX_SEARCH_CHARS} are searched for"
        )
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
    item = audio_row(conn, sha) or {}
    preds: dict[str, dict] = {}
    for r in conn.query(
        "SELECT model, weights_sha256, p_spoof, label, max_p_spoof, embedding, created "
        "FROM predictions WHERE audio_sha256 = ? ORDER BY created DESC",
        [sha],
    ):
        r["embedding"] = json.loads(r["embedding"]) if r.get("embedding") else None
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
    """Create or update a named corpus run (core.corpus.batch); its files keep their rows."""
    stamp = now()
    with open_db(db) as conn, transaction(conn):
        conn.execute(
            "INSERT INTO batches (name, protocol, audio_dir, models, methods, created, "
            "updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "protocol = excluded.protocol, audio_dir = excluded.audio_dir, "
            "models = excluded.models, methods = excluded.methods, "
            "updated = excluded.updated",
            [name, str(protocol), str(audio_dir), dumps(list(models)),
             dumps(list(methods)), stamp, stamp],
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
        check_sha(sha256)
    with open_db(db) as conn, transaction(conn):
        conn.table("batch_files").upsert(
            {
                "batch": batch,
                "file_id": file_id,
                "system": system,
                "key": key,
                "sha256": sha256,
                "status": status,
                "error": error,
                "updated": now(),
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
    check_sha(sha256)
    path = resolve_db_path(db)
    blob = path.parent / "audio" / sha256
    with open_db(path) as conn, transaction(conn):
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
