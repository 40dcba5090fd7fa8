"""Input-quality warnings: measured properties of an upload that make a verdict less sure.

``assess(samples, orig_sample_rate=..., orig_format=...)`` measures, on the 16 kHz mono
signal the detectors see, the effective bandwidth, a hard low-pass, clipping, speech
activity (a simple energy VAD), the SNR and the number of windows each model averaged,
and returns an ``InputQuality`` holding the numbers and one ``QualityWarning`` per rule
that fired. ``too_short`` says the verdict must be "too short to judge".

Every threshold is a module constant with its unit and the reason for its value. They
were checked on MiniSpoof train + dev (955 clean clips: none fires); eval is only used
as a smoke check in the tests. All measurements are numpy on 20-ms frames: about 2 ms
for a 6-s clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from core.jsonsafe import finite

SAMPLE_RATE = 16_000  # Hz: the rate every detector sees

FRAME_SECONDS = 0.020  # 20-ms frames for the VAD and the long-term spectrum
BAND_HZ = 250.0  # the long-term spectrum is read in 250-Hz bands (5 bins of 50 Hz)

# --- effective bandwidth / narrow_band
# The effective bandwidth is the upper edge of the highest 250-Hz band whose long-term
# level (speech frames only) is within BANDWIDTH_DROP_DB of the loudest band between
# 100 Hz and 4 kHz. Energy-fraction definitions (e.g. 99 % of the energy) do not work
# for speech, whose energy is almost all below 4 kHz even in wide-band recordings.
BANDWIDTH_DROP_DB = 50.0  # dB; clean 16-kHz speech keeps bands up to ~8 kHz within this
BANDWIDTH_FLOOR_DBFS = -110.0  # dB per band: below this a band is empty (16-bit floor)
NARROW_BAND_HZ = 4_500.0  # Hz: 8-kHz (telephone) audio has nothing above 4 kHz; the
# margin covers the resampler's transition band and the 250-Hz band grid

# --- low_sample_rate
MIN_ORIG_SAMPLE_RATE = 16_000  # Hz: below this the file was upsampled for the models

# --- lossy_codec
LOSSY_FORMATS = ("mp3", "ogg", "vorbis", "opus", "aac", "m4a", "mp4", "wma", "amr")
# a hard low-pass: the mean level of the 500 Hz below a cut-off frequency exceeds the
# mean level of the 1 kHz above it (after one 250-Hz transition band, and never above
# LOWPASS_ABOVE_MAX_HZ) by LOWPASS_DROP_DB.
LOWPASS_MIN_HZ = 4_000.0  # Hz: lower cuts are reported as narrow_band
LOWPASS_MAX_HZ = 6_000.0  # Hz: the training data itself has cuts at 6.3-7.3 kHz
# (LibriSpeech comes from LibriVox MP3s, and resampling to 16 kHz ends near 7.3 kHz), so
# such cuts are in-distribution; MP3 at <= 24 kbit/s cuts lower, at 4-6 kHz
LOWPASS_ABOVE_MAX_HZ = 7_000.0  # Hz: the level above this is not speech in any file
LOWPASS_DROP_DB = 30.0  # dB: the largest such drop on MiniSpoof train + dev is 22 dB

# --- clipping
CLIP_LEVEL = 0.999  # |x| >= 99.9 % of full scale counts as at full scale
CLIP_MIN_RUN = 2  # samples: only runs of >= 2 consecutive such samples (a flat top)
CLIPPING_FRACTION = 0.001  # 0.1 % of samples in such runs -> clipping

# --- speech activity / little_speech / too_short
VAD_REFERENCE_PERCENTILE = 99.0  # the file's "loudest frames": a percentile, not the
# max, so one click does not set the scale; a 0.5-s burst in 6 s is still above it
VAD_RELATIVE_DB = 35.0  # dB below the reference: speech frames incl. weak consonants
VAD_FLOOR_DBFS = -55.0  # dBFS frame RMS: quieter frames are never speech
MIN_SPEECH_SECONDS = 1.5  # s: less detected speech -> "too short to judge"; 2.0 s
# fired on 7 of 955 clean 3-4 s MiniSpoof train clips (1.76-1.92 s detected speech)
MIN_DURATION_SECONDS = 1.0  # s: shorter files are too short whatever the VAD says

# --- low_snr
NOISE_PERCENTILE = 10.0  # noise = mean power of the quietest 10 % of frames
LOW_SNR_DB = 10.0  # dB: below this noise masks the cues detectors use; 15 dB fired
# on 3 clean MiniSpoof train clips of continuous speech (no pause: the quietest frames
# are speech, estimates 12.9-14.9 dB); white noise at 5 dB SNR measures ~6-8 dB
SNR_CAP_DB = 100.0  # dB: digital silence between words would give +inf

# --- few_windows
MIN_WINDOWS = 2  # fewer windows averaged for a model -> its score rests on one crop

_EPS = 1e-20


@dataclass(frozen=True)
class QualityWarning:
    code: str  # narrow_band | low_sample_rate | clipping | little_speech | low_snr | ...
    message: str  # one line for users
    value: float  # the measured number, in the unit of threshold (nan: none measured)
    threshold: float  # the rule's threshold

    def to_json(self) -> dict:
        return finite(
            {"code": self.code, "message": self.message, "value": self.value,
             "threshold": self.threshold}
        )


@dataclass(frozen=True)
class InputQuality:
    duration_s: float  # seconds at 16 kHz
    orig_sample_rate: int  # Hz
    orig_format: str  # as given, e.g. "FLAC", "MP3"
    effective_bandwidth_hz: float  # see BANDWIDTH_DROP_DB
    lowpass_hz: float | None  # a hard low-pass cut-off in 4-7 kHz, else None
    lossy_format: bool  # orig_format is a lossy codec container
    clipping_fraction: float  # of samples, in flat runs at full scale
    speech_seconds: float  # VAD speech frames x 20 ms
    speech_fraction: float  # speech_seconds / duration_s
    snr_db: float  # speech-frame power over the quietest frames' power
    n_windows: dict[str, int] | None  # windows averaged per model, when given
    warnings: tuple[QualityWarning, ...] = field(default=())
    too_short: bool = False  # the verdict must be "too short to judge"

    @classmethod
    def from_json(cls, d: dict) -> "InputQuality":
        """inverse of to_json (None for a value to_json wrote as null: NaN)"""
        names = {f.name for f in fields(cls)} - {"warnings"}
        kw = {k: d[k] for k in names if k in d}
        for k in ("snr_db", "effective_bandwidth_hz", "clipping_fraction"):
            if kw.get(k) is None:
                kw[k] = float("nan")
        nan = float("nan")
        warnings = tuple(
            QualityWarning(w["code"], w["message"], nan if w["value"] is None else
                           float(w["value"]), float(w["threshold"]))
            for w in d.get("warnings", ())
        )  # fmt: skip
        return cls(**kw, warnings=warnings)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(w.code for w in self.warnings)

    def to_json(self) -> dict:
        return finite(
            {
                "duration_s": self.duration_s,
                "orig_sample_rate": self.orig_sample_rate,
                "orig_format": self.orig_format,
                "effective_bandwidth_hz": self.effective_bandwidth_hz,
                "lowpass_hz": self.lowpass_hz,
                "lossy_format": self.lossy_format,
                "clipping_fraction": self.clipping_fraction,
                "speech_seconds": self.speech_seconds,
                "speech_fraction": self.speech_fraction,
                "snr_db": self.snr_db,
                "n_windows": dict(self.n_windows) if self.n_windows is not None else None,
                "warnings": [w.to_json() for w in self.warnings],
                "too_short": self.too_short,
            }
        )


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


def lowpass_cutoff(edges: np.ndarray, level: np.ndarray) -> tuple[float | None, float]:
    """(cut-off Hz or None, the largest drop in dB) of a hard low-pass in 4-7 kHz."""
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
    if best_drop >= LOWPASS_DROP_DB:
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


def assess(
    samples: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    orig_sample_rate: int,
    orig_format: str,
    n_windows: dict[str, int] | None = None,
    window_samples: dict[str, int] | None = None,
) -> InputQuality:
    """
    Measure the input and list the warnings that apply.

    Parameters
    ----------
    samples : np.ndarray, shape = (n,), mono at sample_rate (16 kHz: what the models see)
    orig_sample_rate, orig_format : of the uploaded file (core.audio.decode.Audio)
    n_windows : windows each model averaged, e.g. {"aasist": 3}
    window_samples : input length of each model, to say when a short file was tiled
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("assess: samples must be finite (core.audio.decode refuses NaN/inf)")
    duration = x.size / sample_rate
    frames, power = frame_power(x, int(round(FRAME_SECONDS * sample_rate)))
    speech = speech_mask(power)
    speech_seconds = float(speech.sum() * FRAME_SECONDS)
    if speech.any():
        edges, level = band_levels(frames[speech], sample_rate)
        bandwidth = effective_bandwidth(edges, level)
        # below NARROW_BAND_HZ there is nothing to cut: narrow_band says it all, and
        # window leakage past a lower edge would look like a cut just above 4 kHz
        cut = lowpass_cutoff(edges, level)[0] if bandwidth >= NARROW_BAND_HZ else None
    else:
        bandwidth, cut = 0.0, None
    clip = clipping_fraction(x)
    snr = snr_db(power, speech)
    fmt = str(orig_format).lower()
    lossy = fmt in LOSSY_FORMATS

    warnings: list[QualityWarning] = []

    def warn(code: str, message: str, value: float, threshold: float) -> None:
        warnings.append(QualityWarning(code, message, float(value), float(threshold)))

    too_short = duration < MIN_DURATION_SECONDS or speech_seconds < MIN_SPEECH_SECONDS
    if speech_seconds < MIN_SPEECH_SECONDS:
        warn("little_speech",
             f"only {speech_seconds:.1f} s of speech detected (at least "
             f"{MIN_SPEECH_SECONDS:g} s needed): too short to judge",
             speech_seconds, MIN_SPEECH_SECONDS)
    if duration < MIN_DURATION_SECONDS:
        warn("too_short",
             f"the file lasts {duration:.2f} s (at least {MIN_DURATION_SECONDS:g} s "
             "needed): too short to judge",
             duration, MIN_DURATION_SECONDS)
    # the spectral rules need some speech to measure; without it little_speech says enough
    if speech.any() and bandwidth < NARROW_BAND_HZ:
        warn("narrow_band",
             f"the audio holds nothing above {bandwidth / 1000:.1f} kHz: telephone or "
             "upsampled audio, which the detectors were not trained on",
             bandwidth, NARROW_BAND_HZ)
    if orig_sample_rate < MIN_ORIG_SAMPLE_RATE:
        warn("low_sample_rate",
             f"the file was recorded at {orig_sample_rate / 1000:g} kHz and upsampled "
             f"to {SAMPLE_RATE // 1000} kHz for the detectors",
             orig_sample_rate, MIN_ORIG_SAMPLE_RATE)
    if clip > CLIPPING_FRACTION:
        warn("clipping",
             f"{100 * clip:.2f} % of samples are clipped at full scale",
             clip, CLIPPING_FRACTION)
    if speech.any() and snr < LOW_SNR_DB:
        warn("low_snr",
             f"background noise is high (estimated SNR {snr:.0f} dB, below "
             f"{LOW_SNR_DB:.0f} dB)",
             snr, LOW_SNR_DB)
    if lossy or cut is not None:
        why = f"a lossy {orig_format} file" if lossy else "hard low-pass"
        at = f" (cut at {cut / 1000:.1f} kHz)" if cut is not None else ""
        warn("lossy_codec",
             f"{why}{at}: compression removes cues the detectors rely on",
             cut if cut is not None else float("nan"), LOWPASS_MAX_HZ)
    signal = InputQuality(
        duration_s=duration,
        orig_sample_rate=int(orig_sample_rate),
        orig_format=str(orig_format),
        effective_bandwidth_hz=bandwidth,
        lowpass_hz=cut,
        lossy_format=lossy,
        clipping_fraction=clip,
        speech_seconds=speech_seconds,
        speech_fraction=speech_seconds / duration if duration > 0 else 0.0,
        snr_db=snr,
        n_windows=None,
        warnings=tuple(warnings),
        too_short=too_short,
    )
    return with_windows(signal, n_windows, window_samples) if n_windows is not None else signal


def with_windows(
    q: InputQuality,
    n_windows: dict[str, int],
    window_samples: dict[str, int] | None = None,
    total_windows: dict[str, int] | None = None,
) -> InputQuality:
    """
    ``q`` with the window warnings of these models (replacing any it had): few_windows
    for a model whose score rests on fewer than MIN_WINDOWS windows, or that saw the
    audio tiled because the file is shorter than its input; partial_coverage for a
    model that scored only some of the file's windows (``total_windows``: the
    interactive cap). The signal measurements are kept, so a stored InputQuality is
    reused for any set of models.
    """
    warnings = [w for w in q.warnings if w.code not in ("few_windows", "partial_coverage")]
    for model, total in sorted((total_windows or {}).items()):
        n = n_windows.get(model, total)
        if n < total:
            warnings.append(QualityWarning(
                "partial_coverage",
                f"{model}: {n} of the file's {total} windows were scored, evenly spread "
                "(the dashboard's cap for long files); `python -m core analyze` scores all",
                round(n / total, 4), 1.0,
            ))  # fmt: skip
    n_audio = round(q.duration_s * SAMPLE_RATE)
    for model, n in sorted(n_windows.items()):
        length = (window_samples or {}).get(model)
        tiled = length is not None and n_audio < length
        if n < MIN_WINDOWS or tiled:
            how = ("shorter than its input, so it was repeated to fill one window"
                   if tiled else f"its score rests on {n} window")
            warnings.append(QualityWarning(
                "few_windows", f"{model}: the audio is {how}", float(n), float(MIN_WINDOWS)
            ))  # fmt: skip
    return replace(q, n_windows=dict(n_windows), warnings=tuple(warnings))
