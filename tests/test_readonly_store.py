"""A store that opens read-only: browsing works, every write says why it cannot.

Copies of a real store (made by the engine with a fake detector) are made read-only
with chmod. Root writes through chmod, so under root the copy is also switched with
$DEEPFAKE_DB_READONLY, the switch a read-only copy served as root needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import sqlite3
import stat

import numpy as np
import pytest
import soundfile as sf
from sqlite_utils import Database

from core import store
from core.detectors.detect import verdict_from_windows
from core.detectors.registry import MODELS
from core.engine.service import Engine
from core.store import READONLY_ENV, StoreError, schema

AS_ROOT = os.geteuid() == 0


def wav_bytes(seed: int, seconds: float = 1.0) -> bytes:
    t = np.arange(int(seconds * 16_000)) / 16_000
    noise = np.random.default_rng(seed).normal(scale=0.02, size=t.size)
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 300 * t) + noise).astype(np.float32),
             16_000, format="WAV", subtype="PCM_16")  # fmt: skip
    return buf.getvalue()


class StubDetector:
    """Detector-shaped: a real spec under a test key; P(spoof) 0.8 on every window."""

    def __init__(self):
        base = next(iter(MODELS.values()))
        self.spec = dataclasses.replace(base, key="stub", sha256="5" * 64)

    def score(self, audio, progress=None):
        from core.audio.decode import window_starts

        starts = window_starts(len(audio.samples), self.spec.input_length, self.spec.window_hop)
        p = np.full(len(starts), 0.8)
        return verdict_from_windows(self.spec, p, starts, len(audio.samples), seconds=0.01)


def engine(db) -> Engine:
    return Engine(db, detectors={"stub": StubDetector()})


@pytest.fixture
def source(tmp_path, monkeypatch):
    """a writable store holding two analysed files and a batch"""
    monkeypatch.delenv(READONLY_ENV, raising=False)
    db = tmp_path / "live" / "analyses.db"
    shas = [engine(db).analyze(wav_bytes(i), f"clip{i}.wav").sha256 for i in range(2)]
    store.record_batch("demo", protocol="p.txt", audio_dir="audio", models=["stub"],
                       methods=[], db=db)  # fmt: skip
    return db, shas


def snapshot(folder) -> dict:
    """every file's bytes; a reader's WAL index (-shm) and an empty WAL do not count"""
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and not p.name.endswith("-shm")
        and not (p.name.endswith("-wal") and p.stat().st_size == 0)
    }


@pytest.fixture
def read_only_copy(source, tmp_path, monkeypatch):
    """a copy of the store folder, chmod read-only (plus the switch under root)"""
    db, shas = source
    copy = tmp_path / "copy"
    shutil.copytree(db.parent, copy)
    for p in [*copy.rglob("*"), copy]:
        mode = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        p.chmod(mode | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH if p.is_dir() else 0))
    if AS_ROOT:
        monkeypatch.setenv(READONLY_ENV, "1")
    yield copy / "analyses.db", shas
    for p in [copy, *copy.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def test_a_read_only_copy_lists_history_and_serves_results(read_only_copy):
    db, shas = read_only_copy
    assert store.is_read_only(db)
    before = snapshot(db.parent)
    page = store.list_history(db=db)
    assert page.total == 2
    assert {i["filename"] for i in page.items} == {"clip0.wav", "clip1.wav"}
    assert store.find_sha256(shas[0][:10], db=db) == shas[0]
    assert store.audio_bytes(shas[1], db=db) == wav_bytes(1)
    a = store.get_analysis(shas[0], db=db)
    assert [p["model"] for p in a["predictions"]] == ["stub"]
    assert [b["name"] for b in store.list_batches(db=db)] == ["demo"]
    assert store.schema_version(db) == store.SCHEMA_VERSION
    # what the dashboard and `history` / `show` read, through the engine
    eng = engine(db)
    assert eng.history().total == 2
    shown = eng.analysis(shas[0])
    assert shown.filename == "clip0.wav" and shown.verdicts["stub"].p_spoof == pytest.approx(0.8)
    assert snapshot(db.parent) == before  # nothing was written, not even a migration


def test_every_write_to_a_read_only_store_says_so(read_only_copy):
    db, shas = read_only_copy
    before = snapshot(db.parent)
    writes = [
        lambda: engine(db).analyze(wav_bytes(7), "new.wav"),  # a new file
        lambda: engine(db).analyze(wav_bytes(0), "again.wav"),  # a known one
        lambda: store.delete_analysis(shas[0], db=db),
        lambda: store.record_batch("other", protocol="p", audio_dir="a", models=[],
                                   methods=[], db=db),  # fmt: skip
    ]
    for write in writes:
        with pytest.raises(StoreError, match="is read-only, so it cannot be changed") as err:
            write()
        assert "\n" not in str(err.value) and str(db) in str(err.value)
    assert snapshot(db.parent) == before
    assert not (db.parent / "audio" / hashlib.sha256(wav_bytes(7)).hexdigest()).exists()


def test_the_switch_alone_makes_a_writable_store_read_only(source, monkeypatch):
    db, shas = source
    monkeypatch.setenv(READONLY_ENV, "1")
    assert store.list_history(db=db).total == 2
    with pytest.raises(StoreError, match="read-only"):
        store.delete_analysis(shas[0], db=db)
    monkeypatch.setenv(READONLY_ENV, "0")
    assert store.delete_analysis(shas[0], db=db)
    monkeypatch.setenv(READONLY_ENV, "perhaps")
    with pytest.raises(StoreError, match="must be 1 or 0"):
        store.list_history(db=db)


def test_explicit_read_only_argument(source):
    db, _ = source
    with store.open_db(db, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM audio").fetchone()[0] == 2
        with pytest.raises(StoreError, match="read-only"):
            with store.transaction(conn):
                pass
    with store.open_db(db, read_only=False) as conn, store.transaction(conn):
        conn.execute("DELETE FROM batches")
    assert store.list_batches(db=db) == []


def test_an_older_store_cannot_be_migrated_read_only(tmp_path, monkeypatch):
    db = tmp_path / "old.db"
    with Database(db) as conn:  # a store left at step 2 by an older version
        store.MIGRATIONS.apply(conn, stop_before="m003_audio_quality")
        conn.execute("PRAGMA user_version = 2")
    before = db.read_bytes()
    monkeypatch.setenv(READONLY_ENV, "1")
    with pytest.raises(StoreError, match="schema step 2 of 4 .* cannot be migrated read-only"):
        store.list_history(db=db)
    assert db.read_bytes() == before
    monkeypatch.delenv(READONLY_ENV)
    assert store.list_history(db=db).total == 0  # writable: migrated on open
    monkeypatch.setenv(READONLY_ENV, "1")
    assert store.list_history(db=db).total == 0


def test_a_read_only_store_is_never_created(tmp_path, monkeypatch):
    monkeypatch.setenv(READONLY_ENV, "1")
    missing = tmp_path / "none" / "analyses.db"
    with pytest.raises(StoreError, match="there is no store at .* cannot be created"):
        store.list_history(db=missing)
    assert not missing.parent.exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a SQLite file with no tables
    with pytest.raises(StoreError, match="holds no analysis store yet"):
        store.list_history(db=empty)


def test_foreign_database_is_still_refused_read_only(tmp_path, monkeypatch):
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    monkeypatch.setenv(READONLY_ENV, "1")
    with pytest.raises(StoreError, match="not an analysis store"):
        store.list_history(db=db)


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_foreign_database_is_left_byte_for_byte_as_it_was(tmp_path, capsys, journal):
    """history --db on someone else's SQLite file: refused, and nothing written to it"""
    from core.cli import main

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    before = db.read_bytes()
    assert main(["history", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "not an analysis store (tables: t); it was left untouched" in err
    assert db.read_bytes() == before  # header, change counter, journal mode: as before
    assert not db.with_name("other.db-wal").exists() or journal == "wal"
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == journal
    conn.close()


def test_a_store_written_by_a_newer_version_is_not_touched_either(tmp_path):
    db = tmp_path / "newer.db"
    store.list_history(db=db)  # a current store ...
    with sqlite3.connect(db) as conn:  # ... plus a schema step this version lacks
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES (?, 'm999_future', '')", [store.MIGRATIONS.name])  # fmt: skip
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the main file
    conn.close()
    schema._READY.clear()  # as a new process would see it
    before = db.read_bytes()
    with pytest.raises(StoreError, match="written by a newer version"):
        store.list_history(db=db)
    assert db.read_bytes() == before


def _refuse_mode_ro(monkeypatch):
    """sqlite as it behaves for a WAL store in a folder this user cannot write"""
    real = sqlite3.connect

    def connect(target, *args, **kw):
        if "mode=ro" in str(target):
            conn = real(":memory:")
            conn.close()  # any use now fails, as the real open does at first read
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(target, *args, **kw)

    monkeypatch.setattr(schema.sqlite3, "connect", connect)


def test_without_shared_memory_the_store_opens_immutable(read_only_copy, monkeypatch):
    db, shas = read_only_copy
    _refuse_mode_ro(monkeypatch)
    assert store.list_history(db=db).total == 2
    assert store.audio_bytes(shas[0], db=db) == wav_bytes(0)
    with pytest.raises(StoreError, match="read-only"):
        store.delete_analysis(shas[0], db=db)


def test_immutable_is_refused_while_the_wal_holds_changes(source, tmp_path, monkeypatch):
    db, _ = source
    holder = sqlite3.connect(db)  # keeps the WAL from being checkpointed away
    holder.execute("SELECT count(*) FROM audio").fetchone()
    engine(db).analyze(wav_bytes(5), "late.wav")
    copy = tmp_path / "walcopy"
    shutil.copytree(db.parent, copy)
    holder.close()
    assert (copy / "analyses.db-wal").stat().st_size > 0
    monkeypatch.setenv(READONLY_ENV, "1")
    # mode=ro reads the WAL: the late file is there
    assert store.list_history(db=copy / "analyses.db").total == 3
    _refuse_mode_ro(monkeypatch)
    with pytest.raises(StoreError, match="holds changes not yet written back"):
        store.list_history(db=copy / "analyses.db")


def test_a_current_store_opens_without_the_write_lock(source, monkeypatch):
    """opening no longer takes BEGIN IMMEDIATE when nothing needs migrating"""
    db, _ = source
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_S", 0.2)
    schema._READY.clear()  # as in a fresh process
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        assert store.list_history(db=db).total == 2
    finally:
        writer.execute("ROLLBACK")
        writer.close()
