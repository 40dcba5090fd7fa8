"""Analyze page: jobs and their honesty: a cancelled explanation, SHAP's error bars and
instability note, the Grad-CAM caveat, and the long-file window cap with its coverage."""

from __future__ import annotations

import json

import app_helpers
import numpy as np
from app_helpers import (  # noqa: F401 (fixture: app_env)
    analyse,
    app_env,
    assert_clean,
    cards,
    new_app,
    texts,
    wav_bytes,
)

import core.engine.service
from core.engine.service import Engine


def test_a_cancelled_explanation_says_so_and_offers_to_compute_again(app_env):
    from ui.views.explanation import View, cancel_flag

    a = analyse(wav_bytes(seed=12), "cancelled.wav", app_env["db"])
    model = sorted(a.verdicts)[0]
    window = a.verdicts[model].max_window
    at = new_app(sha=a.sha256, model=model, method="lime")
    at.run()
    flag = cancel_flag(View(a.sha256, model, "lime", window, None))
    at.session_state[flag] = True  # what the Cancel button's callback sets
    at.run()
    assert_clean(at)
    assert any("was cancelled: nothing was stored" in w.value for w in at.warning)
    assert at.button(key="analyze_compute").proto.label.startswith("Compute")
    assert app_env["explain"].calls == 0 and flag not in at.session_state
    at.run()  # said once
    assert not any("was cancelled" in w.value for w in at.warning)


class UncertainExplain(app_helpers.FastExplain):
    """the fast stand-in, with SHAP's standard errors and an unstable top 3"""

    def explain(self, detector, samples, **kw):
        import dataclasses

        e = super().explain(detector, samples, **kw)
        if kw["method"] != "shap":
            return e
        se = np.full(len(e.values), 0.05)
        return dataclasses.replace(
            e, uncertainty=se, quality={**e.quality, "estimator": "kernel", "top3_stable": False}
        )


def test_shap_error_bars_instability_and_the_grad_cam_caveat_render(app_env, monkeypatch):
    from ui import engine

    monkeypatch.setattr(core.engine.service, "EXPLAIN_BACKEND", UncertainExplain())
    a = analyse(wav_bytes(seed=13), "uncertain.wav", app_env["db"])
    model = "tssd2d" if "tssd2d" in a.verdicts else sorted(a.verdicts)[0]
    at = new_app(sha=a.sha256, model=model, method="shap")
    at.run()
    at.button(key="analyze_compute").click().run()
    assert_clean(at)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    layered = [s for s in specs if "layer" in s]
    marks = [[l["mark"]["type"] if isinstance(l["mark"], dict) else l["mark"] for l in s["layer"]]
             for s in layered]  # fmt: skip
    assert ["bar", "rule"] in marks, marks  # bars with ± 2 SE rules
    assert "Rankings unstable" in texts(at)

    at = new_app(sha=a.sha256, model=model, method="gradcam")
    at.run()
    at.button(key="analyze_compute").click().run()
    assert_clean(at)
    caveat = engine.method_caveat("gradcam", model)
    if model == "tssd2d":
        assert caveat, "Grad-CAM on the CQT model has a measured caveat"
    if caveat:
        assert any(caveat in c.value for c in at.caption)


def test_a_long_upload_is_capped_and_the_page_says_how_much_it_covers(app_env, monkeypatch):
    """DEEPFAKE_MAX_WINDOWS=3: a 12-s file has 5 AASIST windows; 3 are scored"""
    monkeypatch.setenv("DEEPFAKE_MAX_WINDOWS", "3")
    at = new_app()
    at.run()
    at.file_uploader(key="analyze_upload").upload("long.wav", wav_bytes(12.0, seed=14), "audio/wav")
    at.run()
    assert_clean(at)
    capped = [c for c in cards(at) if "3 of 5 windows (60 % of the file)" in c]
    assert capped, cards(at)
    assert "partial\\_coverage" in texts(at) or "were scored, evenly spread" in texts(at)
    # the window picker offers the scored windows by their index in the file
    sha = at.query_params["sha"]
    sha = sha[0] if isinstance(sha, list) else sha
    a = Engine(app_env["db"]).analysis(sha)
    aasist = next(k for k, v in a.verdicts.items() if v.total_windows == 5)
    at = new_app(sha=sha, model=aasist, method="gradcam")
    at.run()
    assert_clean(at)
    picker = at.selectbox(key=f"analyze_window_{aasist}")
    assert [o.split(":")[0] for o in picker.options] == ["#0", "#2", "#4"]
