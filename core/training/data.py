"""In-memory training data: whole-file items drawn as cropped, optionally augmented batches.

``TrainData`` holds whole-file items (waveforms or spectrograms, as the architecture's
front end loads them: core.detectors.frontends) and draws cropped batches from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from core.audio.protocol import ProtocolEntry, crop_or_tile, load_waveforms
from core.detectors.frontends import FrontEnd
from core.detectors.registry import ARCHS, PROJECT_ROOT

CACHE_DIR = PROJECT_ROOT / "cache"  # front ends cache whole-file features under it


@dataclass
class TrainData:
    """Whole-file inputs plus targets in the architecture's own label order."""

    items: list[np.ndarray]  # per file: (n_samples,) waveform or the front end's features
    targets: np.ndarray  # (n_files,) int64 class index
    length: int  # crop length on the items' last axis (samples or frames)
    is_spoof: np.ndarray  # (n_files,) bool
    front_end: FrontEnd  # how crops become a batch
    raw: bool = False  # items are waveforms even for a feature front end (augmentation)

    def batch(
        self,
        idx: np.ndarray,
        rng: np.random.Generator | None,
        *,
        augment: Callable[..., np.ndarray] | None = None,
        epoch: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        idx : indices into items; rng None = deterministic first-window crops.
        augment : e.g. core.training.augment.Augmenter, called on each waveform crop as
            ``augment(crop, key=(epoch, file_index))``; needs waveform items
        returns x : (B, *front_end.input_shape), y : (B,) int64
        """
        crops = [crop_or_tile(self.items[i], self.length, rng) for i in idx]
        waveforms = self.raw or self.front_end.raw_waveform
        if augment is not None and rng is not None:
            if not waveforms:
                raise ValueError("augmentation needs waveform items (load them raw)")
            crops = [augment(c, key=(epoch, int(i))) for c, i in zip(crops, idx)]
        if self.raw and not self.front_end.raw_waveform:
            x = self.front_end.transform(np.stack(crops))
        else:
            x = self.front_end.collate(crops)
        return x, torch.from_numpy(self.targets[idx])


def class_weights(data: TrainData) -> torch.Tensor:
    """inverse class frequency, normalised so a balanced set gets weights (1, 1); (2,)"""
    counts = np.bincount(data.targets, minlength=2).astype(np.float64)
    if (counts == 0).any():
        raise ValueError("training data must hold both bona fide and spoof files")
    return torch.tensor(counts.sum() / (2.0 * counts), dtype=torch.float32)


def load_train_data(
    arch: str,
    groups: list[tuple[list[ProtocolEntry], str | Path]],
    *,
    crop: int | None = None,
    raw: bool = False,
    progress: bool = False,
) -> TrainData:
    """
    groups : (entries, audio dir) pairs, concatenated in order
    crop : input length in samples (default: the model's); dev data keeps the default
    raw : keep waveforms even for a feature front end (on-the-fly augmentation computes
        the features per crop instead of cropping cached ones)
    """
    a = ARCHS[arch]
    fe = a.front_end
    entries = [e for group, _ in groups for e in group]
    items: list[np.ndarray] = []
    for group, audio_dir in groups:
        if raw and not fe.raw_waveform:
            items += load_waveforms(group, audio_dir, progress=progress)
        else:
            items += fe.load_items(group, audio_dir, cache_dir=CACHE_DIR, progress=progress)
    is_spoof = np.array([e.is_spoof for e in entries], dtype=bool)
    targets = np.where(is_spoof, a.spoof_index, 1 - a.spoof_index).astype(np.int64)
    length = int(crop or fe.input_length) if raw else fe.crop_length(crop)
    return TrainData(
        items=items, targets=targets, length=length, is_spoof=is_spoof, front_end=fe,
        raw=raw,
    )  # fmt: skip
