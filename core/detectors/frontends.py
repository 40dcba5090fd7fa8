"""Front ends: what turns a window of 16 kHz audio into a network's input, and its grid.

A front end owns everything that depends on the kind of input a network reads, so no
other module compares front-end names:

* ``transform``: windows (B, input_length) -> the network input;
* the explanation geometry: the grid a dense map lives on (``grid_shape``), the
  interpretable features (``features``), what a removed feature becomes (``baseline``),
  how an attribution in the input's shape or a Grad-CAM map reaches that grid
  (``to_grid``, ``cam_to_grid``, the same upsampling as Captum's
  LayerAttribution.interpolate: linear for (N, C, T), bilinear for (N, C, H, W));
* the training data: whole-file items (``load_items``, with a disk cache for
  spectrograms), the crop length on their last axis (``crop_length``) and how crops
  become a batch (``collate``).

``name`` ("waveform" | "cqt") is part of stored verdict keys: never change it.

    fe = WaveformFrontEnd(96_000)
    x = fe.transform(windows)          # (B, 96000)
    fe = CQTFrontEnd(102_400)
    x = fe.transform(windows)          # (B, 1, 432, 401) dB
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from core.audio.decode import SAMPLE_RATE
from core.audio.features import (
    CQT_BINS,
    CQT_BINS_PER_OCTAVE,
    CQT_HOP,
    cqt_batch,
    cqt_frequencies,
)
from core.audio.protocol import ProtocolEntry, load_cqts, load_waveforms


@dataclass(frozen=True)
class FrontEnd(abc.ABC):
    """Base class; subclasses set the class attributes and the abstract methods."""

    input_length: int  # samples at 16 kHz in one network window

    name: ClassVar[str]  # stored in verdict keys: "waveform" | "cqt"
    feature_kind: ClassVar[str]  # "time" | "time-frequency" (Explanation.feature_kind)
    baseline_name: ClassVar[str]  # what a removed feature is replaced by, in words
    raw_waveform: ClassVar[bool]  # training crops are samples (waveform augmentation)
    crop_note: ClassVar[str]  # appended to the training sidecar's crop description

    def __str__(self) -> str:
        return self.name

    def with_length(self, input_length: int) -> "FrontEnd":
        """the same front end on windows of another length (short test windows)"""
        return dataclasses.replace(self, input_length=int(input_length))

    @property
    @abc.abstractmethod
    def grid_shape(self) -> tuple[int, ...]:
        """shape of a dense map on the input grid: (samples,) or (bins, frames)"""

    @property
    def input_shape(self) -> tuple[int, ...]:
        """network input of one window, without the batch axis"""
        return self.grid_shape

    @abc.abstractmethod
    def transform(self, windows: torch.Tensor | np.ndarray) -> torch.Tensor:
        """windows : shape = (B, input_length) -> network input (B, *input_shape)"""

    def to_grid(self, attr: torch.Tensor) -> torch.Tensor:
        """an attribution shaped like one input (1, *input_shape) -> grid_shape"""
        return attr.reshape(attr.shape[-len(self.grid_shape) :])

    @abc.abstractmethod
    def cam_to_grid(self, cam: torch.Tensor) -> np.ndarray:
        """Grad-CAM at the layer's resolution, (1, 1, T') or (1, 1, H', W') -> grid"""

    @abc.abstractmethod
    def baseline(self, x: torch.Tensor) -> torch.Tensor:
        """what every removed feature takes: a tensor shaped like x (1, *input_shape)"""

    @abc.abstractmethod
    def features(
        self, x: torch.Tensor, *, segments: int, bands: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        """
        interpretable features of one input x (1, *input_shape)

        Returns (mask, bounds): mask int64 shaped like x, feature id 0..F-1 per element;
        bounds (F, 2) [t0, t1] or (F, 4) [t0, t1, f0, f1], seconds from the window start
        and Hz
        """

    @abc.abstractmethod
    def load_items(
        self,
        entries: list[ProtocolEntry],
        audio_dir: str | Path,
        *,
        cache_dir: Path | None = None,
        progress: bool = False,
    ) -> list[np.ndarray]:
        """one whole-file training item per entry; crops are taken on its last axis"""

    @abc.abstractmethod
    def crop_length(self, n_samples: int | None = None) -> int:
        """length on the items' last axis of an n-sample crop (None = input_length)"""

    def collate(self, crops: list[np.ndarray]) -> torch.Tensor:
        """equal-length crops of items -> a network input batch (B, *input_shape)"""
        x = torch.from_numpy(np.stack(crops).astype(np.float32, copy=False))
        return x.reshape(len(crops), *self.input_shape[:-1], x.shape[-1])


@dataclass(frozen=True)
class WaveformFrontEnd(FrontEnd):
    """Raw samples in: Res-TSSDNet 1D, AASIST. Features are equal time segments and a
    removed segment is silence (0.0)."""

    name: ClassVar[str] = "waveform"
    feature_kind: ClassVar[str] = "time"
    baseline_name: ClassVar[str] = "silence"
    raw_waveform: ClassVar[bool] = True
    crop_note: ClassVar[str] = ""

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (self.input_length,)

    def transform(self, windows: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(windows, np.ndarray):
            windows = np.ascontiguousarray(windows, dtype=np.float32)
        return torch.as_tensor(windows, dtype=torch.float32)

    def cam_to_grid(self, cam: torch.Tensor) -> np.ndarray:
        """
        (1, 1, T') -> every sample, linearly. (1, 1, H', T') (AASIST: spectral rows x
        time) -> time upsampled to every sample, then the mean over rows
        """
        n = self.input_length
        if cam.dim() == 3:
            return F.interpolate(cam, n, mode="linear")[0, 0].numpy()
        up = F.interpolate(cam, (cam.shape[-2], n), mode="bilinear")
        return up[0, 0].mean(dim=0).numpy()

    def baseline(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def features(
        self, x: torch.Tensor, *, segments: int, bands: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        n = x.shape[-1]
        if not 1 <= segments <= n:
            raise ValueError(f"segments must be between 1 and {n}, not {segments}")
        edges = np.round(np.linspace(0, n, segments + 1)).astype(int)
        mask = torch.from_numpy(np.repeat(np.arange(segments), np.diff(edges)))
        bounds = np.stack([edges[:-1], edges[1:]], axis=1) / SAMPLE_RATE
        return mask.reshape(x.shape), bounds.astype(np.float64)

    def load_items(self, entries, audio_dir, *, cache_dir=None, progress=False):
        return load_waveforms(entries, audio_dir, progress=progress)  # nothing to cache

    def crop_length(self, n_samples: int | None = None) -> int:
        return int(n_samples or self.input_length)


@dataclass(frozen=True)
class CQTFrontEnd(FrontEnd):
    """
    CQT log power (core.audio.features): 432 bins x (1 + n // 256) frames, as the 2D
    Res-TSSDNet reads it. Features are time x frequency patches; a removed patch takes
    the window's mean spectrum (each bin's mean over frames, dB): silence in log power
    is -300 dB, far outside anything the net saw in training.
    """

    name: ClassVar[str] = "cqt"
    feature_kind: ClassVar[str] = "time-frequency"
    baseline_name: ClassVar[str] = "mean spectrum of the window (dB, per bin)"
    raw_waveform: ClassVar[bool] = False
    crop_note: ClassVar[str] = "; CQT cropped in the spectrogram domain"

    @property
    def n_bins(self) -> int:
        return CQT_BINS

    @property
    def hop(self) -> int:
        """samples between frames; frame k is centred on sample k * hop"""
        return CQT_HOP

    @property
    def n_frames(self) -> int:
        return self.crop_length()

    @property
    def frequencies(self) -> np.ndarray:
        """centre frequency of each bin, Hz, shape = (n_bins,)"""
        return cqt_frequencies(self.n_bins)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (self.n_bins, self.n_frames)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.n_bins, self.n_frames)

    def transform(self, windows: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(windows, torch.Tensor):
            windows = windows.detach().cpu().numpy()
        return cqt_batch(np.asarray(windows, dtype=np.float32))

    def cam_to_grid(self, cam: torch.Tensor) -> np.ndarray:
        """(1, 1, H', W') -> (bins, frames), bilinearly"""
        if cam.dim() != 4:
            raise ValueError(f"a CQT Grad-CAM map is 2-D, got shape {list(cam.shape)}")
        return F.interpolate(cam, self.grid_shape, mode="bilinear")[0, 0].numpy()

    def baseline(self, x: torch.Tensor) -> torch.Tensor:
        # the window's mean spectrum, the same in every frame
        return x.mean(dim=-1, keepdim=True).expand_as(x).contiguous()

    def features(
        self, x: torch.Tensor, *, segments: int, bands: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        """
        a grid of segments // bands time segments by bands frequency bands, feature id =
        time_index * bands + band_index; band edges lie half a bin outside the outer
        bins' centre frequencies
        """
        n_bins, n_frames = x.shape[-2], x.shape[-1]
        if not 1 <= bands <= n_bins:
            raise ValueError(f"bands must be between 1 and {n_bins}, not {bands}")
        n_time = max(segments // bands, 1)
        if n_time > n_frames:
            limit = n_frames * bands
            raise ValueError(f"segments must be at most {limit}, not {segments}")
        t_edges = np.round(np.linspace(0, n_frames, n_time + 1)).astype(int)
        f_edges = np.round(np.linspace(0, n_bins, bands + 1)).astype(int)
        t_ids = np.repeat(np.arange(n_time), np.diff(t_edges))  # (frames,)
        f_ids = np.repeat(np.arange(bands), np.diff(f_edges))  # (bins,)
        mask = torch.from_numpy(t_ids[None, :] * bands + f_ids[:, None])  # (bins, fr.)
        freqs = cqt_frequencies(n_bins)
        half_bin = 2.0 ** (0.5 / CQT_BINS_PER_OCTAVE)
        t_sec = np.minimum(t_edges * self.hop, self.input_length) / SAMPLE_RATE
        bounds = [
            [
                t_sec[t],
                t_sec[t + 1],
                freqs[f_edges[b]] / half_bin,
                freqs[f_edges[b + 1] - 1] * half_bin,
            ]
            for t in range(n_time)
            for b in range(bands)
        ]
        return mask.reshape(x.shape), np.asarray(bounds, dtype=np.float64)

    def load_items(self, entries, audio_dir, *, cache_dir=None, progress=False):
        """whole-file spectrograms, cached under cache_dir/cqt/: a CQT per training step
        would cost more than the network"""
        cache = None if cache_dir is None else Path(cache_dir) / self.name
        return load_cqts(entries, audio_dir, cache_dir=cache, progress=progress)

    def crop_length(self, n_samples: int | None = None) -> int:
        return 1 + int(n_samples or self.input_length) // self.hop
