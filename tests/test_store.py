"""core.store: round trips, schema and bad files, history, deletion, batches, CLI (single
flight: test_store_flight.py)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3

import numpy as np
import pytest
from store_helpers import (  # noqa: F401 (db_path: fixture)
    SHA,
    VERDICT,
    Counter,
    _info,
    db_path,
)

from core import store
from core.store import StoreError
from core.store.keys import ExplanationKey, VerdictKey

# -------------------------------------------------------------------- round trips


def test_arrays_round_trip_without_pickle():
    arrays = {
        "values": np.linspace(-1, 1, 17),
        "dense": np.random.default_rng(0).standard_normal(64_600).astype(np.float32),
        "cqt": np.random.default_rng(1).standard_normal((432, 401)).astype(np.float32),
        "bounds": np.zeros((0, 2)),
        "ids": np.arange(5, dtype=np.int64),
    }
    back = store.decode_arrays(store.encode_arrays(arrays))
    assert set(back) == set(arrays)
    for k, a in arrays.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape
        np.testing.assert_array_equal(back[k], a)
    with pytest.raises(ValueError, match="dtype object"):
        store.encode_arrays({"bad": np.array([{"a": 1}], dtype=object)})
    # a pickled payload in a stored blob is refused on load
    buf = io.BytesIO()
    np.savez(buf, bad=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError):
        store.decode_arrays(buf.getvalue())


def test_prediction_miss_then_hit_is_identical(db_path):
    compute = Counter()
    params = {"n_samples": 64_600, "hop": 32_300}
    first, cached1 = store.get_or_compute_prediction(
        VerdictKey(SHA, "m", "w" * 64, params), compute, db=db_path
    )
    second, cached2 = store.get_or_compute_prediction(
        VerdictKey(SHA, "m", "w" * 64, params), compute, db=db_path
    )
    assert (cached1, cached2, compute.calls) == (False, True, 1)
    assert first == second
    assert first["windows"] == VERDICT["windows"] and first["p_spoof"] == 0.75
    assert first["params"] == params


def test_changed_weights_or_params_miss(db_path):
    compute = Counter()
    base = dict(audio_sha256=SHA, model="m", weights_sha256="a" * 64)
    store.get_or_compute_prediction(
        VerdictKey(**base, params={"hop": 1}), compute, db=db_path
    )
    _, c = store.get_or_compute_prediction(
        VerdictKey(SHA, "m", "b" * 64, {"hop": 1}), compute, db=db_path
    )
    assert not c and compute.calls == 2
    _, c = store.get_or_compute_prediction(
        VerdictKey(**base, params={"hop": 2}), compute, db=db_path
    )
    assert not c and compute.calls == 3
    meta = {"window": 0, "target": 1, "target_label": "spoof", "quality": {"r2": 0.5}}
    record = Counter(value=(meta, {"values": np.ones(4)}))
    args = [SHA, "m", "a" * 64, "shap", "1", {"segments": 16, "seed": 0}]
    store.get_or_compute_explanation(ExplanationKey(*args), record, db=db_path)
    m, a, cached = store.get_or_compute_explanation(ExplanationKey(*args), record, db=db_path)
    assert cached and record.calls == 1 and m == meta
    for changed in (
        [
            SHA,
            "m",
            "a" * 64,
            "shap",
            "2",
            {"segments": 16, "seed": 0},
        ],  # method version
        [SHA, "m", "a" * 64, "shap", "1", {"segments": 8, "seed": 0}],  # parameter
        [SHA, "m", "c" * 64, "shap", "1", {"segments": 16, "seed": 0}],  # weights
        [SHA, "m", "a" * 64, "lime", "1", {"segments": 16, "seed": 0}],  # method
    ):
        _, _, cached = store.get_or_compute_explanation(
            ExplanationKey(*changed), record, db=db_path
        )
        assert not cached
    assert record.calls == 5


def test_record_audio_keeps_bytes_under_the_hash_only(db_path):
    data = b"RIFF fake wav bytes" * 10
    store.record_audio(_info(data), data, "../../etc/passwd", db=db_path)
    row = store.record_audio(_info(data), data, "C:\\uploads\\call 1.wav", db=db_path)
    sha = hashlib.sha256(data).hexdigest()
    assert sorted(row["filenames"]) == ["call 1.wav", "passwd"]
    assert row["filename"] == "call 1.wav"  # most recent first
    assert row["first_seen"] <= row["last_seen"]
    assert row["orig_sample_rate"] == 44_100 and row["orig_channels"] == 2
    assert os.listdir(db_path.parent / "audio") == [sha]
    assert store.audio_bytes(sha, db=db_path) == data
    with pytest.raises(ValueError):
        store.record_audio(_info(b"other"), data, "x.wav", db=db_path)


def test_digital_silence_rms_is_stored_as_null(db_path):
    data = b"\0" * 100
    row = store.record_audio(
        _info(data, rms_dbfs=-np.inf, near_silent=True), data, "s.wav", db=db_path
    )
    assert row["rms_dbfs"] is None and row["near_silent"] is True


# ------------------------------------------------------------------------- schema


def test_wal_busy_timeout_and_schema_version(db_path):
    assert store.schema_version(db=db_path) == store.SCHEMA_VERSION
    with store.open_db(db_path) as db:
        assert db.journal_mode == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
        assert {"audio", "filenames", "predictions", "explanations", "claims"} <= set(
            db.table_names()
        )


def test_db_location_from_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.delenv(store.DB_ENV, raising=False)
    assert store.resolve_db_path() == store.PROJECT_ROOT / "cache" / "analyses.db"
    monkeypatch.setenv(store.DB_ENV, str(tmp_path / "env.db"))
    assert store.resolve_db_path() == tmp_path / "env.db"
    assert store.resolve_db_path(tmp_path / "arg.db") == tmp_path / "arg.db"
    assert store.audio_dir(tmp_path / "arg.db") == tmp_path / "audio"


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is a text file\n" * 50,
        b"\x89PNG\r\n\x1a\n" + bytes(2000),
        b"SQLite",
    ],
    ids=["text", "png", "short"],
)
def test_foreign_file_gives_clear_error_and_is_kept(db_path, content):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(content)
    with pytest.raises(StoreError) as err:
        store.list_history(db=db_path)
    msg = str(err.value)
    assert "\n" not in msg and "not a SQLite database" in msg and str(db_path) in msg
    assert db_path.read_bytes() == content


@pytest.mark.parametrize("keep", [0.5, 200, 60])
def test_truncated_store_gives_clear_error_and_is_kept(tmp_path, keep):
    path = tmp_path / "a.db"
    for i in range(30):
        data = os.urandom(5000)
        store.record_audio(_info(data), data, f"f{i}.wav", db=path)
    with sqlite3.connect(path) as conn:  # fold the WAL into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    n = int(size * keep) if isinstance(keep, float) else keep
    with open(path, "r+b") as f:
        f.truncate(n)
    store.schema._READY.clear()  # as a new process would see it
    with pytest.raises(StoreError) as err:
        store.list_history(db=path)
    assert "\n" not in str(err.value)
    assert "corrupt or truncated" in str(err.value) or "not a SQLite" in str(err.value)
    assert path.stat().st_size == n


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "someone-else.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    with pytest.raises(StoreError, match="not an analysis store"):
        store.list_history(db=path)
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"invoices"}


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "a.db"
    store.list_history(db=path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
            [store.MIGRATIONS.name, "m999_future", "2099-01-01"],
        )
    store.schema._READY.clear()
    with pytest.raises(StoreError, match="newer version"):
        store.list_history(db=path)


def test_old_schema_is_migrated_in_place(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        from sqlite_utils import Database

        store.MIGRATIONS.apply(Database(conn), stop_before="m002_batches")
        conn.execute(
            "INSERT INTO audio (sha256, n_bytes, duration, orig_sample_rate, "
            "orig_channels, first_seen, last_seen) VALUES (?, 1, 1.0, 16000, 1, 'a', 'b')",
            [SHA],
        )
    assert store.schema_version(db=path) == store.SCHEMA_VERSION == 4
    row = store.get_audio(SHA, db=path)
    assert row["duration"] == 1.0 and row["quality"] is None  # m003 added the column
    store.set_audio_quality(SHA, {"snr_db": 31.5, "warnings": []}, db=path)
    assert store.get_audio(SHA, db=path)["quality"] == {"snr_db": 31.5, "warnings": []}
    store.record_batch("b", protocol="p.txt", audio_dir="d", models=["m"], methods=[], db=path)
    assert store.get_batch("b", db=path)["models"] == ["m"]


def test_verdict_embeddings_are_stored_and_older_rows_read_as_none(tmp_path):
    from core.store.keys import VerdictKey

    path = tmp_path / "s.db"
    v = {"p_spoof": 0.7, "label": "spoof", "max_p_spoof": 0.9, "max_window": 0,
         "windows": [], "seconds": 0.1, "embedding": [0.5, -1.25, 3.0]}  # fmt: skip
    vk = VerdictKey(SHA, "m", "w" * 64, {"a": 1})
    row, cached = store.get_or_compute_prediction(vk, lambda: v, db=path)
    again, cached = store.get_or_compute_prediction(vk, lambda: 1 / 0, db=path)
    assert cached and again["embedding"] == [0.5, -1.25, 3.0]
    old = VerdictKey(SHA, "m2", "w" * 64, {})
    store.get_or_compute_prediction(old, lambda: {**v, "embedding": None}, db=path)
    assert store.get_prediction(old, db=path)["embedding"] is None


def test_batches_record_files(db_path):
    store.record_batch("run", protocol="p", audio_dir="a", models=["m"], methods=["shap"], db=db_path)
    base = dict(batch="run", system="A07", key="spoof", db=db_path)
    store.record_batch_file(**base, file_id="f2", sha256=None, status="failed", error="bad")
    store.record_batch_file(**base, file_id="f1", sha256=SHA, status="done", error=None)
    store.record_batch_file(**base, file_id="f2", sha256=SHA, status="done", error=None)
    files = store.batch_files("run", db=db_path)
    assert [(f["file_id"], f["status"], f["error"]) for f in files] == [
        ("f1", "done", None), ("f2", "done", None)
    ]  # fmt: skip
    assert store.batch_files("nope", db=db_path) == [] and store.get_batch("nope", db=db_path) is None


# ------------------------------------------------------------ history and delete


def _fill(db_path, n=5):
    shas = []
    for i in range(n):
        data = f"audio {i}".encode() * 20
        info = _info(data, duration=float(i + 1))
        store.record_audio(info, data, f"case{i % 2}_clip{i}.wav", db=db_path)
        label = "spoof" if i % 2 else "bonafide"
        v = {**VERDICT, "label": label, "p_spoof": i / 10}
        store.get_or_compute_prediction(
        VerdictKey(info["sha256"], "m1", "w" * 64, {}), lambda v=v: v, db=db_path
        )
        shas.append(info["sha256"])
    return shas


def test_history_filters_sorts_and_paginates(db_path):
    shas = _fill(db_path)
    page = store.list_history(db=db_path)
    assert page.total == 5 and [i["sha256"] for i in page.items] == shas[::-1]
    item = page.items[0]
    assert (
        item["predictions"]["m1"]["label"] == "bonafide" and item["n_explanations"] == 0
    )
    assert store.list_history(db=db_path, filename="CASE1").total == 2
    assert store.list_history(db=db_path, filename="%").total == 0  # LIKE escaped
    assert store.list_history(db=db_path, label="spoof").total == 2
    assert store.list_history(db=db_path, model="m1", label="bonafide").total == 3
    assert store.list_history(db=db_path, model="other").total == 0
    by_p = store.list_history(db=db_path, sort="p_spoof", descending=True, limit=2)
    assert [i["sha256"] for i in by_p.items] == [shas[4], shas[3]] and by_p.total == 5
    nxt = store.list_history(
        db=db_path, sort="duration", descending=False, limit=2, offset=2
    )
    assert [i["sha256"] for i in nxt.items] == shas[2:4]
    today = page.items[0]["last_seen"][:10]
    assert store.list_history(db=db_path, since=today, until=today).total == 5
    assert store.list_history(db=db_path, until="2000-01-01").total == 0
    assert store.list_history(db=db_path, since="2999-01-01").total == 0
    with pytest.raises(ValueError):
        store.list_history(db=db_path, sort="nonsense")


def test_get_analysis_and_delete_everything_it_owns(db_path):
    shas = _fill(db_path, 2)
    sha = shas[0]
    meta = {
        "window": 1,
        "target": 0,
        "target_label": "bonafide",
        "quality": {"r2": 0.9},
    }
    store.get_or_compute_explanation(
        ExplanationKey(sha, "m1", "w" * 64, "lime", "1", {}),
        lambda: (meta, {"values": np.arange(3.0)}),
        db=db_path,
    )
    a = store.get_analysis(sha, db=db_path)
    assert a["audio"]["sha256"] == sha and len(a["predictions"]) == 1
    assert [e["method"] for e in a["explanations"]] == ["lime"]
    assert (
        a["explanations"][0]["quality"] == {"r2": 0.9}
        and "arrays" not in a["explanations"][0]
    )
    full = store.get_analysis(sha, db=db_path, arrays=True)
    np.testing.assert_array_equal(
        full["explanations"][0]["arrays"]["values"], np.arange(3.0)
    )

    assert store.delete_analysis(sha, db=db_path)
    assert store.get_analysis(sha, db=db_path) is None
    assert not (db_path.parent / "audio" / sha).exists()
    with store.open_db(db_path) as db:
        for table, col in [
            ("audio", "sha256"),
            ("filenames", "sha256"),
            ("predictions", "audio_sha256"),
            ("explanations", "audio_sha256"),
        ]:
            assert (
                db.execute(
                    f"SELECT count(*) FROM {table} WHERE {col} = ?", [sha]
                ).fetchone()[0]
                == 0
            )
    assert store.get_analysis(shas[1], db=db_path) is not None  # the other one stays
    assert (db_path.parent / "audio" / shas[1]).exists()
    assert not store.delete_analysis(sha, db=db_path)


# ---------------------------------------------------------------------------- CLI


def test_cli_history_show_delete(db_path, capsys):
    from core.cli import main

    shas = _fill(db_path, 3)
    assert main(["history", "--json", "--db", str(db_path), "--label", "spoof"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == 1 and out["items"][0]["sha256"] == shas[1]
    assert main(["history", "--db", str(db_path), "--filename", "clip2"]) == 0
    assert shas[2][:12] in capsys.readouterr().out
    assert main(["show", shas[0][:10], "--json", "--db", str(db_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sha256"] == shas[0] and [m["model"] for m in shown["models"]] == ["m1"]
    assert main(["delete", shas[0], "--db", str(db_path)]) == 0
    assert store.get_audio(shas[0], db=db_path) is None
    capsys.readouterr()
    assert main(["delete", shas[0], "--db", str(db_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_reports_a_foreign_store_in_one_line(tmp_path, capsys):
    from core.cli import main

    bad = tmp_path / "bad.db"
    bad.write_text("not a database at all")
    assert main(["history", "--db", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not a SQLite database" in err and err.count("\n") == 1
    assert bad.read_text() == "not a database at all"
