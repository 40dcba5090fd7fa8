"""Long files in the dashboard: at most N windows per model, evenly spread, with the
coverage stored, shown and warned about; a verdict of every window is preferred."""

from __future__ import annotations

import numpy as np
import pytest
from test_combined_engine import wav
from test_extension import clip, toy_spec  # noqa: F401 (fixture)

from core import store
from core.detectors.detect import Detector, select_windows
from core.engine import keys
from core.engine.service import Engine


def test_select_windows_spreads_the_cap_from_first_to_last():
    assert select_windows(10, 4) == [0, 3, 6, 9]
    assert select_windows(5, None) == select_windows(5, 5) == select_windows(5, 9) == [0, 1, 2, 3, 4]
    assert select_windows(1000, 7)[0] == 0 and select_windows(1000, 7)[-1] == 999
    assert len(select_windows(1000, 7)) == 7
    with pytest.raises(ValueError, match="at least 2"):
        select_windows(10, 1)


def test_a_capped_verdict_scores_the_chosen_windows_of_the_full_one(toy_spec):
    det = Detector.load("toy-model", device="cpu")
    x = clip(3.0, seed=5)  # 0.1-s windows, 0.05-s hop: 59 windows
    full = det.score(x)
    capped = det.score(x, max_windows=6)
    assert full.total_windows == 59 and full.coverage == 1.0
    chosen = select_windows(59, 6)
    assert [w.index for w in capped.windows] == chosen and capped.total_windows == 59
    assert capped.coverage == pytest.approx(6 / 59)
    for w in capped.windows:
        ref = full.window_at(w.index)
        assert (w.start, w.end) == (ref.start, ref.end)
        assert w.p_spoof == pytest.approx(ref.p_spoof, abs=1e-6)
    best = max(capped.windows, key=lambda w: w.p_spoof)
    assert capped.max_window == best.index and capped.window_at(capped.max_window) is best
    assert capped.p_spoof == pytest.approx(np.mean([w.p_spoof for w in capped.windows]))


def test_engine_stores_the_cap_warns_and_prefers_a_full_verdict(toy_spec, tmp_path):
    det = Detector.load("toy-model", device="cpu")
    eng = Engine(tmp_path / "w.db", detectors={"toy-model": det})
    data = wav(clip(3.0, seed=6))
    a = eng.analyze(data, "long.wav", max_windows=6)
    v = a.verdicts["toy-model"]
    assert (len(v.windows), v.total_windows) == (6, 59)
    codes = {w.code: w for w in a.quality.warnings}
    assert codes["partial_coverage"].value == pytest.approx(6 / 59, abs=1e-4)
    assert "6 of the file's 59 windows" in codes["partial_coverage"].message
    # stored under its own key (the cap and the file's window count), shown from the store
    spec = toy_spec
    capped_key = keys.verdict_key(a.sha256, spec, max_windows=6, n_windows=59)
    assert store.get_prediction(capped_key, db=eng.db_path) is not None
    assert store.get_prediction(keys.verdict_key(a.sha256, spec), db=eng.db_path) is None
    shown = eng.analysis(a.sha256).verdicts["toy-model"]
    assert [w.index for w in shown.windows] == [w.index for w in v.windows]
    assert shown.total_windows == 59
    # the CLI scores every window; after that, the dashboard's capped request gets it
    full = eng.analyze(data, "long.wav")
    assert not full.cached["toy-model"] and full.verdicts["toy-model"].coverage == 1.0
    again = eng.analyze(data, "long.wav", max_windows=6)
    assert again.cached["toy-model"] and again.verdicts["toy-model"].total_windows == 59
    assert len(again.verdicts["toy-model"].windows) == 59
    assert "partial_coverage" not in {w.code for w in again.quality.warnings}
    # a file the cap does not reach keeps the ordinary key
    short = eng.analyze(wav(clip(0.3, seed=7)), "short.wav", max_windows=6)
    assert store.get_prediction(keys.verdict_key(short.sha256, spec), db=eng.db_path)


def test_analyze_cli_takes_a_cap(toy_spec, tmp_path, capsys):
    import soundfile as sf

    from core.cli import main

    path = tmp_path / "long.wav"
    sf.write(path, clip(3.0, seed=8), 16_000)
    rc = main(["analyze", str(path), "--model", "toy-model", "--max-windows", "4", "--no-store"])
    out = capsys.readouterr().out
    assert rc == 0 and "scored 4 of 59 windows, evenly spread" in out
    assert "#58 " in out  # the last window is always among them
    with pytest.raises(SystemExit):
        main(["analyze", str(path), "--max-windows", "1"])
    assert "at least 2" in capsys.readouterr().err


def test_windows_without_an_index_take_their_position():
    """hand-made verdicts and rows stored before the cap: index = place in the verdict"""
    from core.detectors.detect import Verdict, WindowScore
    from core.engine.results import verdict_from_row

    v = Verdict("m", "w" * 64, 0.5, "spoof", 0.7, 1, [WindowScore(0.0, 4.0, 0.3), WindowScore(2.0, 6.0, 0.7)])
    assert [w.index for w in v.windows] == [0, 1] and v.window_at(1).p_spoof == 0.7
    old_row = {**v.to_json(), "windows": [{"start": 0.0, "end": 4.0, "p_spoof": 0.3},
                                           {"start": 2.0, "end": 6.0, "p_spoof": 0.7}]}  # fmt: skip
    back = verdict_from_row(old_row)
    assert [w.index for w in back.windows] == [0, 1] and back.coverage == 1.0
