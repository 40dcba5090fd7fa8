"""Metrics of P(spoof) outputs: EER, actual and minimum Cllr, ECE, reliability bins.

Labels are 1 = spoof, 0 = bona fide ("spoof"/"bonafide" strings are accepted); a score
is higher for spoof. Posteriors are read at prior 0.5 (see core.judgement.calibration), so the
calibration metrics weigh the two classes equally unless told otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from sklearn.isotonic import IsotonicRegression

from core.jsonsafe import finite
from core.judgement.metrics import compute_eer


def as_labels(labels: Iterable) -> np.ndarray:
    """1 = spoof, 0 = bona fide, from 0/1, bools or "spoof"/"bonafide" strings."""
    arr = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels)
    if arr.dtype.kind in "US":
        bad = set(arr.tolist()) - {"spoof", "bonafide"}
        if bad:
            raise ValueError(f"labels must be 'spoof' or 'bonafide', got {sorted(bad)[:3]}")
        return (arr == "spoof").astype(np.int64)
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("labels must be 0 (bona fide) or 1 (spoof)")
    return arr.astype(np.int64)


def balanced_targets(y: np.ndarray, *, smooth: bool) -> tuple[np.ndarray, np.ndarray]:
    n1, n0 = int(y.sum()), int(y.size - y.sum())
    if n1 == 0 or n0 == 0:
        raise ValueError(f"fitting needs both classes: got {n0} bona fide, {n1} spoof")
    w = np.where(y == 1, 0.5 / n1, 0.5 / n0)
    t = np.where(y == 1, (n1 + 1) / (n1 + 2), 1 / (n0 + 2)) if smooth else y * 1.0
    return w, t


def eer(scores, labels) -> float:
    """equal error rate (fraction) of scores, higher = spoof; see core.judgement.metrics"""
    s, y = np.asarray(scores, dtype=np.float64), as_labels(labels)
    return compute_eer(bonafide=s[y == 0], spoof=s[y == 1]).eer


def cllr_from_llr(llr, labels) -> float:
    """Cllr in bits of natural-log likelihood ratios (spoof vs bona fide)"""
    llr, y = np.asarray(llr, dtype=np.float64), as_labels(labels)
    balanced_targets(y, smooth=False)
    # logaddexp keeps +-inf exact: an infinite llr costs 0 when right, inf when wrong
    c_spoof = np.mean(np.logaddexp(0.0, -llr[y == 1]))
    c_bona = np.mean(np.logaddexp(0.0, llr[y == 0]))
    return float((c_spoof + c_bona) / (2 * math.log(2)))


def cllr(p, labels) -> float:
    """actual Cllr (bits) of posteriors at prior 0.5: llr = ln(p / (1 - p)), no clipping"""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return cllr_from_llr(np.log(p) - np.log1p(-p), labels)


def min_cllr(scores, labels) -> float:
    """
    Cllr after the optimal monotone calibration: PAV (isotonic regression) of the labels
    on the scores gives posteriors at the data's prior; dividing out the prior odds
    n_spoof / n_bonafide gives the llr.
    """
    s, y = np.asarray(scores, dtype=np.float64), as_labels(labels)
    balanced_targets(y, smooth=False)
    post = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(s, y)
    with np.errstate(divide="ignore"):
        llr = np.log(post) - np.log1p(-post) - math.log(y.sum() / (y.size - y.sum()))
    return cllr_from_llr(llr, y)


@dataclass(frozen=True)
class Reliability:
    """per-bin numbers of a reliability diagram; empty bins hold nan and count 0"""

    edges: np.ndarray  # shape = (bins + 1,), equal-width bins over [0, 1]
    mean_predicted: np.ndarray  # shape = (bins,)
    observed: np.ndarray  # shape = (bins,), spoof frequency
    count: np.ndarray  # shape = (bins,), files per bin (unweighted)

    def to_json(self) -> dict:
        return finite({"edges": self.edges, "mean_predicted": self.mean_predicted,
                       "observed": self.observed, "count": self.count})


def reliability(p, labels, bins: int = 10, *, balanced: bool = True) -> Reliability:
    """
    Mean P(spoof) and observed spoof frequency per bin. balanced weighs each class by
    half its inverse count, matching posteriors at prior 0.5; False uses raw counts.
    """
    p, y = np.asarray(p, dtype=np.float64), as_labels(labels)
    w = balanced_targets(y, smooth=False)[0] if balanced else np.ones(y.size)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    wsum = np.bincount(idx, weights=w, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=w * p, minlength=bins) / wsum
        obs = np.bincount(idx, weights=w * y, minlength=bins) / wsum
    return Reliability(edges, mean_p, obs, np.bincount(idx, minlength=bins))


def ece(p, labels, bins: int = 10, *, balanced: bool = True) -> float:
    """expected calibration error: sum over bins of weight share * |mean p - frequency|"""
    p, y = np.asarray(p, dtype=np.float64), as_labels(labels)
    r = reliability(p, y, bins, balanced=balanced)
    w = balanced_targets(y, smooth=False)[0] if balanced else np.ones(y.size)
    idx = np.clip(np.digitize(p, r.edges[1:-1]), 0, bins - 1)
    share = np.bincount(idx, weights=w, minlength=bins) / w.sum()
    gap = np.abs(r.mean_predicted - r.observed)
    return float(np.sum(share[r.count > 0] * gap[r.count > 0]))


def ece_interval(
    p, labels, bins: int = 10, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """
    Bootstrap interval of ece(p, labels): files resampled with replacement within each
    class (the class counts, and so the balanced weights, stay fixed), ``level`` central
    interval of n_boot resamples; fixed seed, so a rerun gives the same numbers. Says
    how much of an ECE is the sampling noise of a small test set.
    """
    p, y = np.asarray(p, dtype=np.float64), as_labels(labels)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in (0, 1) if np.any(y == c)]
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])
        values[b] = ece(p[idx], y[idx], bins)
    tail = (1.0 - level) / 2
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float(lo), float(hi)
