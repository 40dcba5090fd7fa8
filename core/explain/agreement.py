"""Do two explanations point at the same evidence? Rank agreement between attributions.

Explanations are compared as spoof evidence (core.explain.geometry), so a method that
explained bona fide and one that explained spoof agree when they blame the same audio.
Two explanations that share their features (same bounds: same model, window and
segmentation) are ranked feature by feature; any other pair is compared on a common
time grid over the audio both cover, each one's evidence spread over its bins.

    labels, matrix, basis = agreement({"SHAP": e1, "LIME": e2, "Grad-CAM": e3})
    mean_offdiagonal(matrix)                   # one number for the whole set
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr

from core.explain.geometry import spoof_evidence, time_profile

AGREEMENT_BINS = 16  # common time grid for explanations that share no features
MIN_OVERLAP_SECONDS = 0.25  # below this, two explanations cover different audio


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """rank correlation of two attribution vectors; NaN when undefined (constant, < 3)"""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def common_edges(expls: Sequence, *, bins: int = AGREEMENT_BINS) -> np.ndarray | None:
    """a grid over the time every explanation covers, or None when that is too short"""
    lo = max(float(e.window_start) for e in expls)
    hi = min(float(e.window_end) for e in expls)
    if hi - lo < MIN_OVERLAP_SECONDS:
        return None
    return np.linspace(lo, hi, bins + 1)


def same_features(expls: Sequence) -> bool:
    """True when every explanation has the first one's (non-empty) feature bounds"""
    first = np.asarray(expls[0].feature_bounds)
    return first.size > 0 and all(
        np.asarray(e.feature_bounds).shape == first.shape
        and np.allclose(np.asarray(e.feature_bounds), first)
        for e in expls[1:]
    )


def agreement(
    expls: Mapping[str, object], *, bins: int = AGREEMENT_BINS
) -> tuple[list[str], np.ndarray, str]:
    """
    Pairwise Spearman rho between explanations (signed as spoof evidence).

    expls : {label: Explanation}
    Returns (labels, matrix (n, n), basis): basis says what was ranked, the shared
    features or a time grid over the audio each pair covers. Pairs covering no common
    audio get NaN.
    """
    labels = list(expls)
    items = [expls[k] for k in labels]
    n = len(items)
    m = np.full((n, n), np.nan)
    if n == 0:
        return labels, m, "nothing to compare"
    if same_features(items):
        vecs = [spoof_evidence(e) for e in items]
        for i in range(n):
            for j in range(n):
                m[i, j] = spearman(vecs[i], vecs[j])
        return labels, m, f"their {len(vecs[0])} shared segments"
    for i in range(n):
        for j in range(n):
            edges = common_edges([items[i], items[j]], bins=bins)
            if edges is not None:
                a, b = time_profile(items[i], edges), time_profile(items[j], edges)
                m[i, j] = spearman(a, b)
    return labels, m, f"{bins} time bins over the audio each pair has in common"


def mean_offdiagonal(m: np.ndarray) -> float:
    """mean of the finite off-diagonal entries; NaN for fewer than two explanations"""
    m = np.asarray(m, dtype=np.float64)
    if m.shape[0] < 2:
        return float("nan")
    v = m[~np.eye(m.shape[0], dtype=bool)]
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")
