"""core.store single flight: one compute per missing result across threads and
processes; claims of dead or stalled owners are taken over."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from store_helpers import SHA, Counter, db_path  # noqa: F401 (db_path: fixture)

from core import store
from core.engine.keys import VerdictKey
from core.store.flight import _HOST


def test_single_flight_across_threads(db_path):
    compute = Counter(sleep=0.3)
    results, errors = [], []

    def run():
        try:
            results.append(
                store.get_or_compute_prediction(
        VerdictKey(SHA, "m", "w" * 64, {}), compute, db=db_path
                )
            )
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and compute.calls == 1
    assert sorted(c for _, c in results) == [False] + [True] * 5
    assert all(r == results[0][0] for r, _ in results)


def test_failed_compute_releases_the_claim(db_path):
    def boom():
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        store.get_or_compute_prediction(
        VerdictKey(SHA, "m", "w" * 64, {}), boom, db=db_path)
    with store.open_db(db_path) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    _, cached = store.get_or_compute_prediction(
        VerdictKey(SHA, "m", "w" * 64, {}), Counter(), db=db_path
    )
    assert not cached


def plant_claim(db_path, *, owner: str, pid: int) -> str:
    """a prediction claim on this host held by ``pid``, as another process writes it"""
    key = VerdictKey(SHA, "m", "w" * 64, {}).key
    now = time.time()
    with store.open_db(db_path) as db:
        db.execute(
            "INSERT INTO claims (key, kind, owner, host, pid, claimed_at, heartbeat) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [key, "prediction", owner, _HOST, pid, now, now],
        )
    return key


def test_claim_of_a_dead_process_is_taken_over(db_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    plant_claim(db_path, owner="ghost", pid=dead.pid)
    t0 = time.monotonic()
    _, cached = store.get_or_compute_prediction(
        VerdictKey(SHA, "m", "w" * 64, {}), Counter(), db=db_path
    )
    assert not cached and time.monotonic() - t0 < 5


def test_waiter_gets_the_result_computed_elsewhere(db_path, monkeypatch):
    """A claim held by a live owner: we wait, and take its result when it lands."""
    key = plant_claim(db_path, owner="other", pid=os.getpid())

    def other_finishes():
        time.sleep(0.4)
        with store.open_db(db_path) as db, store.transaction(db):
            db.execute("DELETE FROM claims WHERE key = ?", [key])
            db.table("predictions").insert(
                {
                    "key": key, "audio_sha256": SHA, "model": "m", "weights_sha256": "w" * 64,
                    "params": "{}", "p_spoof": 0.1, "label": "bonafide", "max_p_spoof": 0.1,
                    "max_window": 0, "windows": "[]", "seconds": 1.0, "created": "x",
                }
            )  # fmt: skip

    t = threading.Thread(target=other_finishes)
    t.start()
    waits = []
    compute = Counter()
    row, cached = store.get_or_compute_prediction(
        VerdictKey(SHA, "m", "w" * 64, {}), compute, db=db_path, on_wait=waits.append
    )
    t.join()
    assert cached and compute.calls == 0 and row["p_spoof"] == 0.1 and len(waits) == 1
