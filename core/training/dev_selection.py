"""Dev under degradations, for choosing the training epoch (``train --dev-degrade``).

Clean in-domain dev favours models that break on other channels, so a run can also
score dev degraded a few ways (core.training.augment conditions, each file degraded once with the
seed ``evaluate --degrade`` uses for it) and keep the epoch with the lowest mean EER over
clean and degraded dev. Dev only: nothing here reads eval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.audio.protocol import ProtocolEntry, load_waveforms
from core.detectors.detect import p_spoof_from_logits
from core.detectors.registry import ARCHS
from core.judgement.metrics import compute_eer, matched_eer
from core.training.data import TrainData, load_train_data


def load_degraded_dev(
    arch: str,
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    conditions: tuple[str, ...],
    *,
    progress: bool = False,
) -> dict[str, TrainData]:
    """
    {condition: dev data degraded that way}: each whole file degraded once with the seed
    ``evaluate --degrade`` uses for it (core.training.robustness.condition_seed), then scored
    like clean dev (first window); feature front ends transform each degraded crop.
    """
    from core.training.augment import parse_degradation
    from core.training.robustness import condition_seed

    if not conditions:
        return {}
    a = ARCHS[arch]
    waves = load_waveforms(entries, audio_dir, progress=progress)
    is_spoof = np.array([e.is_spoof for e in entries], dtype=bool)
    targets = np.where(is_spoof, a.spoof_index, 1 - a.spoof_index).astype(np.int64)
    out = {}
    for cond in conditions:
        f = parse_degradation(cond)
        items = [
            f(x, np.random.default_rng(condition_seed(e.file_id, cond)))
            for x, e in zip(waves, entries)
        ]
        out[cond] = TrainData(
            items=items, targets=targets, length=a.front_end.input_length,
            is_spoof=is_spoof, front_end=a.front_end, raw=not a.front_end.raw_waveform,
        )  # fmt: skip
    return out


def selection_score(
    dev_eer: float, condition_eers: dict[str, float], matched_eers: dict[str, float] | None = None
) -> float:
    """
    what picks the epoch: the mean EER over clean dev and each degraded dev, averaged
    (one half each) with the mean matched EER of the --matched-dev sets when there are any
    """
    base = float(np.mean([dev_eer, *condition_eers.values()]))
    if not matched_eers:
        return base
    return float(np.mean([base, float(np.mean(list(matched_eers.values())))]))


def load_matched_dev(
    arch: str, entries: list[ProtocolEntry], audio_dir: str | Path, *, progress: bool = False
) -> tuple[TrainData, np.ndarray]:
    """a dev set scored per source (its first column): (data as the front end loads it, sources)"""
    data = load_train_data(arch, [(entries, audio_dir)], progress=progress)
    return data, np.array([e.speaker for e in entries])


def evaluate_matched(
    net, data: TrainData, sources: np.ndarray, *, spoof_index: int, device
) -> float:
    """matched EER (fraction) of one deterministic crop per file; one-sided sources left out"""
    m = matched_eer(crop_scores(net, data, spoof_index=spoof_index, device=device),
                    data.is_spoof, sources)  # fmt: skip
    if m["matched"] is None:
        raise ValueError("a --matched-dev set has no source with both bona fide and spoofs")
    return m["matched"] / 100.0


def crop_scores(
    net: nn.Module, data: TrainData, *, spoof_index: int, device: torch.device,
    batch_size: int = 16,
) -> np.ndarray:
    """P(spoof) of one deterministic crop per file (the first window, tiled if short); eval mode"""
    return _crop_pass(net, data, spoof_index=spoof_index, device=device, batch_size=batch_size)[0]


def _crop_pass(net, data, *, spoof_index, device, batch_size, weights=None):
    net.eval()
    p, losses = [], []
    with torch.no_grad():
        for i in range(0, len(data.items), batch_size):
            idx = np.arange(i, min(i + batch_size, len(data.items)))
            x, y = data.batch(idx, None)
            logits = net(x.to(device)).float().cpu()
            if weights is not None:
                losses.append(F.cross_entropy(logits, y, weight=weights, reduction="sum").item())
            p.append(p_spoof_from_logits(logits, spoof_index).numpy())
    return np.concatenate(p), losses


def evaluate_crops(
    net: nn.Module,
    data: TrainData,
    *,
    spoof_index: int,
    weights: torch.Tensor,
    device: torch.device,
    batch_size: int = 16,
) -> tuple[float, float]:
    """(EER, weighted CE loss) from one deterministic crop per file; eval mode"""
    scores, losses = _crop_pass(net, data, spoof_index=spoof_index, device=device,
                                batch_size=batch_size, weights=weights)  # fmt: skip
    eer = compute_eer(scores[~data.is_spoof], scores[data.is_spoof]).eer
    # weighted-mean normalisation, as F.cross_entropy's default reduction
    norm = float(weights[torch.from_numpy(data.targets)].sum())
    return eer, sum(losses) / norm
