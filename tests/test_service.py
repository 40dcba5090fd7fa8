"""core.service.Engine: verdicts and explanations through the store, once each; batch
and dashboard share keys; a store from before the reshape still opens; CLI."""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing as mp
import os
import sqlite3
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import shutil

import core.explain
from core import service, store
from core.batch import run_batch
from core.data import ProtocolEntry
from core.service import Engine
from core.audio import AudioError
from core.detect import verdict_from_windows
from core.explain.base import Explanation
from core.registry import MODELS

ROOT = Path(__file__).resolve().parent.parent
CLIP = "flac/MS_D_1023594.flac"


def wav_bytes(i: int, seconds: float = 0.5, rate: int = 16_000) -> bytes:
    """A distinct little clip per i (tone plus seeded noise)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(i)
    x = 0.3 * np.sin(2 * np.pi * (200 + 37 * i) * t) + 0.01 * rng.standard_normal(
        t.size
    )
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class FakeDetector:
    """Detector-shaped: a real spec under a fake key and weights hash; counts calls,
    optionally into a file (O_APPEND lines) so several processes can be counted."""

    def __init__(
        self, key="fake-a", weights="a" * 64, arch_from="tssd1d", log=None, hop=0
    ):
        self.spec = dataclasses.replace(
            MODELS[arch_from], key=key, sha256=weights, hop=hop
        )
        self.calls = 0
        self.log = log

    def windows(self, samples):
        from core.audio import frame_windows

        return frame_windows(samples, self.spec.input_length, self.spec.window_hop)

    def score(self, audio):
        self.calls += 1
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"score {self.spec.key} {audio.sha256}\n")
        samples = audio.samples
        _, starts = self.windows(samples)
        p = np.array(
            [0.2 + 0.6 * abs(float(samples[s : s + 1000].mean())) for s in starts]
        )
        return verdict_from_windows(self.spec, p, starts, len(samples), seconds=0.01)


def fake_backend(log=None):
    """explain / explain_params / EXPLAINERS with the core.explain call shape."""
    calls = []

    explain_params = core.explain.explain_params  # the real one: real keys

    def explain(detector, samples, *, method, window=None, target=None, segments=16,
                n_samples=None, seed=0, progress=None):  # fmt: skip
        calls.append((detector.spec.key, method, window, segments))
        if log:
            with open(log, "a") as f:
                f.write(f"explain {detector.spec.key} {len(samples)} {method}\n")
        rng = np.random.default_rng(seed)
        bounds = np.stack([np.arange(segments), np.arange(1, segments + 1)], 1) * 0.1
        return Explanation(
            model=detector.spec.key,
            weights_sha256=detector.spec.sha256,
            method=method,
            method_version=str(core.explain.EXPLAINERS[method].version),
            params=explain_params(
                method, window=window, target=target, segments=segments, seed=seed
            ),
            target=0,
            target_label="spoof",
            window=window if window is not None else 0,
            window_start=0.0,
            window_end=0.5,
            p_target=0.75,
            feature_kind="time",
            feature_bounds=bounds.astype(np.float64),
            values=rng.standard_normal(segments),
            dense=rng.standard_normal(detector.spec.input_length).astype(np.float32),
            deletion_curve=np.linspace(1, 0, segments + 1),
            deletion_random=np.linspace(1, 0.5, segments + 1),
            quality={"r2": 0.8, "deletion_auc": 0.3, "missing": None},
            seconds=0.02,
        )

    return SimpleNamespace(
        explain=explain,
        explain_params=explain_params,
        EXPLAINERS={k: core.explain.EXPLAINERS[k] for k in ("shap", "lime")},
        calls=calls,
    )


# the engine, spelled as each test needs it
def analyze_bytes(data, name, *, db, detectors=None, models=None, progress=None, use_store=True):
    eng = Engine(db, detectors=detectors, use_store=use_store)
    return eng.analyze(data, name, models=models, progress=progress)


def explain_stored(sha, model, method, *, db, detectors=None, backend=None, **kw):
    return Engine(db, detectors=detectors, backend=backend).explain(sha, model, method, **kw)


def load_analysis(sha, *, db):
    return Engine(db).analysis(sha)


def load_explanations(sha, *, db, **kw):
    return Engine(db).explanations(sha, **kw)



@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "cache" / "analyses.db"


@pytest.fixture
def fakes():
    return {
        "fake-a": FakeDetector("fake-a"),
        "fake-b": FakeDetector("fake-b", weights="b" * 64),
    }


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
        segments=8,
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
        ("fake-a", 8), ("fake-a", 16), ("fake-b", 16)
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


# ---------------------------------------------------------------------------- CLI


def test_cli_analyze_marks_cached_and_continues_past_a_bad_file(
    tmp_path, capsys, monkeypatch
):
    from core.cli import main

    fake = FakeDetector(
        "aasist-official",
        weights=MODELS["aasist-official"].sha256,
        arch_from="aasist-official",
    )
    monkeypatch.setitem(service._DETECTORS, "aasist-official", fake)
    monkeypatch.setattr(service, "EXPLAIN_BACKEND", fake_backend())
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    good.write_bytes(wav_bytes(7))
    bad.write_bytes(b"garbage")
    db = tmp_path / "cli.db"
    argv = ["analyze", str(bad), str(good), "--model", "aasist-official", "--explain", "shap",
            "--segments", "4", "--json", "--db", str(db)]  # fmt: skip
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and "bad.wav" in cap.err
    first = json.loads(cap.out)
    assert first[0]["file"] == str(bad) and "error" in first[0]
    r = first[1]
    m = r["models"][0]
    assert m["model"] == "aasist-official" and m["cached"] is False
    assert set(m) >= {
        "weights_sha256",
        "p_spoof",
        "label",
        "max_p_spoof",
        "windows",
        "seconds",
    }
    ex = r["explanations"][0]
    assert ex["cached"] is False and ex["method"] == "shap" and len(ex["values"]) == 4
    assert set(ex) >= {"target", "target_label", "window", "window_start", "window_end",
                       "feature_bounds", "quality", "seconds"}  # fmt: skip

    assert main(["analyze", str(good)] + argv[3:]) == 0
    again = json.loads(capsys.readouterr().out)[0]
    assert (
        again["models"][0]["cached"] is True
        and again["explanations"][0]["cached"] is True
    )
    assert again["models"][0]["p_spoof"] == m["p_spoof"] and fake.calls == 1

    assert (
        main(["analyze", str(good), "--model", "aasist-official", "--db", str(db)]) == 0
    )
    assert "cached" in capsys.readouterr().out
    monkeypatch.setenv(store.DB_ENV, str(db))
    assert main(["history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 1


def test_cli_analyze_with_a_real_model_end_to_end(
    official_weights_dir, minispoof_dir, tmp_path, capsys
):
    from core.cli import main

    clip = minispoof_dir / CLIP
    argv = [
        "analyze",
        str(clip),
        "--model",
        "aasist-official",
        "--json",
        "--db",
        str(tmp_path / "e2e.db"),
    ]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)[0]["models"][0]
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)[0]["models"][0]
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["p_spoof"] == second["p_spoof"] and 0 <= first["p_spoof"] <= 1
    assert first["weights_sha256"] == MODELS["aasist-official"].sha256


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


# ---------------------------------------------------- a store from before the reshape

FIXTURE = ROOT / "tests" / "fixtures" / "store_v2"


def test_a_store_written_before_the_reshape_shows_the_same_history(tmp_path):
    """tests/fixtures/store_v2 was written by the code of 67d0e97 (make_fixture.py);
    expected.json holds what that code read back from it."""
    work = tmp_path / "old"
    shutil.copytree(FIXTURE, work, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    expected = json.loads((work / "expected.json").read_text())
    eng = Engine(work / "analyses.db")
    page = eng.history()
    assert [(i["sha256"], i["filename"]) for i in page.items] == [
        (h["sha256"], h["filename"]) for h in expected["history"]
    ]
    for sha in expected["files"]:
        a = eng.analysis(sha)
        got = {k: [v.p_spoof, v.label, v.max_window] for k, v in a.verdicts.items()}
        assert got == expected[sha]["verdicts"]
        old = expected[sha]["explanations"]
        new = [[e.model, e.method, e.window, e.values.tolist()] for e in eng.explanations(sha)]
        assert new == old
        # keys still hash as before: the page's lookups find the old rows
        for model, method, window, values in old:
            e = eng.find_explanation(sha, model, method)
            assert e is not None and e.values.tolist() == values
        assert eng.stored_verdict(sha, "tssd1d") is not None
