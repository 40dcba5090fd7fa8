"""Segment-level Shapley values (Lundberg & Lee, NeurIPS 2017) of the target's log-odds.

Players are the window's interpretable features (time segments, or time x frequency
patches for the CQT model); a removed feature takes the reference (core.explain.reference:
by default the same feature of each real-speech reference window, the coalition's value
being the mean over them). The value explained is the target's log-odds
(``Window.game``), so the values add up to log-odds(x) - log-odds(reference); the gap is
reported as quality["completeness_gap"] and ["completeness_rel"].

The estimator (shapley.py) follows the budget N: exact enumeration of all 2^F coalitions
when 2^F <= N, else Captum's KernelShap with paired (antithetic) coalitions in two
independent halves, whose spread is the per-feature uncertainty (Explanation.uncertainty,
a standard error) and whose rank agreement is quality["stability"]. The default N is
the model's ``shap_budget`` (core.detectors.archs), chosen with ``python -m benchmarks shapley``
on MiniSpoof dev clips so that the default reaches Spearman >= 0.95 against exact
values; see the README for the measured curve.
"""

from __future__ import annotations

import numpy as np

from core.explain.base import Explainer, MethodResult
from core.explain.shapley import estimate
from core.explain.window import Window, arch_setting

DEFAULT_BUDGET = 256  # model calls, for models whose architecture names none


def budget(spec) -> int:
    """the model's default SHAP budget in model calls"""
    return int(arch_setting(spec, "shap_budget", DEFAULT_BUDGET))


def default_n_samples(window: Window) -> int:
    """2^F (exact) when that fits the model's budget, else the budget"""
    return min(2**window.n_features, budget(window.spec))


def completeness(values: np.ndarray, f_x: float, f_base: float) -> dict:
    total = float(np.sum(values))
    gap = abs(total - (f_x - f_base))
    return {
        "sum_values": total,
        "f_x": f_x,
        "f_baseline": f_base,
        "completeness_gap": gap,
        "completeness_rel": gap / max(abs(f_x - f_base), 1e-6),
    }


def shapley_values(
    window: Window, *, n_samples: int, seed: int = 0, progress=None
) -> MethodResult:
    before = window.n_evals
    got = estimate(window.game, window.n_features, n_samples, seed)
    values = got["values"]
    quality = completeness(values, window.log_odds_target, window.log_odds_baseline)
    quality.update(
        output="log-odds",
        estimator=got["estimator"],
        stability=got["stability"],
        top3_stable=got["top3_stable"],
        baseline=window.baseline_name,
    )
    return MethodResult(
        values=values,
        dense=None,
        n_evals=window.n_evals - before,
        quality=quality,
        uncertainty=got["uncertainty"],
    )


EXPLAINER = Explainer(
    name="shap",
    version="3",  # 3: the reference (real speech by default) is a parameter
    fn=shapley_values,
    default_n_samples=default_n_samples,
    description="segment Shapley values of the target's log-odds: exact when 2^F "
    "coalitions fit the budget, else Captum KernelShap with paired sampling",
    label="SHAP",
    cost="Runs the model on up to a few hundred coalitions of segments, each once per "
    "reference window, then the deletion curves (free after an exact SHAP).",
    exclusive=False,  # only model calls through Window: one turn per batch
)
