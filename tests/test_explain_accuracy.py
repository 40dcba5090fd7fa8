"""How sure an explanation is: LIME's held-out fidelity, SHAP's stability flags, the
measured Grad-CAM caveat, and the per-model defaults."""

from __future__ import annotations

import numpy as np

from core.detectors.registry import MODELS
from core.explain import EXPLAINERS, lime, shap, shapley


def linear_game(w):
    return lambda keep: keep.astype(float) @ w


def test_lime_heldout_r2_is_one_on_a_linear_game_and_low_on_an_xor_game():
    w = np.array([3.0, -1.0, 0.5, 2.0, 0.0, -2.5, 1.0, 0.2])
    values, fit = lime.lime_values(linear_game(w), 8, 64, seed=0)
    assert fit.r2_heldout > 0.98 and fit.r2 > 0.98
    assert np.argmax(values) == 0 and np.argmin(values) == 5
    xor = lambda k: 4.0 * (k[:, 0] ^ k[:, 1]) + 0.1 * k[:, 2]  # noqa: E731
    _, fit = lime.lime_values(xor, 8, 64, seed=0)
    assert fit.r2_heldout < 0.5  # no linear surrogate describes XOR, and it says so


def test_stability_flags_follow_the_halves():
    halves = np.array([[3.0, 2.0, 1.0, 0.0], [3.1, 1.9, 1.2, 0.1]])
    assert shapley.top_k_stable(halves, 3)
    halves[1] = [0.0, 2.0, 1.0, 3.0]
    assert not shapley.top_k_stable(halves, 3)
    assert shapley.rank_agreement(halves[0], halves[1]) < 0
    # exact values: no sampling error, stable by construction
    got = shapley.estimate(linear_game(np.arange(6.0)), 6, 64)
    assert got["estimator"] == "exact" and got["stability"] == 1.0
    np.testing.assert_allclose(got["values"], np.arange(6.0))


def test_defaults_per_model_and_the_gradcam_caveat():
    # Res-TSSDNet 1D and AASIST enumerate the default 8 segments; the CQT model samples
    assert shap.budget(MODELS["tssd1d"]) == shap.budget(MODELS["aasist"]) == 2**8
    assert shap.budget(MODELS["tssd2d"]) < 2**8
    assert lime.samples_for(8, MODELS["tssd2d"]) < lime.samples_for(8, MODELS["tssd1d"])
    gradcam = EXPLAINERS["gradcam"]
    assert gradcam.caveat_for(MODELS["tssd1d"]) is None
    text = gradcam.caveat_for(MODELS["tssd2d"])
    assert "Spearman 0.05" in text and "SHAP" in text
    assert EXPLAINERS["shap"].caveat_for(MODELS["tssd2d"]) is None
