"""Fitting the calibration file from dev scores, and measuring it on another protocol.

``fit(models, dev_entries, dev_dir, degrade=[...], pool=[...])`` scores every dev file
with each model (whole-file P(spoof), exactly as users get it), fits per-model Platt
maps, the all-subset logistic fusion and its bands (core.judgement.calibration), then scores dev
again under each degradation to learn how far the band must widen when the matching
input warning fires. ``pool`` fits on dev under several conditions at once (clean dev
plus, e.g., noisy and MP3 copies of it): the fusion then weighs each model by how well
it holds up across channels, not by clean in-domain dev alone, which favours the least
robust model; every fitted number still comes from dev. ``measure(cal, models, entries, audio_dir)`` reports EER, Cllr, min Cllr, ECE and
the band shares of each model and of the combination on a held-out protocol.

Scores are cached under cache/scores/ by model weights, protocol content and condition,
so a refit or a second measurement does not score again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

import numpy as np

from core.audio.protocol import ProtocolEntry
from core.detectors.registry import PROJECT_ROOT
from core.judgement.calibration import (
    Bands,
    CalibrationFile,
    as_labels,
    choose_bands,
    cllr,
    cllr_from_llr,
    ece,
    ece_interval,
    eer,
    fit_calibration_file,
    fit_fusion,
    log_odds,
    min_cllr,
    reliability,
)
from core.judgement.combined import MAX_WIDEN
from core.training.evaluate import score_protocol

SCORE_CACHE = PROJECT_ROOT / "cache" / "scores"
DEFAULT_DEGRADE = ("telephone", "mp3:32k", "noise:10db")
# degradation -> the input warning (core.audio.quality) that audio degraded so raises
WARNING_OF = {
    "telephone": "narrow_band",
    "mp3:32k": "lossy_codec",
    "ogg:24k": "lossy_codec",
    "opus:24k": "lossy_codec",
    "noise:10db": "low_snr",
    "noise:5db": "low_snr",
}

def _protocol_tag(entries: list[ProtocolEntry], audio_dir: str | Path) -> str:
    text = "\n".join(f"{e.file_id} {e.key}" for e in entries) + f"\n{Path(audio_dir).resolve()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_scores(
    detector, entries: list[ProtocolEntry], audio_dir: str | Path, condition: str = "clean",
    *, progress: bool = True, cache_dir: Path | None = SCORE_CACHE,
) -> np.ndarray:  # fmt: skip
    """whole-file P(spoof) per entry, in protocol order (cached per weights + files)"""
    spec = detector.spec
    path = None
    if cache_dir is not None:
        tag = _protocol_tag(entries, audio_dir)
        precision = getattr(detector, "precision", "fp32")  # bf16 scores are not fp32's
        arith = "" if precision == "fp32" else f".{precision}"
        path = Path(cache_dir) / f"{spec.key}.{spec.sha256[:16]}{arith}.{tag}.{condition}.npy"
        if path.exists():
            return np.load(path)
    if condition == "clean":
        scored = score_protocol(detector, entries, audio_dir, progress=progress)
    else:
        from core.training.robustness import score_degraded

        scored = score_degraded(detector, entries, audio_dir, [condition], progress=progress)[
            condition
        ]
    scores = np.array([s.score for s in scored], dtype=np.float64)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
    return scores


def widening(clean: Bands, degraded: Bands) -> float:
    """log-odds each edge must move out so the degraded dev error target holds"""
    if degraded.hi >= 1.0 or degraded.lo <= 0.0:
        return MAX_WIDEN
    lo_c, hi_c, lo_d, hi_d = log_odds([clean.lo, clean.hi, degraded.lo, degraded.hi])
    by = max(0.0, hi_d - hi_c, lo_c - lo_d)
    return min(by, MAX_WIDEN)


def fit(
    detectors: Mapping[str, object],
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    *,
    degrade: tuple[str, ...] = DEFAULT_DEGRADE,
    pool: tuple[str, ...] = ("clean",),
    max_error: float = 0.05,
    progress: bool = True,
    cache_dir: Path | None = SCORE_CACHE,
    log=print,
) -> CalibrationFile:
    one = as_labels([e.key for e in entries])
    pool = tuple(dict.fromkeys(pool)) or ("clean",)
    scores = {
        k: np.concatenate([
            cached_scores(d, entries, audio_dir, cond, progress=progress, cache_dir=cache_dir)
            for cond in pool
        ])
        for k, d in detectors.items()
    }  # fmt: skip
    labels = np.tile(one, len(pool))
    fitted_on = {
        "protocol_sha256": _protocol_tag(entries, audio_dir),
        "n_bonafide": int((one == 0).sum()),
        "n_spoof": int((one == 1).sum()),
        "max_error": max_error,
        "degrade": list(degrade),
        "pool": list(pool),
    }
    cal = fit_calibration_file(
        scores, labels, weights_sha256={k: d.spec.sha256 for k, d in detectors.items()},
        fitted_on=fitted_on, max_error=max_error,
    )  # fmt: skip
    full = cal.fusion.select(tuple(detectors))
    widen: dict[str, float] = {}
    for cond in degrade:
        code = WARNING_OF.get(cond)
        if code is None:
            raise ValueError(f"{cond}: no input warning matches it; use {', '.join(WARNING_OF)}")
        deg = {
            k: cached_scores(d, entries, audio_dir, cond, progress=progress, cache_dir=cache_dir)
            for k, d in detectors.items()
        }
        bands = choose_bands(full.apply(deg), one, max_error=max_error)
        by = widening(full.bands, bands)
        log(f"{cond}: dev EER {100 * eer(full.apply(deg), one):.1f} %, widen {code} by {by:.2f}")
        widen[code] = max(widen.get(code, 0.0), by)
    return CalibrationFile(cal.models, cal.fusion, cal.fitted_on, cal.version, widen)


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
    folds = [attacks.index(e.system) if y == 1 else fold_of[e.speaker] for e, y in zip(entries, one)]
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


def _band_stats(p: np.ndarray, y: np.ndarray, bands: Bands) -> dict:
    confident = (p < bands.lo) | (p > bands.hi)
    wrong = confident & ((p > bands.hi) != (y == 1))
    n_conf = int(confident.sum())
    return {
        "uncertain_share": float(1 - confident.mean()),
        "error_rate_outside": float(wrong.sum() / n_conf) if n_conf else None,
        "n_confident": n_conf,
    }


def measure(
    cal: CalibrationFile,
    scores: Mapping[str, np.ndarray],
    labels,
) -> dict:
    """EER, Cllr, min Cllr, ECE (10 bins, balanced), reliability and band shares"""
    y = as_labels(labels)
    out: dict = {"models": {}, "n_bonafide": int((y == 0).sum()), "n_spoof": int((y == 1).sum())}

    def metrics(raw: np.ndarray, p: np.ndarray) -> dict:
        rel = reliability(p, y, 10)
        return {
            "eer": float(eer(raw, y)),
            "cllr": float(cllr(p, y)),
            "min_cllr": float(min_cllr(raw, y)),
            "ece": float(ece(p, y, 10)),
            "ece_ci95": list(ece_interval(p, y, 10)),
            "reliability": rel.to_json(),
        }

    for k in sorted(scores):
        p = cal.models[k].calibration.apply(scores[k])
        out["models"][k] = metrics(scores[k], np.asarray(p))
    if cal.fusion is not None:
        fused = cal.fusion.select(tuple(scores))
        p = np.asarray(fused.apply(scores))
        out["combined"] = {**metrics(p, p), **_band_stats(p, y, fused.bands), "models": list(fused.models),
                           "bands": fused.bands.to_json()}  # fmt: skip
    return out
