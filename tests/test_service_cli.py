"""The engine through the CLI (cached marks, a bad file in the middle, a real model end to
end) and a store written before the engine reshape, opened by the new code."""

from __future__ import annotations

import dataclasses
import json
import shutil

from service_helpers import CLIP, ROOT, FakeDetector, fake_backend, wav_bytes

from core import store
from core.detectors.registry import MODELS
from core.engine import keys, service
from core.engine.service import Engine
from core.explain import EXPLAINERS

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
            # (written when the default was 16 segments, by method version 1)
            e = eng.find_explanation(sha, model, method, segments=16)
            written_by = a.verdicts[model].weights_sha256
            if EXPLAINERS[method].version != "1" or written_by != MODELS[model].sha256:
                assert e is None  # SHAP and LIME changed since, or new weights: stale
            if EXPLAINERS[method].version != "1":
                continue
            # the key of the weights that wrote it finds the old row
            spec = dataclasses.replace(MODELS[model], sha256=written_by)
            ek = keys.explanation_key(sha, spec, method, window=window, segments=16,
                                      backend=eng.backend)  # fmt: skip
            record = store.get_explanation(ek, db=eng.db_path)
            assert record is not None and record[1]["values"].tolist() == values
        # the verdict key of the weights that wrote it still finds the row (the shipped
        # tssd1d has new weights since, so its current key rightly finds nothing)
        v = a.verdicts["tssd1d"]
        spec = dataclasses.replace(MODELS["tssd1d"], sha256=v.weights_sha256)
        assert store.get_prediction(keys.verdict_key(sha, spec), db=eng.db_path) is not None
        if v.weights_sha256 != MODELS["tssd1d"].sha256:
            assert eng.stored_verdict(sha, "tssd1d") is None
