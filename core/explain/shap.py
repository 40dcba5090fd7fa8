"""Segment-level Shapley values with Captum's KernelShap (Lundberg & Lee, NeurIPS 2017).

Players are the window's interpretable features (time segments, or time x frequency
patches for the CQT model); a removed feature takes the baseline (silence, or the
window's mean spectrum: see window.py). The value explained is P(target), so the values
add up to P(target | x) - P(target | baseline); the gap is reported as
quality["completeness_gap"] (absolute) and ["completeness_rel"] (relative to that
difference). KernelShap draws coalitions at random (Captum's sampler uses torch's global
generator), so it runs with that generator seeded with ``seed`` (and restored after).
"""

from __future__ import annotations

import numpy as np
from captum.attr import KernelShap

from .base import Explainer, MethodResult
from .window import Window, seeded


def default_n_samples(n_features: int) -> int:
    """about 3 coalitions per feature, plus the full and empty ones"""
    return 3 * n_features + 2


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


def kernel_shap(
    window: Window, *, n_samples: int, seed: int = 0, progress=None
) -> MethodResult:
    before = window.n_evals
    with seeded(seed):
        coefs = KernelShap(window.probabilities).attribute(
            window.x,
            baselines=window.baseline,
            target=window.target,
            feature_mask=window.feature_mask,
            n_samples=n_samples,
            perturbations_per_eval=window.batch,
            return_input_shape=False,
        )
    values = coefs.detach().double().reshape(-1).numpy()
    quality = completeness(values, window.p_target, window.p_baseline)
    quality["baseline"] = window.baseline_name
    return MethodResult(
        values=values, dense=None, n_evals=window.n_evals - before, quality=quality
    )


EXPLAINER = Explainer(
    name="shap",
    version="1",
    fn=kernel_shap,
    default_n_samples=default_n_samples,
    description="segment Shapley values of P(target), Captum KernelShap",
    label="SHAP",
    cost="Runs the model tens of times: up to a minute on CPU.",
)
