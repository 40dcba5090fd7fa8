"""Dev under degradations, for choosing the training epoch (``train --dev-degrade``).

Clean in-domain dev favours models that break on other channels, so a run can also
score dev degraded a few ways (core.augment conditions, each file degraded once with the
seed ``evaluate --degrade`` uses for it) and keep the epoch with the lowest mean EER over
clean and degraded dev. Dev only: nothing here reads eval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import ProtocolEntry, TrainData, load_waveforms
from .registry import ARCHS


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
    ``evaluate --degrade`` uses for it (core.robustness.condition_seed), then scored
    like clean dev (first window); feature front ends transform each degraded crop.
    """
    from .augment import parse_degradation
    from .robustness import condition_seed

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


def selection_score(dev_eer: float, condition_eers: dict[str, float]) -> float:
    """what picks the epoch: mean EER over clean dev and each degraded dev"""
    return float(np.mean([dev_eer, *condition_eers.values()]))
