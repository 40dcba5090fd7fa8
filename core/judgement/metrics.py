"""Equal error rate for spoofing countermeasures.

Convention throughout: a higher score means *more likely spoof*, and a file is called
spoof when its score is at least the threshold. At threshold t

    miss rate        P_miss(t) = fraction of spoof files scored below t  (spoof let through)
    false alarm rate P_fa(t)   = fraction of bona fide files scored >= t (bona fide rejected)

P_miss rises from 0 to 1 and P_fa falls from 1 to 0 as t grows. The EER is where they
meet; with finite score sets the two step curves rarely meet exactly, so, as in the
ASVspoof reference code, we take the threshold where |P_miss - P_fa| is smallest and
report the mean of the two rates there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EER:
    eer: float  # fraction in [0, 1]
    threshold: float  # score at which it is reached (spoof if score >= threshold)
    n_bonafide: int
    n_spoof: int

    @property
    def percent(self) -> float:
        return 100.0 * self.eer


def det_curve(
    bonafide: np.ndarray, spoof: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Miss and false-alarm rates at every distinct threshold.

    Parameters
    ----------
    bonafide : np.ndarray, shape = (n_bonafide,)
    spoof : np.ndarray, shape = (n_spoof,)
        scores, higher = more spoof

    Returns
    -------
    thresholds, p_miss, p_fa : np.ndarray, each shape = (n_distinct + 2,)
        thresholds run from -inf (everything called spoof) to +inf (nothing called spoof)
    """
    bonafide = np.sort(np.asarray(bonafide, dtype=np.float64))
    spoof = np.sort(np.asarray(spoof, dtype=np.float64))
    if bonafide.size == 0 or spoof.size == 0:
        raise ValueError(
            f"EER needs both classes: got {bonafide.size} bona fide and {spoof.size} spoof scores"
        )
    if not (np.isfinite(bonafide).all() and np.isfinite(spoof).all()):
        raise ValueError("EER: scores must be finite")
    thresholds = np.concatenate(
        [[-np.inf], np.unique(np.concatenate([bonafide, spoof])), [np.inf]]
    )
    # searchsorted 'left' counts the scores strictly below each threshold
    p_miss = np.searchsorted(spoof, thresholds, side="left") / spoof.size
    p_fa = 1.0 - np.searchsorted(bonafide, thresholds, side="left") / bonafide.size
    return thresholds, p_miss, p_fa


def compute_eer(bonafide: np.ndarray, spoof: np.ndarray) -> EER:
    """
    Equal error rate of spoof-vs-bona-fide scores (higher = more spoof).

    Returns an EER whose ``.eer`` is a fraction: 0 when every spoof outscores every bona
    fide file, 1 when the order is fully reversed, 0.5 when all scores are equal.
    """
    thresholds, p_miss, p_fa = det_curve(bonafide, spoof)
    i = int(np.argmin(np.abs(p_miss - p_fa)))
    return EER(
        eer=float((p_miss[i] + p_fa[i]) / 2.0),
        threshold=float(thresholds[i]),
        n_bonafide=int(np.size(bonafide)),
        n_spoof=int(np.size(spoof)),
    )


def matched_eer(scores: np.ndarray, is_spoof: np.ndarray, sources: np.ndarray) -> dict:
    """
    EER per source (that source's spoofs against that source's bona fide), their mean
    (the "matched" EER) and the pooled EER, all in percent.

    A source's recordings and its synthetic clips share a recording chain that other
    sources do not, so a pooled EER can be won by telling sources apart; the matched EER
    cannot. A source without bona fide or without spoofs has no EER of its own: it is
    listed with the reason and left out of the mean, never averaged in.

    scores : (n,) higher = more spoof; is_spoof : (n,) bool; sources : (n,) str
    returns {"matched": float | None, "pooled": {...}, "per_source": {source: {...}},
             "n_sources": int, "left_out": {source: reason}}
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_spoof = np.asarray(is_spoof, dtype=bool)
    sources = np.asarray(sources)
    per_source: dict[str, dict] = {}
    left_out: dict[str, str] = {}
    for src in sorted(set(sources.tolist())):
        m = sources == src
        bona, spoof = scores[m & ~is_spoof], scores[m & is_spoof]
        row = {"n_bonafide": int(bona.size), "n_spoof": int(spoof.size)}
        if bona.size == 0 or spoof.size == 0:
            row["eer"] = None
            row["left_out"] = "no bona fide" if bona.size == 0 else "no spoofs"
            left_out[src] = row["left_out"]
        else:
            row["eer"] = 100.0 * compute_eer(bona, spoof).eer
        per_source[src] = row
    eers = [r["eer"] for r in per_source.values() if r["eer"] is not None]
    pooled = {"eer": None, "n_bonafide": int((~is_spoof).sum()), "n_spoof": int(is_spoof.sum())}
    if pooled["n_bonafide"] and pooled["n_spoof"]:
        pooled["eer"] = 100.0 * compute_eer(scores[~is_spoof], scores[is_spoof]).eer
    return {
        "matched": float(np.mean(eers)) if eers else None,
        "n_sources": len(eers),
        "pooled": pooled,
        "per_source": per_source,
        "left_out": left_out,
    }
