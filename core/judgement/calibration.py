"""Calibrated P(spoof): per-model Platt calibration, logistic fusion, uncertain bands.

Conventions: labels are 1 = spoof, 0 = bona fide ("spoof"/"bonafide" strings are
accepted too); a score or P(spoof) is higher for spoof. Every fit weighs the two
classes equally (each class carries half of the total weight), so a fitted output is
the posterior at prior 0.5: its log-odds is a log-likelihood-ratio estimate, whatever
the spoof share of the fitting data. Targets are Platt-smoothed ((n+1)/(n+2) and
1/(n+2), Platt 1999 §2.2) so that separable data gives finite, not infinite, slopes.

- ``fit_calibration`` / ``Calibration``: 1-D logistic map of a model's raw log-odds.
- ``fit_fusion`` / ``Fusion``: logistic fusion of the per-model raw log-odds, one fit
  per non-empty subset of the models, so a missing model picks the fit of those present.
- ``choose_bands`` / ``band``: thresholds lo <= 0.5 <= hi that leave <= max_error
  wrong among confident calls, and the verdict label of one P(spoof).
- ``eer``, ``cllr``, ``min_cllr``, ``ece``, ``reliability``: metrics, from
  core.judgement.calibration_metrics.
- ``CalibrationFile`` (core.judgement.calibration_file): versioned JSON with a
  ``.sha256`` sidecar checked on load.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
from scipy.special import expit

from core.judgement.calibration_metrics import (  # noqa: F401  (re-exported: the metrics API)
    Reliability,
    as_labels,
    balanced_targets,
    cllr,
    cllr_from_llr,
    ece,
    ece_interval,
    eer,
    min_cllr,
    reliability,
)

PROB_CLIP = 1e-6  # raw P(spoof) is clipped to [1e-6, 1 - 1e-6]: log-odds within +-13.8
FORMAT_VERSION = 1  # of CalibrationFile's JSON; bump on any incompatible change
FORMAT_NAME = "deepfake-calibration"
VERDICTS = ("likely_bonafide", "uncertain", "likely_spoof", "too_short")


class CalibrationFileError(ValueError):
    """A calibration file that must not be used: missing sidecar, bad sha, bad version."""


def log_odds(p) -> np.ndarray:
    """ln(p / (1 - p)) of a raw P(spoof), clipped to [PROB_CLIP, 1 - PROB_CLIP]."""
    p = np.clip(np.asarray(p, dtype=np.float64), PROB_CLIP, 1 - PROB_CLIP)
    return np.log(p) - np.log1p(-p)


def logistic_loss(theta: np.ndarray, x: np.ndarray, w: np.ndarray, t: np.ndarray) -> float:
    """sum_i w_i * cross-entropy(t_i, sigmoid(x_i . theta[:-1] + theta[-1])), in nats"""
    z = x @ theta[:-1] + theta[-1]
    return float(np.sum(w * (np.logaddexp(0.0, z) - t * z)))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, smooth: bool = True) -> np.ndarray:
    """
    Class-balanced logistic regression by Newton's method with a backtracking line search.

    Parameters
    ----------
    x : np.ndarray, shape = (n, d), features (raw log-odds of d models)
    y : np.ndarray, shape = (n,), 1 = spoof

    Returns
    -------
    theta : np.ndarray, shape = (d + 1,), the d weights then the intercept
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    w, t = balanced_targets(np.asarray(y), smooth=smooth)
    a = np.hstack([x, np.ones((x.shape[0], 1))])  # (n, d + 1)
    theta = np.zeros(a.shape[1])
    loss = logistic_loss(theta, x, w, t)
    for _ in range(100):
        s = expit(a @ theta)
        grad = a.T @ (w * (s - t))
        hess = (a.T * (w * s * (1 - s))) @ a
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]  # lstsq: a constant feature
        rate = 1.0
        while rate > 1e-8:
            new = theta - rate * step
            new_loss = logistic_loss(new, x, w, t)
            if new_loss <= loss:
                break
            rate /= 2
        else:
            break
        theta, loss = new, new_loss
        if np.max(np.abs(rate * step)) < 1e-10:
            break
    return theta


@dataclass(frozen=True)
class Calibration:
    """calibrated log-odds = slope * raw log-odds + intercept (posterior at prior 0.5)"""

    slope: float
    intercept: float

    def llr(self, p) -> np.ndarray:
        return self.slope * log_odds(p) + self.intercept

    def apply(self, p):
        out = expit(self.llr(p))
        return float(out) if np.ndim(out) == 0 else out

    def to_json(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept}


def fit_calibration(scores, labels, *, smooth: bool = True) -> Calibration:
    """Platt calibration of one model's raw P(spoof) (see the module docstring)."""
    y = as_labels(labels)
    slope, intercept = fit_logistic(log_odds(scores)[:, None], y, smooth=smooth)
    return Calibration(float(slope), float(intercept))


@dataclass(frozen=True)
class Bands:
    """likely_bonafide when p < lo, likely_spoof when p > hi, else uncertain"""

    lo: float
    hi: float

    def to_json(self) -> dict:
        return {"lo": self.lo, "hi": self.hi}


@dataclass(frozen=True)
class FusionModel:
    """fused log-odds = sum_m weights[m] * raw log-odds of m + bias, for one model subset"""

    models: tuple[str, ...]  # sorted
    weights: tuple[float, ...]
    bias: float
    bands: Bands | None = None  # chosen on this subset's fused output

    def llr(self, scores: Mapping[str, object]) -> np.ndarray:
        return sum(w * log_odds(scores[m]) for m, w in zip(self.models, self.weights)) + self.bias

    def apply(self, scores: Mapping[str, object]):
        out = expit(self.llr(scores))
        return float(out) if np.ndim(out) == 0 else out

    def to_json(self) -> dict:
        return {"models": list(self.models), "weights": list(self.weights),
                "bias": self.bias, "bands": self.bands.to_json() if self.bands else None}

    @classmethod
    def from_json(cls, d: dict) -> "FusionModel":
        bands = Bands(**d["bands"]) if d.get("bands") else None
        return cls(tuple(d["models"]), tuple(float(w) for w in d["weights"]),
                   float(d["bias"]), bands)


@dataclass(frozen=True)
class Fusion:
    """
    One FusionModel per non-empty subset of the models present at fit time.

    At apply time the subset is the set of fitted models that gave a score (a value
    that is not None); scores of models unknown at fit time are ignored. A subset's own
    fit is the right combination when a model is missing: reusing the full fit with one
    weight dropped would mis-scale the rest, because correlated detectors share weight.
    """

    models: tuple[str, ...]  # sorted, all models at fit time
    subsets: dict[tuple[str, ...], FusionModel] = field(default_factory=dict)

    def select(self, present: Iterable[str]) -> FusionModel:
        key = tuple(sorted(set(present) & set(self.models)))
        if key not in self.subsets:
            raise ValueError(f"no fusion fitted for models {list(key)}; have {list(self.models)}")
        return self.subsets[key]

    def apply(self, scores: Mapping[str, object]):
        present = {m: s for m, s in scores.items() if s is not None}
        return self.select(present).apply(present)

    def restrict(self, models: Iterable[str]) -> "Fusion":
        """only the subsets made of the given models"""
        keep = set(models)
        subsets = {k: v for k, v in self.subsets.items() if set(k) <= keep}
        return Fusion(tuple(m for m in self.models if m in keep), subsets)

    def to_json(self) -> dict:
        return {"models": list(self.models),
                "subsets": [s.to_json() for _, s in sorted(self.subsets.items())]}

    @classmethod
    def from_json(cls, d: dict) -> "Fusion":
        subsets = [FusionModel.from_json(s) for s in d["subsets"]]
        return cls(tuple(d["models"]), {s.models: s for s in subsets})


def fit_fusion(score_matrix: Mapping[str, object], labels, *, smooth: bool = True) -> Fusion:
    """score_matrix: model -> raw P(spoof) of the same files, in the same order"""
    y = as_labels(labels)
    models = tuple(sorted(score_matrix))
    if not models:
        raise ValueError("fit_fusion needs at least one model")
    cols = {m: log_odds(score_matrix[m]) for m in models}
    if any(c.shape != y.shape for c in cols.values()):
        raise ValueError("every model needs one score per label")
    subsets = {}
    for k in range(1, len(models) + 1):
        for subset in itertools.combinations(models, k):
            theta = fit_logistic(np.stack([cols[m] for m in subset], axis=1), y, smooth=smooth)
            subsets[subset] = FusionModel(subset, tuple(map(float, theta[:-1])), float(theta[-1]))
    return Fusion(models, subsets)


def _confident_error(wrong: np.ndarray, right: np.ndarray) -> np.ndarray:
    """share of wrong calls at prior 0.5: each class's rate weighs the same"""
    total = wrong + right
    return np.divide(wrong, total, out=np.full(total.shape, np.inf), where=total > 0)


def choose_bands(p_dev, labels_dev, *, max_error: float = 0.05) -> Bands:
    """
    The widest confident regions whose error rate is <= max_error on dev.

    The error rate of a region is its share of wrong calls with both classes weighed
    equally (prior 0.5, as the calibration). hi is the smallest value >= 0.5 for which
    {p > hi} meets it, lo the largest value <= 0.5 for which {p < lo} does. When no
    region meets it, hi = 1 and lo = 0: nothing is ever confident on that side.
    """
    p = np.asarray(p_dev, dtype=np.float64)
    y = as_labels(labels_dev)
    balanced_targets(y, smooth=False)  # both classes needed
    spoof, bona = np.sort(p[y == 1]), np.sort(p[y == 0])
    cand = np.unique(np.concatenate([p, [0.5]]))
    hi_c, lo_c = cand[cand >= 0.5], cand[cand <= 0.5]
    # fraction of each class strictly above / below each candidate
    above_s = 1 - np.searchsorted(spoof, hi_c, side="right") / spoof.size
    above_b = 1 - np.searchsorted(bona, hi_c, side="right") / bona.size
    below_s = np.searchsorted(spoof, lo_c, side="left") / spoof.size
    below_b = np.searchsorted(bona, lo_c, side="left") / bona.size
    ok_hi = _confident_error(above_b, above_s) <= max_error
    ok_lo = _confident_error(below_s, below_b) <= max_error
    hi = float(hi_c[ok_hi].min()) if ok_hi.any() else 1.0
    lo = float(lo_c[ok_lo].max()) if ok_lo.any() else 0.0
    return Bands(lo=lo, hi=hi)


def widened(bands: Bands, widen: float) -> Bands:
    """
    The bands with lo moved down and hi moved up by ``widen`` (>= 0, natural log-odds),
    e.g. for input-quality warnings measured to hurt: widen=1 takes hi 0.9 -> 0.96.
    Edges at 0 or 1 stay (nothing confident on that side already).
    """
    if widen < 0:
        raise ValueError(f"widen must be >= 0, got {widen}")

    def move(p: float, by: float) -> float:
        return p if p <= 0.0 or p >= 1.0 else float(expit(math.log(p / (1 - p)) + by))

    return Bands(lo=move(bands.lo, -widen), hi=move(bands.hi, widen))


def band(p: float, bands: Bands, *, widen: float = 0.0, too_short: bool = False) -> str:
    """The verdict for one calibrated P(spoof); see ``widened`` for ``widen``."""
    b = widened(bands, widen)
    if too_short:
        return "too_short"
    if p > b.hi:
        return "likely_spoof"
    if p < b.lo:
        return "likely_bonafide"
    return "uncertain"


# --- the file
