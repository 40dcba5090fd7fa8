"""Measuring a calibration on a held-out protocol, exactly as the app decides each file.

``measure(cal, scores, labels)``: EER, Cllr, min Cllr, ECE (with a bootstrap interval) and
a reliability table per model and for the fusion. ``measure_verdicts`` adds what an
analyst meets: every file goes through core.judgement.combined.combine with its input
warnings (core.audio.quality, measured on the decoded file), the models' disagreement and
its unfamiliarity, and the file's band is counted: confident and wrong, confident,
uncertain, too short; per source too when the protocol's first column names sources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from core.audio.decode import load_audio
from core.audio.protocol import ProtocolEntry, audio_path
from core.audio.quality import assess
from core.detectors.detect import Verdict
from core.judgement.calibration import (
    Bands,
    as_labels,
    cllr,
    ece,
    ece_interval,
    eer,
    min_cllr,
    reliability,
)
from core.judgement.calibration_file import CalibrationFile
from core.judgement.combined import combine


def _metrics(raw: np.ndarray, p: np.ndarray, y: np.ndarray) -> dict:
    return {
        "eer": float(eer(raw, y)),
        "cllr": float(cllr(p, y)),
        "min_cllr": float(min_cllr(raw, y)),
        "ece": float(ece(p, y, 10)),
        "ece_ci95": list(ece_interval(p, y, 10)),
        "reliability": reliability(p, y, 10).to_json(),
    }


def _band_stats(p: np.ndarray, y: np.ndarray, bands: Bands) -> dict:
    confident = (p < bands.lo) | (p > bands.hi)
    wrong = confident & ((p > bands.hi) != (y == 1))
    n_conf = int(confident.sum())
    return {
        "uncertain_share": float(1 - confident.mean()),
        "error_rate_outside": float(wrong.sum() / n_conf) if n_conf else None,
        "n_confident": n_conf,
    }


def measure(cal: CalibrationFile, scores: Mapping[str, np.ndarray], labels) -> dict:
    """EER, Cllr, min Cllr, ECE (10 bins, balanced), reliability and band shares"""
    y = as_labels(labels)
    out: dict = {"models": {}, "n_bonafide": int((y == 0).sum()), "n_spoof": int((y == 1).sum())}
    for k in sorted(scores):
        p = cal.models[k].calibration.apply(scores[k])
        out["models"][k] = _metrics(scores[k], np.asarray(p), y)
    if cal.fusion is not None:
        fused = cal.fusion.select(tuple(scores))
        p = np.asarray(fused.apply(scores))
        out["combined"] = {**_metrics(p, p, y), **_band_stats(p, y, fused.bands),
                           "models": list(fused.models),
                           "bands": fused.bands.to_json()}  # fmt: skip
    return out


def verdict_counts(bands: list[str], y: np.ndarray) -> dict:
    """shares of files by what the verdict said, and how often a confident call was wrong"""
    b = np.array(bands)
    confident = np.isin(b, ("likely_bonafide", "likely_spoof"))
    wrong = confident & ((b == "likely_spoof") != (y == 1))
    n = len(b)
    return {
        "n": n,
        "confident_share": float(confident.mean()) if n else None,
        "confidently_wrong_share": float(wrong.mean()) if n else None,
        "error_rate_outside": float(wrong.sum() / confident.sum()) if confident.any() else None,
        "uncertain_share": float((b == "uncertain").mean()) if n else None,
        "too_short_share": float((b == "too_short").mean()) if n else None,
        "confidently_wrong_spoof_called_bonafide": int((wrong & (y == 1)).sum()),
        "confidently_wrong_bonafide_called_spoof": int((wrong & (y == 0)).sum()),
    }


def measure_verdicts(
    cal: CalibrationFile,
    familiarity,
    outputs: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    *,
    by_source: bool = False,
    progress: bool = True,
) -> dict:
    """
    outputs : model -> (whole-file P(spoof), (n, d) embeddings or None), protocol order.
    Returns measure()'s numbers plus "verdict": verdict_counts over all files, the share
    flagged by each judgement warning, and with ``by_source`` the same per source.
    """
    y = as_labels([e.key for e in entries])
    keys = sorted(outputs)
    out = measure(cal, {k: outputs[k][0] for k in keys}, y)
    it = range(len(entries))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="verdicts", unit="file", dynamic_ncols=True)
    bands, p, flags = [], [], {"models_disagree": 0, "unfamiliar_audio": 0}
    for i in it:
        e = entries[i]
        audio = load_audio(audio_path(audio_dir, e))
        quality = assess(audio.samples, orig_sample_rate=audio.orig_sample_rate,
                         orig_format=audio.orig_format)  # fmt: skip
        verdicts = {}
        for k in keys:
            s, emb = outputs[k]
            sha = cal.models[k].weights_sha256 if k in cal.models else ""
            verdicts[k] = Verdict(k, sha, float(s[i]), "spoof" if s[i] >= 0.5 else "bonafide",
                                  float(s[i]), 0,
                                  embedding=None if emb is None else tuple(map(float, emb[i])))
        c = combine(verdicts, quality, cal, familiarity=familiarity)
        bands.append(c.band)
        p.append(np.nan if c.p_spoof is None else c.p_spoof)
        for w in c.warnings:
            flags[w["code"]] = flags.get(w["code"], 0) + 1
    p = np.array(p)
    out["verdict"] = verdict_counts(bands, y)
    out["verdict"]["flagged_share"] = {k: v / len(entries) for k, v in flags.items()}
    if by_source:
        src = np.array([e.speaker for e in entries])
        out["verdict"]["per_source"] = {
            s: {**verdict_counts([b for b, m in zip(bands, src == s) if m], y[src == s]),
                "ece": (float(ece(p[src == s], y[src == s], 10))
                        if len(set(y[src == s].tolist())) == 2 else None)}
            for s in sorted(set(src.tolist()))
        }  # fmt: skip
    return out
