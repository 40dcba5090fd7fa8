"""Analyze page: the explanation's notes and its reference, the default view (SHAP on
the model closest to the combined verdict) and an estimate measured on this server."""

from __future__ import annotations

import dataclasses

import app_helpers
from app_helpers import (  # noqa: F401 (fixture: app_env)
    analyse,
    app_env,
    assert_clean,
    new_app,
    texts,
    wav_bytes,
)

import core.engine.service
from core.engine.explaining import agreeing_model

NOTE = (
    "The evidence sums towards bona fide although the model says spoof (a test note)."
)


class NotedExplain(app_helpers.FastExplain):
    """the fast stand-in, every explanation with a note and a reference"""

    def explain(self, detector, samples, **kw):
        e = super().explain(detector, samples, **kw)
        return dataclasses.replace(e, notes=[NOTE], reference="speech",
                                   reference_label="real speech (test)",
                                   reference_p_spoof=0.031)  # fmt: skip


def test_notes_and_reference_show_above_the_charts_and_the_default_is_shap(
    app_env, monkeypatch
):
    monkeypatch.setattr(core.engine.service, "EXPLAIN_BACKEND", NotedExplain())
    a = analyse(wav_bytes(seed=21), "noted.wav", app_env["db"])
    at = new_app(sha=a.sha256)  # no model or method asked for: the defaults
    at.run()
    assert_clean(at)
    assert at.selectbox(key="analyze_method").value == "shap"
    assert at.selectbox(key="analyze_model").value == agreeing_model(a)
    offer = " ".join(i.value for i in at.info)
    # the model scored this file here: the estimate rests on that measurement
    assert "on this server" in offer and "when this file was scored" in offer
    at.button(key="analyze_compute").click().run()
    assert_clean(at)
    assert [w.value for w in at.warning if w.value == NOTE] == [NOTE]
    assert "Removed segments take the reference: real speech (test), which the model " \
           "scores P(spoof) 0.03." in texts(at)  # fmt: skip
