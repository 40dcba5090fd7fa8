"""The combined verdict in the dashboard: it leads Analyze and Compare, History filters
by its band, and the Models page shows the calibration measured on held-out data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from app_helpers import app_env, assert_clean, new_app, texts, wav_bytes  # noqa: F401

from core.detectors.registry import MODELS
from core.engine.service import Engine
from core.judgement.assessment import calibration_metrics_path, calibration_path
from core.judgement.calibration import reliability
from core.judgement.calibration_file import fit_calibration_file


@pytest.fixture
def calibrated_env(app_env, official_weights_dir):
    """a calibration file for the two published models, fitted on synthetic scores"""
    keys = ["aasist-official", "aasist-l-official"]
    rng = np.random.default_rng(0)
    y = np.array([1] * 30 + [0] * 30)
    scores = {k: np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.2, y.size), 0.01, 0.99)
              for k in keys}  # fmt: skip
    cal = fit_calibration_file(scores, y, weights_sha256={k: MODELS[k].sha256 for k in keys},
                               fitted_on={"n_bonafide": 30, "n_spoof": 30}, max_error=0.1)  # fmt: skip
    cal.save(calibration_path(official_weights_dir))
    fused = cal.fusion.select(tuple(keys)).apply(scores)
    metrics = {
        "protocol": "synthetic", "n_bonafide": 30, "n_spoof": 30,
        "models": {k: {"eer": 0.2, "cllr": 0.6, "min_cllr": 0.5, "ece": 0.04,
                       "reliability": reliability(fused, y).to_json()} for k in keys},
        "combined": {"eer": 0.15, "cllr": 0.5, "min_cllr": 0.45, "ece": 0.03,
                     "reliability": reliability(fused, y).to_json(),
                     "uncertain_share": 0.4, "error_rate_outside": 0.05},
    }  # fmt: skip
    calibration_metrics_path(official_weights_dir).write_text(json.dumps(metrics))
    return app_env


def combined_text(at) -> str:
    found = [m.value for m in at.markdown if "combined-verdict" in m.value]
    assert found, "no combined verdict block on the page"
    return re.sub(r"<[^>]+>", " ", found[0])


def test_analyze_and_compare_lead_with_the_combined_verdict(calibrated_env):
    db = calibrated_env["db"]
    short = Engine(db).analyze(wav_bytes(0.3), "short.wav")
    at = new_app(sha=short.sha256)
    at.run()
    assert_clean(at)
    assert "TOO SHORT TO JUDGE" in combined_text(at)
    warned = " ".join(w.value for w in at.warning)
    assert "**Too short**" in warned and "duration 0.3 s (below 1 s)" in warned
    # the combined block comes before the per-model cards
    blocks = [m.value for m in at.markdown]
    first_card = next(i for i, b in enumerate(blocks) if "verdict-card" in b)
    assert next(i for i, b in enumerate(blocks) if "combined-verdict" in b) < first_card

    at.switch_page("pages/compare.py")
    at.query_params["sha"] = short.sha256
    at.run()
    assert_clean(at)
    assert "TOO SHORT TO JUDGE" in combined_text(at)


def test_history_filters_by_band(calibrated_env):
    db = calibrated_env["db"]
    eng = Engine(db)
    short = eng.analyze(wav_bytes(0.3, seed=1), "short.wav")
    long = eng.analyze(wav_bytes(5.0, seed=2), "long.wav")
    at = new_app()
    at.run()
    at.switch_page("pages/history.py").run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["file"]) == {"short.wav", "long.wav"}
    assert "too short to judge" in set(table["combined"])
    at.selectbox(key="history_band").select("too_short").run()
    assert_clean(at)
    assert list(at.dataframe[0].value["file"]) == ["short.wav"]
    band = eng.analysis(long.sha256).combined.band
    at.selectbox(key="history_band").select(band).run()
    assert list(at.dataframe[0].value["file"]) == ["long.wav"]
    assert short.combined.band == "too_short"


def test_models_page_shows_bands_metrics_and_reliability(calibrated_env):
    at = new_app()
    at.run()
    at.switch_page("pages/models.py").run()
    assert_clean(at)
    page = texts(at)
    assert "Calibration of the combined verdict" in page
    assert "40.0 % of files fall in the uncertain band" in page
    frames = [d.value for d in at.dataframe]
    metrics = next(f for f in frames if "Cllr" in f.columns)
    assert list(metrics["model"])[-1] == "combined" and list(metrics["ECE"])[-1] == 0.03
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert any("observed" in json.dumps(s) for s in specs)  # the reliability diagram


def test_a_user_added_model_gets_its_badge_and_verdicts(app_env, official_weights_dir, aasist_official_dir):
    from core.detectors.registry import MODELS, load_user_models
    from core.detectors.user_weights import add_weights

    try:
        add_weights("my-aasist-l", arch="aasist-l", file=aasist_official_dir / "AASIST-L.pth",
                    name="My AASIST-L", provenance="the published AASIST-L, re-added",
                    directory=official_weights_dir)  # fmt: skip
        a = Engine(app_env["db"]).analyze(wav_bytes(2.0, seed=4), "user.wav")
        assert "my-aasist-l" in a.verdicts
        at = new_app()
        at.run()
        at.switch_page("pages/models.py").run()
        assert_clean(at)
        assert any("user-added" in m.value for m in at.markdown)
        assert "My AASIST-L" in texts(at)
    finally:
        MODELS.pop("my-aasist-l", None)
        (official_weights_dir / "user_models.json").unlink(missing_ok=True)
        load_user_models(official_weights_dir)
