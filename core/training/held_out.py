"""Leave one source out: the fusion's output on each dev source from a fit that never saw it.

A dev set pools several sources (MiniSpoof dev as one; each DemoSpoof dev page as its
own: other recordings, other synthesis). Scoring every source with a fusion fitted on
the others is how the verdict will meet audio from somewhere new, so the bands and the
widenings are chosen on these held-out outputs, and calibration.metrics.json reports
them per source.

    p = held_out_p(scores, y, groups, subset)            # per row, fitted without its group
    p = held_out_apply(scores, y, groups, subset, target, target_groups)
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from core.audio.protocol import ProtocolEntry
from core.judgement.calibration import Bands, as_labels, fit_fusion
from core.judgement.calibration_metrics import cllr_from_llr, ece, eer

MIN_ROWS = 20  # a subset of dev smaller than this cannot measure a widening


def n_groups(groups) -> int:
    return len(set(np.asarray(groups).tolist()))


def held_out_apply(
    scores: Mapping[str, np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    subset: tuple[str, ...],
    target: Mapping[str, np.ndarray],
    target_groups: np.ndarray,
    held: set | None = None,
) -> np.ndarray:
    """
    P(spoof) of every target row from the fusion of ``subset`` fitted on the rows of the
    other groups. Groups not in ``held`` (default: every group is held out) are scored
    by the fit on all rows: the in-domain anchor that every fit keeps.
    """
    groups, target_groups = np.asarray(groups), np.asarray(target_groups)
    out = np.empty(len(target_groups))
    for g in sorted(set(target_groups.tolist())):
        fit_rows = groups != g if held is None or g in held else np.ones(len(groups), bool)
        rows = target_groups == g
        fused = fit_fusion({m: scores[m][fit_rows] for m in subset}, y[fit_rows]).select(subset)
        out[rows] = fused.apply({m: target[m][rows] for m in subset})
    return out


def held_out_p(
    scores: Mapping[str, np.ndarray], y: np.ndarray, groups: np.ndarray, subset: tuple[str, ...],
    held: set | None = None,
) -> np.ndarray:
    """held_out_apply on the fitting rows themselves: each held row scored without its group"""
    return held_out_apply(scores, y, groups, subset, scores, groups, held)


def subset_stats(p: np.ndarray, y: np.ndarray, bands: Bands, widen_by: np.ndarray) -> dict:
    """
    What the verdict does on these rows with these bands, each row's band widened by its
    own amount (log-odds): the share of rows confident and wrong, confident, uncertain.
    """
    from core.judgement.calibration import widened

    lo = np.array([widened(bands, w).lo for w in widen_by])
    hi = np.array([widened(bands, w).hi for w in widen_by])
    confident = (p < lo) | (p > hi)
    wrong = confident & ((p > hi) != (y == 1))
    n = len(p)
    return {
        "n": int(n),
        "n_bonafide": int((y == 0).sum()),
        "n_spoof": int((y == 1).sum()),
        "confident_share": float(confident.mean()) if n else None,
        "confidently_wrong_share": float(wrong.mean()) if n else None,
        "error_rate_outside": float(wrong.sum() / confident.sum()) if confident.any() else None,
    }


def per_source(
    p: np.ndarray, y: np.ndarray, groups: np.ndarray, bands: Bands, widen_by: np.ndarray
) -> dict:
    """held-out numbers per source: band shares, and EER / ECE where both classes are there"""
    out = {}
    groups = np.asarray(groups)
    for g in sorted(set(groups.tolist())):
        m = groups == g
        row = subset_stats(p[m], y[m], bands, widen_by[m])
        both = row["n_bonafide"] > 0 and row["n_spoof"] > 0
        row["eer"] = float(eer(p[m], y[m])) if both else None
        row["ece"] = float(ece(p[m], y[m], 10)) if both else None
        out[g] = row
    return out


# ------------------------------------------------------- leave one attack out (one dev set)


def attack_folds(entries: list[ProtocolEntry], *, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """
    One fold per attack system: its spoofed files, plus an equal share of the bona fide
    speakers (dealt at random, seeded; a speaker's files stay together).
    Returns (fold index per entry, the attacks in fold order).
    """
    one = as_labels([e.key for e in entries])
    attacks = sorted({e.system for e, y in zip(entries, one) if y == 1})
    if len(attacks) < 2:
        raise ValueError("leaving one attack out needs at least two attack systems")
    speakers = sorted({e.speaker for e, y in zip(entries, one) if y == 0})
    order = np.random.default_rng(seed).permutation(len(speakers))
    fold_of = {speakers[j]: i % len(attacks) for i, j in enumerate(order)}
    folds = [attacks.index(e.system) if y == 1 else fold_of[e.speaker]
             for e, y in zip(entries, one)]  # fmt: skip
    return np.array(folds), attacks


def held_out_llr(
    scores: Mapping[str, np.ndarray], entries: list[ProtocolEntry], *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """
    Fused log-odds of every file from a fusion fitted without its fold (attack_folds):
    how the combination does on an attack it has not seen. ``scores[m]`` holds P(spoof)
    of the entries repeated whole per pooled condition (len = k * len(entries)).
    Returns (llr, labels), both of that length.
    """
    fold1, attacks = attack_folds(entries, seed=seed)
    models = tuple(sorted(scores))
    copies = len(scores[models[0]]) // len(entries)
    y = np.tile(as_labels([e.key for e in entries]), copies)
    fold = np.tile(fold1, copies)
    llr = np.zeros(len(y))
    for f in range(len(attacks)):
        out = fold == f
        fused = fit_fusion({m: scores[m][~out] for m in models}, y[~out]).select(models)
        llr[out] = fused.llr({m: scores[m][out] for m in models})
    return llr, y


def held_out_attacks(
    scores: Mapping[str, np.ndarray], entries: list[ProtocolEntry], *, seed: int = 0
) -> dict:
    """held_out_llr's pooled EER, Cllr and ECE (10 bins, balanced), with the attacks"""
    llr, y = held_out_llr(scores, entries, seed=seed)
    p = 1.0 / (1.0 + np.exp(-llr))
    return {"attacks": attack_folds(entries, seed=seed)[1], "eer": float(eer(llr, y)),
            "cllr": float(cllr_from_llr(llr, y)), "ece": float(ece(p, y, 10))}  # fmt: skip
