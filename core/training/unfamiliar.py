"""Fitting the "unfamiliar audio" measure (core.judgement.familiarity) during calibration.

For each model: a Gaussian of its embeddings of training files (what it learned from),
then each dev file's distance from it. Per model the distance is divided by its 95th
percentile on clean dev ("scale"); a file's unfamiliarity is the largest ratio over the
models, and the threshold is the 95th percentile of that on clean dev, so at most 5 % of
in-domain dev files are flagged. Returned with the dev rows above the threshold (every
pooled condition), on which the calibration measures how far the band must widen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from core.audio.protocol import ProtocolEntry
from core.judgement.familiarity import FAMILIARITY_NAME, Familiarity, fit_gaussian, unfamiliarity

MAX_TRAIN_FILES = 300  # per training protocol (a seeded sample): the Gaussian needs no more
FLAG_QUANTILE = 0.95  # of clean in-domain dev: at most 5 % of those files are flagged


def sample_entries(entries: list[ProtocolEntry], n: int = MAX_TRAIN_FILES) -> list[ProtocolEntry]:
    """at most n entries, a fixed random sample (seed 0) in protocol order"""
    if len(entries) <= n:
        return list(entries)
    keep = np.sort(np.random.default_rng(0).choice(len(entries), n, replace=False))
    return [entries[i] for i in keep]


def fit_familiarity(
    detectors: Mapping[str, object],
    keys: tuple[str, ...],
    train_sets: list[tuple[list[ProtocolEntry], str | Path]],
    dev_sets: list,
    pool: tuple[str, ...],
    p_rows: np.ndarray,
    labels: np.ndarray,
    *,
    outputs: Callable,
    out: Path | None,
    progress: bool,
    cache_dir: Path | None,
    log=print,
) -> tuple[dict, np.ndarray]:
    """
    (the calibration file's "familiarity" entry, a mask of the flagged dev rows).
    ``p_rows`` / ``labels``: the pooled dev rows, condition-major then dev set, as
    core.training.calibrate.fit lays them out. ``outputs``: its cached_outputs (scores
    and embeddings of a protocol under a condition, cached).
    """
    gaussians = {}
    for k in keys:
        parts = [outputs(detectors[k], sample_entries(e), d, "clean", progress=progress,
                                cache_dir=cache_dir, embeddings=True)[1]
                 for e, d in train_sets]  # fmt: skip
        if any(p is None for p in parts):
            log(f"{k}: no embedding layer found; it takes no part in the unfamiliarity measure")
            continue
        gaussians[k] = (detectors[k].spec.sha256, fit_gaussian(np.concatenate(parts)))
    if not gaussians:
        return {}, np.zeros(len(p_rows), dtype=bool)
    fam = Familiarity(gaussians)
    dist = {}
    for k in gaussians:
        rows = [outputs(detectors[k], d.entries, d.audio_dir, c, progress=progress,
                               cache_dir=cache_dir, embeddings=True)[1]
                for c in pool for d in dev_sets]  # fmt: skip
        dist[k] = gaussians[k][1].distance(np.concatenate(rows))
    n_dev = sum(len(d.entries) for d in dev_sets)
    clean = np.zeros(len(p_rows), dtype=bool)
    c0 = pool.index("clean") if "clean" in pool else 0
    clean[c0 * n_dev : (c0 + 1) * n_dev] = True
    scale = {k: float(np.quantile(d[clean], FLAG_QUANTILE)) for k, d in dist.items()}
    u = np.array([unfamiliarity({k: dist[k][i] for k in dist}, scale) for i in range(len(p_rows))])
    threshold = float(np.quantile(u[clean], FLAG_QUANTILE))
    flagged = u > threshold
    entry = {
        "file": FAMILIARITY_NAME if out is None else Path(out).name,
        "scale": scale,
        "threshold": threshold,
        "n_train": {k: g.n_train for k, (_, g) in gaussians.items()},
        "dev_flagged_share": {"clean": float(flagged[clean].mean()),
                              "all_pooled": float(flagged.mean())},
    }  # fmt: skip
    if out is not None:
        entry["sha256"] = fam.save(out)
    log(f"unfamiliarity: threshold {threshold:.3f} (flags {100 * flagged[clean].mean():.1f} % of "
        f"clean dev, {100 * flagged.mean():.1f} % of pooled dev rows)")
    return entry, flagged
