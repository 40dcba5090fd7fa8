"""Frame levels and the long-term spectrum of a 16 kHz signal, and what is read from them.

Pure numpy on non-overlapping 20-ms frames (about 2 ms for a 6-s clip): an energy VAD,
the long-term spectrum of the speech frames in 250-Hz bands, the effective bandwidth, the
level drop above the telephone band, a hard low-pass, clipping and the SNR.
core.audio.quality turns these measurements into warnings; the constants here say how
each is measured, the thresholds that make a warning stay there.
"""

from __future__ import annotations

import numpy as np

FRAME_SECONDS = 0.020  # 20-ms frames for the VAD and the long-term spectrum
BAND_HZ = 250.0  # the long-term spectrum is read in 250-Hz bands (5 bins of 50 Hz)

# --- effective bandwidth
# The effective bandwidth is the upper edge of the highest 250-Hz band whose long-term
# level (speech frames only) is within BANDWIDTH_DROP_DB of the loudest band between
# 100 Hz and 4 kHz. Energy-fraction definitions (e.g. 99 % of the energy) do not work
# for speech, whose energy is almost all below 4 kHz even in wide-band recordings.
BANDWIDTH_DROP_DB = 50.0  # dB; clean 16-kHz speech keeps bands up to ~8 kHz within this
BANDWIDTH_FLOOR_DBFS = -110.0  # dB per band: below this a band is empty (16-bit floor)

# --- the level drop above the telephone band
# A band-pass with a gentle slope (e.g. a 6th-order Butterworth 300-3400 Hz applied at
# 16 kHz) leaves the energy above 4.5 kHz only 15-40 dB down, within BANDWIDTH_DROP_DB,
# so the bandwidth looks wide. Measured against the speech itself it shows: the top of
# the speech band is far louder than the band an octave above it. Spectral tilt varies
# by speaker and microphone, so the reference is the top of the speech band, not the
# speech peak.
ROLLOFF_BELOW_HZ = (3_250.0, 4_000.0)  # Hz: top of the telephone band (bands with upper
# edges in this range)
ROLLOFF_ABOVE_HZ = (5_250.0, 6_000.0)  # Hz: an octave up, below the training data's own
# low-pass cuts at 6.3-7.3 kHz (see LOWPASS_MAX_HZ)

# --- a hard low-pass: the mean level of the 500 Hz below a cut-off frequency exceeds
# the mean level of the 1 kHz above it (after one 250-Hz transition band, and never
# above LOWPASS_ABOVE_MAX_HZ) by LOWPASS_DROP_DB.
LOWPASS_MIN_HZ = 4_000.0  # Hz: lower cuts are reported as narrow_band
LOWPASS_MAX_HZ = 6_000.0  # Hz: the training data itself has cuts at 6.3-7.3 kHz
# (LibriSpeech comes from LibriVox MP3s, and resampling to 16 kHz ends near 7.3 kHz), so
# such cuts are in-distribution; MP3 at <= 24 kbit/s cuts lower, at 4-6 kHz
LOWPASS_ABOVE_MAX_HZ = 7_000.0  # Hz: the level above this is not speech in any file
LOWPASS_DROP_DB = 30.0  # dB: the largest such drop on MiniSpoof train + dev is 22 dB
LOWPASS_STEP_DB = 40.0  # dB: and somewhere in 4-6.5 kHz the level falls this much within
# 500 Hz (two bands). Codec and brick-wall cuts fall 52-71 dB (MP3 at 16-24 kbit/s:
# 59-69 dB); a gentle band-pass slope only 11-28 dB (Butterworth 300-3400 Hz of order
# 4-6), clean speech at most 18 dB: a slope is a narrow band, not a codec's cut
STEP_REGION_HZ = (4_000.0, 6_500.0)

# --- clipping
CLIP_LEVEL = 0.999  # |x| >= 99.9 % of full scale counts as at full scale
CLIP_MIN_RUN = 2  # samples: only runs of >= 2 consecutive such samples (a flat top)

# --- speech activity
VAD_REFERENCE_PERCENTILE = 99.0  # the file's "loudest frames": a percentile, not the
# max, so one click does not set the scale; a 0.5-s burst in 6 s is still above it
VAD_RELATIVE_DB = 35.0  # dB below the reference: speech frames incl. weak consonants
VAD_FLOOR_DBFS = -55.0  # dBFS frame RMS: quieter frames are never speech

# --- SNR
NOISE_PERCENTILE = 10.0  # noise = mean power of the quietest 10 % of frames
SNR_CAP_DB = 100.0  # dB: digital silence between words would give +inf

_EPS = 1e-20


def frame_power(x: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Non-overlapping frames and their mean power.

    Returns
    -------
    frames : np.ndarray, shape = (n_frames, frame), float64 (a trailing part is dropped)
    power : np.ndarray, shape = (n_frames,), mean x^2 of each frame
    """
    n = len(x) // frame
    frames = np.asarray(x[: n * frame], dtype=np.float64).reshape(n, frame)
    return frames, np.mean(frames * frames, axis=1)


def speech_mask(power: np.ndarray) -> np.ndarray:
    """Energy VAD: frames within VAD_RELATIVE_DB of the loudest frames and above the floor."""
    if power.size == 0:
        return np.zeros(0, dtype=bool)
    level = 10 * np.log10(power + _EPS)
    ref = np.percentile(level, VAD_REFERENCE_PERCENTILE)
    return level >= max(ref - VAD_RELATIVE_DB, VAD_FLOOR_DBFS)


def band_levels(frames: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Long-term spectrum of the given frames in BAND_HZ bands.

    Returns
    -------
    edges : np.ndarray, shape = (n_bands,), upper edge of each band in Hz
    level : np.ndarray, shape = (n_bands,), dB (full-scale sine ~ 0 dB per band)
    """
    frame = frames.shape[1]
    window = np.hanning(frame)
    spec = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (n_frames, frame//2+1)
    ltas = spec.mean(axis=0) * (4.0 / np.sum(window) ** 2)  # full-scale sine -> 1
    hz_per_bin = sample_rate / frame
    per_band = max(int(round(BAND_HZ / hz_per_bin)), 1)
    n_bands = (len(ltas) - 1) // per_band
    bands = ltas[1 : 1 + n_bands * per_band].reshape(n_bands, per_band).sum(axis=1)
    edges = (np.arange(n_bands) + 1) * per_band * hz_per_bin + hz_per_bin / 2
    return edges, 10 * np.log10(bands + _EPS)


def effective_bandwidth(edges: np.ndarray, level: np.ndarray) -> float:
    """Upper edge (Hz) of the highest band within BANDWIDTH_DROP_DB of the speech band."""
    speech_band = (edges > 100.0) & (edges <= 4_000.0)
    if not speech_band.any():
        return 0.0
    ref = level[speech_band].max()
    live = (level >= ref - BANDWIDTH_DROP_DB) & (level >= BANDWIDTH_FLOOR_DBFS)
    return float(edges[live].max()) if live.any() else 0.0


def rolloff(edges: np.ndarray, level: np.ndarray) -> float | None:
    """
    dB from the mean power of the bands with upper edges in ROLLOFF_BELOW_HZ to that of
    the bands in ROLLOFF_ABOVE_HZ (None: the grid has no such band)
    """
    def mean_db(lo: float, hi: float) -> float | None:
        inside = (edges > lo) & (edges <= hi)
        if not inside.any():
            return None
        return float(10 * np.log10(np.mean(10 ** (level[inside] / 10)) + _EPS))

    below, above = mean_db(*ROLLOFF_BELOW_HZ), mean_db(*ROLLOFF_ABOVE_HZ)
    return None if below is None or above is None else below - above


def steepest_step(edges: np.ndarray, level: np.ndarray) -> float:
    """the largest level fall (dB) from a band to the band two above it in STEP_REGION_HZ"""
    idx = np.flatnonzero((edges > STEP_REGION_HZ[0]) & (edges <= STEP_REGION_HZ[1]))
    idx = idx[idx + 2 < len(level)]
    return float(np.max(level[idx] - level[idx + 2])) if idx.size else 0.0


def lowpass_cutoff(edges: np.ndarray, level: np.ndarray) -> tuple[float | None, float]:
    """
    (cut-off Hz or None, the largest drop in dB) of a hard low-pass in 4-6 kHz: a drop
    of LOWPASS_DROP_DB across the cut, and a steep one (LOWPASS_STEP_DB)
    """
    best_drop, best_cut = -np.inf, None
    step = edges[1] - edges[0] if len(edges) > 1 else BAND_HZ
    below_n, above_n = int(round(500 / step)), int(round(1_000 / step))
    for i, top in enumerate(edges):
        cut = top  # the cut sits at the upper edge of band i
        if cut < LOWPASS_MIN_HZ or cut > LOWPASS_MAX_HZ:
            continue
        below = level[max(i - below_n + 1, 0) : i + 1]
        above = level[i + 2 : i + 2 + above_n]  # skip one transition band
        above = above[edges[i + 2 : i + 2 + above_n] <= LOWPASS_ABOVE_MAX_HZ]
        if below.size == 0 or above.size == 0:
            continue
        drop = float(below.mean() - above.mean())
        if drop > best_drop:
            best_drop, best_cut = drop, float(cut)
    if best_drop >= LOWPASS_DROP_DB and steepest_step(edges, level) >= LOWPASS_STEP_DB:
        return best_cut, best_drop
    return None, float(best_drop) if np.isfinite(best_drop) else 0.0


def clipping_fraction(x: np.ndarray) -> float:
    """Fraction of samples at >= CLIP_LEVEL of full scale in runs of >= CLIP_MIN_RUN."""
    if x.size == 0:
        return 0.0
    hot = np.abs(x) >= CLIP_LEVEL
    if not hot.any():
        return 0.0
    # run lengths of consecutive hot samples
    padded = np.concatenate([[False], hot, [False]]).astype(np.int8)
    d = np.diff(padded)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    runs = ends - starts
    return float(runs[runs >= CLIP_MIN_RUN].sum() / x.size)


def snr_db(power: np.ndarray, speech: np.ndarray) -> float:
    """Speech-frame power over the mean power of the quietest NOISE_PERCENTILE % frames."""
    if power.size == 0 or not speech.any():
        return 0.0
    n_quiet = max(int(round(power.size * NOISE_PERCENTILE / 100)), 1)
    noise = float(np.mean(np.sort(power)[:n_quiet]))
    signal = float(np.mean(power[speech])) - noise
    if signal <= 0:
        return 0.0
    return float(min(10 * np.log10(signal / max(noise, _EPS)), SNR_CAP_DB))
