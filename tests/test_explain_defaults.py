"""What an explanation opens with, and how long the page says it will take: SHAP on the
model that agrees best with the combined verdict; estimates from costs measured here
(deletion curves included), never from a fixed sentence."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from explanations import make_analysis, make_expl, make_verdict

from core.detectors.registry import MODELS
from core.engine.explaining import agreeing_model, default_view, duration
from core.engine.service import Engine
from core.explain import EXPLAINERS
from core.explain.costs import expected_evals
from core.explain.reference import REFERENCE_WINDOWS


def analysis(raw: dict, calibrated: dict | None = None, fused: float | None = None):
    a = make_analysis({m: make_verdict(p, model=m) for m, p in raw.items()})
    combined = SimpleNamespace(p_spoof=fused, calibrated=calibrated or {})
    return dataclasses.replace(a, combined=combined)


def test_default_is_shap_on_the_model_closest_to_the_combined_verdict():
    # raw scores would pick aasist; calibrated, tssd2d sits nearest the fused 0.80 on
    # the same side, tssd1d is nearer in value but on the other side of 0.5
    a = analysis({"aasist": 0.99, "tssd1d": 0.6, "tssd2d": 0.7},
                 calibrated={"aasist": 0.97, "tssd1d": 0.45, "tssd2d": 0.70}, fused=0.55)  # fmt: skip
    assert agreeing_model(a) == "tssd2d"
    assert default_view(a, EXPLAINERS) == ("tssd2d", "shap")
    # a model the calibration left out is not a candidate while others are
    a = analysis({"aasist": 0.9, "tssd1d": 0.2}, calibrated={"tssd1d": 0.3}, fused=0.3)
    assert agreeing_model(a) == "tssd1d"


def test_default_without_calibration_uses_the_raw_scores():
    # mean raw P(spoof) 0.483: bona fide; tssd2d is the nearest on that side
    a = analysis({"aasist": 0.95, "tssd1d": 0.2, "tssd2d": 0.3})
    assert agreeing_model(a) == "tssd2d"
    assert agreeing_model(make_analysis({})) is None
    assert default_view(make_analysis({}), {"gradcam": 1})[1] == "gradcam"  # no SHAP


def test_expected_evals_count_the_references_and_the_deletion_curves():
    spec = MODELS["tssd1d"]  # exact SHAP at 8 segments: 255 new coalitions
    shap = expected_evals(EXPLAINERS["shap"], spec, references=4)
    assert shap == {"attribution": 255 * 4, "deletion": 0, "total": 1020}
    cam = expected_evals(EXPLAINERS["gradcam"], spec, references=4)
    assert cam["attribution"] == 3 and cam["deletion"] == (4 * 7 + 1) * 4
    sampled = expected_evals(EXPLAINERS["shap"], MODELS["tssd2d"], references=1)
    assert sampled["attribution"] == 96 and sampled["deletion"] == 29


def test_estimate_from_the_verdict_then_from_measured_explanations():
    eng = Engine(use_store=False)
    # two windows scored in 0.2 s: 0.1 s each
    verdict = dataclasses.replace(make_verdict(0.8, model="tssd1d"), seconds=0.2)
    est = eng.explanation_estimate("tssd1d", "gradcam")
    assert est.seconds is None and "not been measured" in est.sentence()
    est = eng.explanation_estimate("tssd1d", "gradcam", verdict=verdict)
    evals = 3 + (4 * 7 + 1) * REFERENCE_WINDOWS
    assert est.evals == evals and est.seconds == pytest.approx(evals * 0.1)
    assert "when this file was scored" in est.sentence()
    # a computed explanation of the model: its seconds per evaluation, then its own kind
    e = dataclasses.replace(
        make_expl(np.ones(8), model="tssd1d", method="shap"), seconds=30.0,
        reference="speech",
        quality={"seconds_attribution": 20.0, "n_evals": 1000, "seconds_deletion": 0.0,
                 "n_evals_deletion": 0},
    )  # fmt: skip
    eng.record_cost(e)
    est = eng.explanation_estimate("tssd1d", "gradcam", verdict=verdict)
    assert (
        est.seconds == pytest.approx(evals * 0.02)
        and "explanations of this model" in est.basis
    )
    assert eng.explanation_estimate("tssd1d", "shap").seconds == pytest.approx(30.0)
    eng.record_cost(dataclasses.replace(e, seconds=10.0))  # running average
    assert eng.explanation_estimate("tssd1d", "shap").seconds == pytest.approx(24.0)
    eng.record_cost(dataclasses.replace(e, seconds=99.0), stored=True)  # older: ignored
    assert eng.explanation_estimate("tssd1d", "shap").seconds == pytest.approx(24.0)
    assert eng.explanation_estimate("tssd1d", "shap", reference="blank").seconds == (
        pytest.approx(255 * 0.02))  # fmt: skip


def test_durations_read_plainly():
    assert duration(0.4) == "a second"
    assert duration(17.4) == "17 s"
    assert duration(150) == "2 min"
