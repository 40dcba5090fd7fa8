"""CQT log-power front end of the 2D Res-TSSDNet (Hua, Teoh, Zhang, IEEE SPL 2021).

The constant-Q transform is computed octave by octave, as librosa does: the top octave's
48 complex filters are applied at 16 kHz, then the signal is halved in rate with soxr and
the same filters give the next octave down. Filters are short (at most ~290 taps) so a
strided conv1d does the work; this keeps the lowest bins (15 Hz, Q ~ 69) affordable.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import soxr
import torch
import torch.nn.functional as F

from core.audio.decode import SAMPLE_RATE

PRE_EMPHASIS = 0.97
CQT_HOP = 256  # samples at 16 kHz: 16 ms per frame
CQT_BINS = 432
CQT_BINS_PER_OCTAVE = 48
CQT_FMIN = 15.0  # Hz
CQT_N_SAMPLES = 102_400  # 6.4 s at 16 kHz -> 400 frames: the paper's 432 x 400 input
LOG_EPS = 1e-30


def cqt_frequencies(
    n_bins: int = CQT_BINS, fmin: float = CQT_FMIN, bins_per_octave: int = CQT_BINS_PER_OCTAVE
) -> np.ndarray:
    """centre frequency of each bin, Hz, shape = (n_bins,)"""
    return fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)


@lru_cache(maxsize=4)
def _octave_kernels(bins_per_octave: int, top_fmin: float, n_in_octave: int):
    """
    Complex filters (real, imag stacked) for one octave at 16 kHz.

    Returns (weight, length): weight shape = (2 * n_in_octave, 1, length), float32,
    filters centred in an odd-length support. Each is a Hann-windowed complex exponential
    normalised to unit L1 norm, so a full-scale sinusoid at the bin frequency gives
    magnitude ~0.5 at every octave.
    """
    q = 1.0 / (2.0 ** (1.0 / bins_per_octave) - 1.0)
    freqs = top_fmin * 2.0 ** (np.arange(n_in_octave) / bins_per_octave)
    lengths = np.ceil(q * SAMPLE_RATE / freqs).astype(int)
    length = int(lengths.max()) | 1  # odd, so a centre tap exists
    weight = np.zeros((2 * n_in_octave, 1, length), dtype=np.float64)
    for i, (f, n) in enumerate(zip(freqs, lengths)):
        t = np.arange(n) - (n - 1) / 2.0
        win = np.hanning(n + 2)[1:-1]  # no zero end taps
        kern = win * np.exp(2j * np.pi * f * t / SAMPLE_RATE) / win.sum() * np.sqrt(n)
        off = (length - n) // 2
        # conv1d is a correlation: use the conjugate so the output is the inner product
        weight[i, 0, off : off + n] = kern.real
        weight[n_in_octave + i, 0, off : off + n] = -kern.imag
    return torch.from_numpy(weight.astype(np.float32)), length


def pre_emphasis(x: np.ndarray, coef: float = PRE_EMPHASIS) -> np.ndarray:
    """y[n] = x[n] - coef * x[n-1], y[0] = x[0]"""
    return np.concatenate([x[..., :1], x[..., 1:] - coef * x[..., :-1]], axis=-1)


def cqt_magnitude(x: np.ndarray, *, hop: int = CQT_HOP) -> np.ndarray:
    """
    Constant-Q magnitude of one signal (no pre-emphasis).

    x : np.ndarray, shape = (n_samples,), 16 kHz
    returns np.ndarray, shape = (CQT_BINS, 1 + n_samples // hop), float32: frames are
    centred on multiples of hop, as librosa's (zero padding at both ends)
    """
    n_octaves = math.ceil(CQT_BINS / CQT_BINS_PER_OCTAVE)
    assert hop % 2 ** (n_octaves - 1) == 0, "hop must survive halving once per octave"
    freqs = cqt_frequencies()
    n_frames = 1 + len(x) // hop
    out = np.zeros((CQT_BINS, n_frames), dtype=np.float32)
    y = np.asarray(x, dtype=np.float32)
    for octave in range(n_octaves):
        hi = CQT_BINS - octave * CQT_BINS_PER_OCTAVE
        lo = max(hi - CQT_BINS_PER_OCTAVE, 0)
        if octave > 0:
            y = soxr.resample(y, 2, 1, quality="HQ")  # halve the rate, keep amplitude
        # the same filters serve every octave: frequencies and rate both halve
        top_fmin = freqs[lo] * 2**octave
        weight, length = _octave_kernels(CQT_BINS_PER_OCTAVE, float(top_fmin), hi - lo)
        step = hop // 2**octave
        sig = torch.from_numpy(np.ascontiguousarray(y)).view(1, 1, -1)
        sig = F.pad(sig, (length // 2, length // 2 + step))
        with torch.no_grad():
            resp = F.conv1d(sig, weight, stride=step)[0]  # (2 * bins, frames)
        nb = hi - lo
        # sqrt(2**octave): the filter's length at 16 kHz is 2**octave times longer
        mag = torch.sqrt(resp[:nb] ** 2 + resp[nb:] ** 2).numpy() * 2 ** (octave / 2)
        m = min(n_frames, mag.shape[1])
        out[lo:hi, :m] = mag[:, :m]
    return out


def cqt_log_power(x: np.ndarray) -> np.ndarray:
    """
    The 2D Res-TSSDNet input: pre-emphasis 0.97, CQT, 10 log10(|X|^2 + 1e-30).

    x : np.ndarray, shape = (n_samples,), 16 kHz
    returns np.ndarray, shape = (432, 1 + n_samples // 256), float32, dB
    """
    mag = cqt_magnitude(pre_emphasis(np.asarray(x, dtype=np.float32)))
    return (10.0 * np.log10(mag.astype(np.float64) ** 2 + LOG_EPS)).astype(np.float32)


def cqt_batch(batch: np.ndarray) -> torch.Tensor:
    """
    batch : np.ndarray, shape = (n, n_samples)
    returns torch.Tensor, shape = (n, 1, 432, n_frames)
    """
    return torch.from_numpy(np.stack([cqt_log_power(b) for b in batch]))[:, None]
