"""core.engine.service.Engine: verdicts and explanations through the store, once each; two
processes; batch and dashboard share keys (CLI and old stores: test_service_cli.py)."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import traceback
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from service_helpers import (  # noqa: F401 (fixtures: db_path, fakes)
    FakeDetector,
    analyze_bytes,
    db_path,
    explain_stored,
    fake_backend,
    fakes,
    load_analysis,
    load_explanations,
    wav_bytes,
)

from core import store
from core.audio.decode import AudioError
from core.audio.protocol import ProtocolEntry
from core.corpus.batch import run_batch
from core.detectors.registry import MODELS
from core.engine import service
from core.engine.service import Engine

# ------------------------------------------------------------------------ verdicts


def test_repeat_is_served_from_the_store_and_identical(db_path, fakes):
    data = wav_bytes(1, seconds=7.0)  # several windows
    progress = []
    first = analyze_bytes(data,
        "clip.wav",
        db=db_path,
        detectors=fakes,
        progress=lambda f, m: progress.append(f),
    )
    second = analyze_bytes(data, "again.wav", db=db_path, detectors=fakes)
    assert [d.calls for d in fakes.values()] == [1, 1]
    assert first.cached == {"fake-a": False, "fake-b": False}
    assert second.cached == {"fake-a": True, "fake-b": True}
    assert first.verdicts == second.verdicts
    assert len(first.verdicts["fake-a"].windows) > 1
    assert (
        second.filenames == ("again.wav", "clip.wav") and second.filename == "again.wav"
    )
    assert progress[0] == 0.0 and progress[-1] == 1.0
    loaded = load_analysis(first.sha256, db=db_path)
    assert loaded.verdicts == first.verdicts and loaded.duration == first.duration
    assert loaded.orig_sample_rate == 16_000 and loaded.orig_channels == 1
    assert [d.calls for d in fakes.values()] == [1, 1]
    assert load_analysis("0" * 64, db=db_path) is None
    assert load_analysis("not a hash", db=db_path) is None


def test_new_weights_or_scoring_params_miss(db_path, fakes):
    data = wav_bytes(2)
    analyze_bytes(data, "x.wav", db=db_path, detectors=fakes, models=["fake-a"])
    retrained = {"fake-a": FakeDetector("fake-a", weights="c" * 64)}
    a = analyze_bytes(data, "x.wav", db=db_path, detectors=retrained)
    assert a.cached == {"fake-a": False} and retrained["fake-a"].calls == 1
    new_hop = {"fake-a": FakeDetector("fake-a", weights="c" * 64, hop=1000)}
    a = analyze_bytes(data, "x.wav", db=db_path, detectors=new_hop)
    assert a.cached == {"fake-a": False} and new_hop["fake-a"].calls == 1
    assert len(store.get_analysis(a.sha256, db=db_path)["predictions"]) == 3


def test_no_store_reads_and_writes_nothing(db_path, fakes):
    a = analyze_bytes(wav_bytes(3), "x.wav", db=db_path, detectors=fakes, use_store=False
    )
    assert not any(a.cached.values()) and not db_path.exists()


def test_bad_audio_raises_one_line_audio_error(db_path, fakes):
    with pytest.raises(AudioError) as err:
        analyze_bytes(b"this is not audio", "x.wav", db=db_path, detectors=fakes
        )
    assert "\n" not in str(err.value)


def test_delete_removes_the_analysis(db_path, fakes):
    a = analyze_bytes(wav_bytes(4), "x.wav", db=db_path, detectors=fakes)
    assert store.delete_analysis(a.sha256, db=db_path)
    assert load_analysis(a.sha256, db=db_path) is None
    assert not (db_path.parent / "audio" / a.sha256).exists()


# -------------------------------------------------------------------- explanations


def test_explain_stored_computes_once_and_round_trips(db_path, fakes):
    backend = fake_backend()
    a = analyze_bytes(wav_bytes(5, seconds=8.0), "x.wav", db=db_path, detectors=fakes
    )
    e1, cached1, s1 = explain_stored(a.sha256, "fake-a", "shap", db=db_path, detectors=fakes, backend=backend
    )
    e2, cached2, s2 = explain_stored(a.sha256, "fake-a", "shap", window=a.verdicts["fake-a"].max_window,
        db=db_path, detectors=fakes, backend=backend,
    )  # fmt: skip
    assert (cached1, cached2) == (False, True) and len(backend.calls) == 1
    # window=None was resolved to the verdict's most suspicious window
    assert backend.calls[0][2] == a.verdicts["fake-a"].max_window
    for name in (
        "feature_bounds",
        "values",
        "dense",
        "deletion_curve",
        "deletion_random",
    ):
        x, y = getattr(e1, name), getattr(e2, name)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    assert e1.quality == e2.quality == {"r2": 0.8, "deletion_auc": 0.3, "missing": None}
    assert e1.dense.dtype == np.float32 and e1.dense.shape == (96_000,)
    assert fakes["fake-a"].calls == 1  # the verdict came from the store

    _, cached, _ = explain_stored(a.sha256,
        "fake-a",
        "shap",
        segments=12,  # not the default (8): another explanation
        db=db_path,
        detectors=fakes,
        backend=backend,
    )
    assert not cached and len(backend.calls) == 2
    _, cached, _ = explain_stored(a.sha256, "fake-b", "shap", db=db_path, detectors=fakes, backend=backend
    )
    assert not cached and len(backend.calls) == 3
    stored = load_analysis(a.sha256, db=db_path).explanations
    assert sorted((e["model"], e["params"]["segments"]) for e in stored) == [
        ("fake-a", 8), ("fake-a", 12), ("fake-b", 8)
    ]  # fmt: skip
    assert len(load_explanations(a.sha256, model="fake-a", db=db_path)) == 2

    with pytest.raises(ValueError, match="unknown method"):
        explain_stored(a.sha256, "fake-a", "nope", db=db_path, detectors=fakes, backend=backend
        )
    with pytest.raises(store.NotStoredError):
        explain_stored("f" * 64, "fake-a", "shap", db=db_path, detectors=fakes, backend=backend
        )


def test_explain_stored_decodes_stored_bytes_on_a_miss(db_path, fakes):
    """No stored verdict: the stored original is decoded and scored first."""
    backend = fake_backend()
    data = wav_bytes(6, rate=44_100)
    a = analyze_bytes(data, "x.wav", db=db_path, detectors={"fake-a": fakes["fake-a"]}
    )
    e, cached, _ = explain_stored(a.sha256, "fake-b", "lime", db=db_path, detectors=fakes, backend=backend
    )
    assert not cached and fakes["fake-b"].calls == 1 and e.model == "fake-b"


# -------------------------------------------------------------------- concurrency


def _worker(db, files, log, barrier, results):
    """One process: analyse and explain every file (fresh module state: spawn)."""
    try:
        dets = {
            k: FakeDetector(k, weights=w, log=log)
            for k, w in [("fake-a", "a" * 64), ("fake-b", "b" * 64)]
        }
        backend = fake_backend(log=log)
        barrier.wait(timeout=60)
        out = []
        for f in files:
            a = analyze_bytes(Path(f).read_bytes(), Path(f).name, db=db, detectors=dets
            )
            e, cached, _ = explain_stored(a.sha256, "fake-a", "shap", db=db, detectors=dets, backend=backend
            )
            out.append(
                (
                    a.sha256,
                    a.cached,
                    cached,
                    a.verdicts["fake-a"].p_spoof,
                    float(e.values.sum()),
                )
            )
        results.put(("ok", out))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def test_two_processes_lose_nothing_and_compute_each_result_once(tmp_path):
    files = []
    for i in range(20):
        p = tmp_path / f"clip{i:02d}.wav"
        p.write_bytes(wav_bytes(100 + i, seconds=0.3))
        files.append(str(p))
    db, log = str(tmp_path / "shared.db"), str(tmp_path / "calls.log")
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(db, files, log, barrier, results))
        for _ in range(2)  # same files, same order: they collide on every key
    ]
    for p in procs:
        p.start()
    outs = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [o for status, o in outs if status == "error"]
    assert not errors, errors[0]
    assert "database is locked" not in "".join(map(str, outs))

    lines = Path(log).read_text().splitlines()
    scores = [ln for ln in lines if ln.startswith("score")]
    explains = [ln for ln in lines if ln.startswith("explain")]
    assert len(scores) == len(set(scores)) == 40  # 20 files x 2 models, once each
    assert len(explains) == 20
    by_sha = {}
    for _, out in outs:
        for sha, _, _, p, v in out:
            by_sha.setdefault(sha, set()).add((p, v))
    assert len(by_sha) == 20 and all(
        len(s) == 1 for s in by_sha.values()
    )  # same answers
    # every result was computed by one process and served from the store to the other
    flags = [c for _, out in outs for _, vc, _, _, _ in out for c in vc.values()]
    assert sorted(flags) == [False] * 40 + [True] * 40
    assert (
        sorted(ec for _, out in outs for _, _, ec, _, _ in out)
        == [False] * 20 + [True] * 20
    )
    with sqlite3.connect(db) as conn:
        count = lambda t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[
            0
        ]  # noqa: E731
        assert (count("audio"), count("predictions"), count("explanations")) == (
            20,
            40,
            20,
        )
        assert count("filenames") == 20 and count("claims") == 0
    assert sorted(os.listdir(tmp_path / "audio")) == sorted(by_sha)


# ------------------------------------------------------- batch and pages share keys


def test_batch_explanations_are_found_by_the_page_lookup(tmp_path, monkeypatch):
    """Batch writes with the keys the Analyze page reads, scoring each file once."""
    fake = FakeDetector("tssd1d", weights=MODELS["tssd1d"].sha256)
    backend = fake_backend()
    monkeypatch.setitem(service._DETECTORS, "tssd1d", fake)
    monkeypatch.setattr(service, "EXPLAIN_BACKEND", backend)
    audio_dir = tmp_path / "flac"
    audio_dir.mkdir()
    sf.write(audio_dir / "F1.flac", np.sin(np.arange(16_000 * 8) / 9.0).astype(np.float32) * 0.3,
             16_000)  # several windows: max_window need not be 0
    entries = [ProtocolEntry(speaker="S", file_id="F1", system="-", key="bonafide", line=1)]
    db = tmp_path / "batch.db"
    report = run_batch(entries, audio_dir, name="b", models=["tssd1d"],
                       methods=["shap", "lime"], db=db, progress=False)
    assert report.computed == 1 and not report.failed
    assert fake.calls == 1  # one verdict, not one per method
    eng = Engine(db)
    sha = eng.batch_files("b")[0]["sha256"]
    verdict = eng.analysis(sha).verdicts["tssd1d"]
    # each explanation was of the verdict's most suspicious window, never window=None
    assert [c[2] for c in backend.calls] == [verdict.max_window] * 2
    for method in ("shap", "lime"):
        found = eng.find_explanation(sha, "tssd1d", method)  # the page's lookup
        assert found is not None and found.window == verdict.max_window
        r = eng.explain(sha, "tssd1d", method)  # the page's compute button
        assert r.cached
    assert len(backend.calls) == 2 and fake.calls == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM explanations").fetchone()[0] == 2
    # a rerun finds everything stored
    again = run_batch(entries, audio_dir, name="b", models=["tssd1d"],
                      methods=["shap", "lime"], db=db, progress=False)
    assert again.skipped == 1 and again.computed == 0 and fake.calls == 1
