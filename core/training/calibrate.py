"""Fitting the calibration file from dev scores, and measuring it on another protocol.

``fit(models, dev_entries, dev_dir, degrade=[...], pool=[...])`` scores every dev file
with each model (whole-file P(spoof), exactly as users get it), fits per-model Platt
maps, the all-subset logistic fusion and its bands (core.judgement.calibration), then scores dev
again under each degradation to learn how far the band must widen when the matching
input warning fires. ``pool`` fits on dev under several conditions at once (clean dev
plus, e.g., noisy and MP3 copies of it): the fusion then weighs each model by how well
it holds up across channels, not by clean in-domain dev alone, which favours the least
robust model; every fitted number still comes from dev. Several dev protocols (DevSet) are
pooled; with two or more sources the bands and widenings come from each source held out in
turn (core.training.held_out), and the unfamiliar-audio measure is fitted on the training
files (core.training.unfamiliar). core.training.measure reports a fit on eval.

Scores are cached under cache/scores/ by model weights, protocol content and condition,
so a refit or a second measurement does not score again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from core.audio.protocol import ProtocolEntry
from core.detectors.registry import PROJECT_ROOT
from core.judgement.calibration import (
    Bands,
    Fusion,
    as_labels,
    choose_bands,
    eer,
    log_odds,
)
from core.judgement.calibration_file import CalibrationFile, fit_calibration_file
from core.judgement.combined import MAX_WIDEN
from core.training.evaluate import score_protocol
from core.training.held_out import MIN_ROWS, held_out_apply, held_out_p, n_groups, per_source

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


def _cache_path(detector, entries, audio_dir, condition, cache_dir) -> Path | None:
    if cache_dir is None:
        return None
    spec = detector.spec
    tag = _protocol_tag(entries, audio_dir)
    precision = getattr(detector, "precision", "fp32")  # bf16 scores are not fp32's
    arith = "" if precision == "fp32" else f".{precision}"
    return Path(cache_dir) / f"{spec.key}.{spec.sha256[:16]}{arith}.{tag}.{condition}.npy"


def _score(detector, entries, audio_dir, condition, progress) -> list:
    if condition == "clean":
        return score_protocol(detector, entries, audio_dir, progress=progress)
    from core.training.robustness import score_degraded

    return score_degraded(detector, entries, audio_dir, [condition], progress=progress)[condition]


def cached_outputs(
    detector, entries: list[ProtocolEntry], audio_dir: str | Path, condition: str = "clean",
    *, progress: bool = True, cache_dir: Path | None = SCORE_CACHE, embeddings: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """
    (whole-file P(spoof) per entry, and with ``embeddings`` their (n, d) mean window
    embeddings or None where the model has none), in protocol order; cached per weights,
    arithmetic, files and condition (NAME.npy and NAME.emb.npy)
    """
    path = _cache_path(detector, entries, audio_dir, condition, cache_dir)
    emb_path = None if path is None else path.with_suffix(".emb.npy")
    if path is not None and path.exists() and (not embeddings or emb_path.exists()):
        scores = np.load(path)
        return scores, (np.load(emb_path) if embeddings else None)
    scored = _score(detector, entries, audio_dir, condition, progress)
    scores = np.array([s.score for s in scored], dtype=np.float64)
    emb = None
    if all(getattr(s, "embedding", None) is not None for s in scored) and scored:
        emb = np.array([s.embedding for s in scored], dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
        if emb is not None:
            np.save(emb_path, emb)
    return scores, (emb if embeddings else None)


def cached_scores(
    detector, entries: list[ProtocolEntry], audio_dir: str | Path, condition: str = "clean",
    *, progress: bool = True, cache_dir: Path | None = SCORE_CACHE,
) -> np.ndarray:  # fmt: skip
    """whole-file P(spoof) per entry, in protocol order (cached per weights + files)"""
    return cached_outputs(detector, entries, audio_dir, condition, progress=progress,
                          cache_dir=cache_dir)[0]  # fmt: skip


def widening(clean: Bands, degraded: Bands) -> float:
    """log-odds each edge must move out so the degraded dev error target holds"""
    if degraded.hi >= 1.0 or degraded.lo <= 0.0:
        return MAX_WIDEN
    lo_c, hi_c, lo_d, hi_d = log_odds([clean.lo, clean.hi, degraded.lo, degraded.hi])
    by = max(0.0, hi_d - hi_c, lo_c - lo_d)
    return min(by, MAX_WIDEN)


@dataclass(frozen=True)
class DevSet:
    """one dev protocol; ``by_source``: its first column names the source (DemoSpoof pages)"""

    name: str
    entries: list[ProtocolEntry]
    audio_dir: str | Path
    by_source: bool = False

    def sources(self) -> list[str]:
        return [e.speaker if self.by_source else self.name for e in self.entries]


def _widening_on(p, y, rows, bands: Bands, max_error: float) -> float | None:
    """widening() on the rows ``rows`` selects; None when too few rows or one class"""
    yy = y[rows]
    if rows.sum() < MIN_ROWS or yy.min() == yy.max():
        return None
    return widening(bands, choose_bands(p[rows], yy, max_error=max_error))


def fit(
    detectors: Mapping[str, object],
    entries: list[ProtocolEntry] | list[DevSet],
    audio_dir: str | Path | None = None,
    *,
    degrade: tuple[str, ...] = DEFAULT_DEGRADE,
    pool: tuple[str, ...] = ("clean",),
    max_error: float = 0.05,
    progress: bool = True,
    cache_dir: Path | None = SCORE_CACHE,
    familiarity_sets: list[tuple[list[ProtocolEntry], str | Path]] = (),
    familiarity_out: Path | None = None,
    report: dict | None = None,
    log=print,
) -> CalibrationFile:
    """
    Fit on dev: one protocol (entries, audio_dir) or several DevSets, pooled. With two or
    more sources the bands and every widening are chosen on held-out-source outputs
    (core.training.held_out); with ``familiarity_sets`` (the training files) the
    unfamiliarity Gaussians are fitted and saved to ``familiarity_out``. ``report``, when
    given, receives the held-out numbers per source ("held_out_sources", clean dev).
    """
    sets = ([DevSet("dev", list(entries), audio_dir)]
            if entries and isinstance(entries[0], ProtocolEntry) else list(entries))  # fmt: skip
    pool = tuple(dict.fromkeys(pool)) or ("clean",)
    keys = tuple(sorted(detectors))

    def outputs(cond: str, emb: bool = False) -> dict:
        return {k: [cached_outputs(detectors[k], d.entries, d.audio_dir, cond, progress=progress,
                                   cache_dir=cache_dir, embeddings=emb) for d in sets]
                for k in keys}  # fmt: skip

    one = np.concatenate([as_labels([e.key for e in d.entries]) for d in sets])
    src1 = np.concatenate([d.sources() for d in sets])
    per_cond = {c: outputs(c) for c in pool}
    scores = {k: np.concatenate([np.concatenate([o[0] for o in per_cond[c][k]]) for c in pool])
              for k in keys}  # fmt: skip
    labels, groups = np.tile(one, len(pool)), np.tile(src1, len(pool))
    fitted_on = {
        "protocols": [{"name": d.name, "sha256": _protocol_tag(d.entries, d.audio_dir),
                       "by_source": d.by_source, "n": len(d.entries)} for d in sets],
        "sources": sorted(set(src1.tolist())),
        "n_bonafide": int((one == 0).sum()),
        "n_spoof": int((one == 1).sum()),
        "max_error": max_error,
        "degrade": list(degrade),
        "pool": list(pool),
    }  # fmt: skip
    if len(sets) == 1:
        fitted_on["protocol_sha256"] = fitted_on["protocols"][0]["sha256"]
    cal = fit_calibration_file(
        scores, labels, weights_sha256={k: d.spec.sha256 for k, d in detectors.items()},
        fitted_on=fitted_on, max_error=max_error,
    )  # fmt: skip
    # the sources held out in turn: a --matched-protocol's pages ("audio from somewhere
    # new"); a plain protocol is the in-domain anchor every fit keeps (several plain
    # protocols and no matched one: each is held out in turn)
    matched = {s for d in sets if d.by_source for s in d.sources()}
    held_set = matched or set(src1.tolist())
    held = n_groups(src1) >= 2  # then held_set has one source or more to hold out
    hs = held_set if held else None
    fitted_on["held_out_sources"] = sorted(held_set) if held else []
    if held:  # bands from outputs on sources the fit did not see
        subsets = {s: replace(f, bands=choose_bands(held_out_p(scores, labels, groups, s, hs),
                                                    labels, max_error=max_error))
                   for s, f in cal.fusion.subsets.items()}  # fmt: skip
        cal = replace(cal, fusion=Fusion(cal.fusion.models, subsets))
    full = cal.fusion.select(keys)
    p_all = (held_out_p(scores, labels, groups, keys, hs) if held
             else np.asarray(full.apply(scores)))  # fmt: skip
    widen: dict[str, float] = {}
    for cond in degrade:
        code = WARNING_OF.get(cond)
        if code is None:
            raise ValueError(f"{cond}: no input warning matches it; use {', '.join(WARNING_OF)}")
        deg = {k: np.concatenate([o[0] for o in v]) for k, v in outputs(cond).items()}
        p_deg = (held_out_apply(scores, labels, groups, keys, deg, src1, hs) if held
                 else np.asarray(full.apply(deg)))  # fmt: skip
        by = widening(full.bands, choose_bands(p_deg, one, max_error=max_error))
        log(f"{cond}: dev EER {100 * eer(p_deg, one):.1f} %, widen {code} by {by:.2f}")
        widen[code] = max(widen.get(code, 0.0), by)
    # the models disagree: some calibrated P(spoof) above 0.5 and another below
    calibrated = np.stack([cal.models[k].calibration.apply(scores[k]) for k in keys])
    split = (calibrated.max(axis=0) > 0.5) & (calibrated.min(axis=0) < 0.5)
    by = _widening_on(p_all, labels, split, full.bands, max_error) if len(keys) > 1 else None
    fitted_on["models_disagree_rows"] = int(split.sum())
    if by is not None:
        widen["models_disagree"] = by
        log(f"models disagree on {int(split.sum())} of {len(split)} dev rows: widen by {by:.2f}")
    familiarity, flagged = {}, np.zeros(len(labels), dtype=bool)
    if familiarity_sets:
        from core.training.unfamiliar import fit_familiarity

        familiarity, flagged = fit_familiarity(
            detectors, keys, familiarity_sets, sets, pool, p_all, labels, outputs=cached_outputs,
            out=familiarity_out, progress=progress, cache_dir=cache_dir, log=log,
        )  # fmt: skip
        by = _widening_on(p_all, labels, flagged, full.bands, max_error)
        fitted_on["unfamiliar_rows"] = int(flagged.sum())
        if by is not None:
            widen["unfamiliar_audio"] = by
            log(f"unfamiliar audio: {int(flagged.sum())} dev rows above the threshold, "
                f"widen by {by:.2f}")
    if report is not None and held:
        c0 = pool.index("clean") if "clean" in pool else 0
        rows = np.zeros(len(labels), dtype=bool)
        rows[c0 * len(one) : (c0 + 1) * len(one)] = True
        by_row = (split * widen.get("models_disagree", 0.0)
                  + flagged * widen.get("unfamiliar_audio", 0.0))  # fmt: skip
        report["held_out_sources"] = per_source(p_all[rows], labels[rows], groups[rows],
                                                full.bands, np.minimum(by_row[rows], MAX_WIDEN))
        report["held_out_note"] = (
            "clean dev, each source scored by a fusion fitted without it; bands widened "
            "where the models disagree or the audio is unfamiliar (input warnings not applied)")
    return CalibrationFile(cal.models, cal.fusion, cal.fitted_on, cal.version, widen, familiarity)
