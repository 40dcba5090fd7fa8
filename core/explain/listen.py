"""Listenable explanations: the window with only its top-k features audible, and the
rest.

For time-frequency patches (CQT model) only their time extents are used: the kept audio
is every moment covered by a top-k patch, at all frequencies.
"""

from __future__ import annotations

import numpy as np

from core.audio.decode import SAMPLE_RATE
from core.explain.base import Explanation

RAMP_SECONDS = 0.005  # raised-cosine gain ramps at segment edges: no clicks


def keep_gain(
    samples_window: np.ndarray, explanation: Explanation, *, k: int = 3
) -> np.ndarray:
    """
    1.0 inside the time extents of the k features with the largest values, else 0.0,
    with short ramps at the edges; shape = (len(samples_window),), float64
    """
    n = len(samples_window)
    gain = np.zeros(n)
    bounds = np.asarray(explanation.feature_bounds, dtype=np.float64)
    top = np.argsort(-np.asarray(explanation.values, np.float64), kind="stable")[:k]
    for i in top:
        a, b = (
            ((bounds[i, :2] - explanation.window_start) * SAMPLE_RATE)
            .round()
            .astype(int)
        )
        gain[max(a, 0) : min(b, n)] = 1.0
    ramp = max(int(RAMP_SECONDS * SAMPLE_RATE), 1)
    kernel = np.hanning(2 * ramp + 1)
    return np.clip(np.convolve(gain, kernel / kernel.sum(), mode="same"), 0.0, 1.0)


def listenable(
    samples_window: np.ndarray,
    explanation: Explanation,
    *,
    k: int = 3,
    attenuation_db: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """
    samples_window : np.ndarray, shape = (n,), the explained window at 16 kHz
    returns (kept, complement), float32, shape = (n,), 16 kHz: ``kept`` has the top-k
    features at full level and the rest attenuated by attenuation_db; ``complement`` the
    other way round
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    x = np.asarray(samples_window, dtype=np.float64)
    floor = 10.0 ** (-abs(attenuation_db) / 20.0)
    g = keep_gain(x, explanation, k=k)
    kept = x * (floor + (1.0 - floor) * g)
    complement = x * (floor + (1.0 - floor) * (1.0 - g))
    return kept.astype(np.float32), complement.astype(np.float32)
