"""What the pages say, read as an analyst reads it: per-model cards as leads when the
combined verdict calls nothing, which models it fused and which it left out, warnings in
units and plain words, one note for short clips, no stale offer above a result."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import soundfile as sf
from app_helpers import app_env, assert_clean, cards, new_app, texts, wav_bytes  # noqa: F401
from test_verdict_page import calibrated_env  # noqa: F401

from core.detectors.registry import MODELS
from core.engine.service import Engine
from core.export.colours import SPOOF_RED
from core.judgement.assessment import calibration_path
from core.judgement.calibration_file import fit_calibration_file


def card_html(at) -> list[str]:
    return [m.value for m in at.markdown if "verdict-card" in m.value]


def combined_text(at) -> str:
    [block] = [m.value for m in at.markdown if "combined-verdict" in m.value]
    return re.sub(r"<[^>]+>", " ", block)


def test_too_short_makes_the_model_cards_leads_not_verdicts(calibrated_env):
    short = Engine(calibrated_env["db"]).analyze(wav_bytes(0.5), "short.wav")
    assert short.combined.band == "too_short"
    at = new_app(sha=short.sha256)
    at.run()
    assert_clean(at)
    shown = cards(at)
    assert len(shown) == len(short.verdicts) >= 2
    for html, text in zip(card_html(at), shown):
        assert "verdict-card lead" in html and SPOOF_RED not in html  # muted, not red
        assert "leans" in text and "SPOOF" not in text and "BONA FIDE" not in text
        assert "in the combined verdict" in text
    assert "leads, not verdicts" in texts(at)


@pytest.fixture
def one_model_calibrated(app_env, official_weights_dir):
    """a calibration that covers aasist-official only"""
    rng = np.random.default_rng(1)
    y = np.array([1] * 30 + [0] * 30)
    scores = {"aasist-official": np.clip(np.where(y == 1, 0.8, 0.2)
                                         + rng.normal(0, 0.1, y.size), 0.01, 0.99)}  # fmt: skip
    cal = fit_calibration_file(scores, y, weights_sha256={"aasist-official":
                               MODELS["aasist-official"].sha256},
                               fitted_on={"n_bonafide": 30, "n_spoof": 30}, max_error=0.1)  # fmt: skip
    cal.save(calibration_path(official_weights_dir))
    return app_env


def test_the_card_names_fused_and_left_out_models(one_model_calibrated):
    a = Engine(one_model_calibrated["db"]).analyze(wav_bytes(5.0, seed=3), "long.wav")
    assert a.combined.models == ("aasist-official",)
    at = new_app(sha=a.sha256)
    at.run()
    assert_clean(at)
    card = combined_text(at)
    left = MODELS["aasist-l-official"].display_name
    assert f"from {MODELS['aasist-official'].display_name}" in card
    assert f"{left}: not in the combined verdict: run python -m core calibrate" in card
    by_model = {c.split(" P(spoof)")[0]: c for c in cards(at)}
    [aasist_l] = [c for name, c in by_model.items() if left in name]
    assert "not in the combined verdict: run python -m core calibrate" in aasist_l
    said = card + " ".join(w.value for w in at.warning)  # the verdict's own words
    assert "log-odds" not in said and "widened" not in said


def wav_8khz(seconds: float = 3.0) -> bytes:
    """a tone plus noise recorded at 8 kHz: narrow band, low original rate"""
    t = np.arange(int(seconds * 8_000)) / 8_000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + np.random.default_rng(5).normal(0, 0.05, t.size)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), 8_000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_warnings_give_units_and_short_clips_one_note(app_env):
    a = Engine(app_env["db"]).analyze(wav_8khz(), "phone.wav")
    assert {"narrow_band", "low_sample_rate"} <= set(a.quality.codes)
    assert "few_windows" not in a.quality.codes
    at = new_app(sha=a.sha256)
    at.run()
    assert_clean(at)
    [block] = [w.value for w in at.warning if "Input warnings" in w.value]
    assert "original rate 8 kHz (below 16 kHz)" in block
    assert re.search(r"bandwidth [0-9.]+ kHz \(below 4\.5 kHz\)", block)
    assert "measured" not in block and "threshold" not in block  # no bare numbers
    notes = [c.value for c in at.caption if c.value.startswith("Note:")]
    assert notes == ["Note: Shorter than one window of aasist-l-official and aasist-official: "
                     "each heard the clip repeated."]  # fmt: skip


def test_a_computed_explanation_leaves_no_stale_offer_above_it(app_env):
    a = Engine(app_env["db"]).analyze(wav_bytes(seed=11), "fresh.wav")
    model = sorted(a.verdicts)[0]
    at = new_app(sha=a.sha256, model=model, method="gradcam")
    at.run()
    assert "has not been computed yet" in texts(at)
    at.button(key="analyze_compute").click().run()
    assert_clean(at)
    assert any("computed in" in s.value for s in at.success)
    assert "has not been computed yet" not in texts(at)
    assert not [b for b in at.button if b.key == "analyze_compute"]


def test_the_compare_grid_leaves_no_stale_count_or_status_boxes(app_env):
    a = Engine(app_env["db"]).analyze(wav_bytes(3.0, seed=12), "grid.wav")
    at = new_app(sha=a.sha256)
    at.run()
    at.switch_page("pages/compare.py")
    at.query_params["sha"] = a.sha256
    at.run()
    n = 2 * len(a.verdicts)
    at.multiselect(key="compare_methods").set_value(["gradcam", "shap"]).run()
    assert f"0 of {n} explanations are stored" in texts(at)
    at.button(key="compare_compute").click().run()
    assert_clean(at)
    assert app_env["explain"].calls == n
    shown = texts(at)
    assert "explanations are stored" not in shown and "not computed" not in shown
    assert not at.success and not [b for b in at.button if b.key == "compare_compute"]
    assert not at.get("expandable")  # no st.status box left behind
    assert len(at.get("vega_lite_chart")) >= n  # the grid, drawn


def test_models_page_says_how_to_install_each_missing_model(app_env, tmp_path, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("DEEPFAKE_WEIGHTS_DIR", str(tmp_path / "empty"))
    st.cache_data.clear()
    at = new_app()
    at.run()
    at.switch_page("pages/models.py").run()
    assert_clean(at)
    said = [m.value for m in at.markdown if "Install it with" in m.value]
    assert len(said) == len(MODELS)  # one per card, none of them installed
    fetch = "`python -m core weights fetch aasist-official [--from DIR]`"
    assert sum(fetch in m and "Not installed." in m for m in said) == 2  # AASIST, AASIST-L
    # beside the model's name: in the same column as its heading, right under it
    heads = [s.value for s in at.subheader]
    assert MODELS["aasist-official"].display_name in heads


def test_a_badge_never_breaks_inside():
    from ui.markup import badge

    html = badge("Res-TSSDNet 1D (waveform): BONA FIDE 0.20", style="background:#000")
    assert "white-space:nowrap" in html and "display:inline-block" in html
    assert "class='badge'" in html
