"""Input-quality warnings: measured properties of an upload that make a verdict less sure.

``assess(samples, orig_sample_rate=..., orig_format=...)`` measures, on the 16 kHz mono
signal the detectors see, the effective bandwidth, a telephone-like roll-off, a hard
low-pass, clipping, speech activity (a simple energy VAD), the SNR and the number of
windows each model averaged, and returns an ``InputQuality`` holding the numbers, one
``QualityWarning`` per rule that fired (its value in a unit: ``w.measured`` reads
"bandwidth 3.5 kHz (below 4.5 kHz)") and ``notes``: plain facts that are no warning, such
as a clip shorter than a model's window. ``too_short`` says the verdict must be "too
short to judge".

Every threshold is a module constant with its unit and the reason for its value. They
were checked on MiniSpoof train + dev (955 clean clips: none fires); eval is only used
as a smoke check in the tests. The measurements are core.audio.levels': numpy on 20-ms
frames, about 2 ms for a 6-s clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from core.audio.levels import (  # the measurements; also read from here by callers
    FRAME_SECONDS,
    LOWPASS_MAX_HZ,
    ROLLOFF_ABOVE_HZ,
    ROLLOFF_BELOW_HZ,
    band_levels,
    clipping_fraction,
    effective_bandwidth,
    frame_power,
    lowpass_cutoff,
    rolloff,
    snr_db,
    speech_mask,
)
from core.jsonsafe import finite

SAMPLE_RATE = 16_000  # Hz: the rate every detector sees

# --- narrow_band (the measurements: core.audio.levels)
NARROW_BAND_HZ = 4_500.0  # Hz: 8-kHz (telephone) audio has nothing above 4 kHz; the
# margin covers the resampler's transition band and the 250-Hz band grid
ROLLOFF_DB = 25.0  # dB, from ROLLOFF_BELOW_HZ to ROLLOFF_ABOVE_HZ: the largest drop on
# MiniSpoof train + dev (955 clips) is 22 dB, on eval 21 dB, on a quarter of DemoSpoof
# 23 dB; after a 6th-order Butterworth 300-3400 Hz band-pass the same clips drop 28-66 dB
# (all 955 warn narrow_band, none lossy_codec; 4th order: 861 of 955), after an 8-kHz
# round trip 46-73 dB

# --- low_sample_rate
MIN_ORIG_SAMPLE_RATE = 16_000  # Hz: below this the file was upsampled for the models

# --- lossy_codec (a format, or a hard low-pass in LOWPASS_MIN_HZ-LOWPASS_MAX_HZ)
LOSSY_FORMATS = ("mp3", "ogg", "vorbis", "opus", "aac", "m4a", "mp4", "wma", "amr")

# --- clipping
CLIPPING_FRACTION = 0.001  # 0.1 % of samples in flat runs at full scale -> clipping

# --- little_speech / too_short
MIN_SPEECH_SECONDS = 1.5  # s: less detected speech -> "too short to judge"; 2.0 s
# fired on 7 of 955 clean 3-4 s MiniSpoof train clips (1.76-1.92 s detected speech)
MIN_DURATION_SECONDS = 1.0  # s: shorter files are too short whatever the VAD says

# --- low_snr
LOW_SNR_DB = 10.0  # dB: below this noise masks the cues detectors use; 15 dB fired
# on 3 clean MiniSpoof train clips of continuous speech (no pause: the quietest frames
# are speech, estimates 12.9-14.9 dB); white noise at 5 dB SNR measures ~6-8 dB

# --- the window note (no warning: it concerns every clip under a window's length)
MIN_WINDOWS = 2  # fewer windows averaged for a model -> its score rests on one crop


# what each rule measures and in which unit (records stored before these fields were
# added get them from here): "Hz" | "dB" | "s" | "fraction" (shown in %) | "" (a count)
MEASURES = {
    "narrow_band": ("bandwidth", "Hz"),
    "low_sample_rate": ("original rate", "Hz"),
    "clipping": ("clipped samples", "fraction"),
    "little_speech": ("speech", "s"),
    "too_short": ("duration", "s"),
    "low_snr": ("SNR", "dB"),
    "lossy_codec": ("cut-off", "Hz"),
    "partial_coverage": ("windows scored", "fraction"),
}


def with_unit(value: float, unit: str) -> str:
    """a measured value in its unit: 3500 Hz -> '3.5 kHz', 0.0012 fraction -> '0.12 %'"""
    if unit == "Hz":
        return f"{round(value / 1000, 1):g} kHz" if abs(value) >= 1000 else f"{value:.0f} Hz"
    if unit == "dB":
        return f"{value:.0f} dB"
    if unit == "s":
        return f"{round(value, 2):g} s"
    if unit == "fraction":
        return f"{100 * value:.2g} %"
    return f"{value:g}"


@dataclass(frozen=True)
class QualityWarning:
    code: str  # narrow_band | low_sample_rate | clipping | little_speech | low_snr | ...
    message: str  # one plain sentence for users
    value: float  # the measured number, in the unit of threshold (nan: none measured)
    threshold: float  # the rule's threshold
    quantity: str = ""  # what value measures ("bandwidth"); "" = MEASURES[code]
    unit: str = ""  # "Hz" | "dB" | "s" | "fraction"; "" = MEASURES[code]

    def __post_init__(self) -> None:
        quantity, unit = MEASURES.get(self.code, ("", ""))
        if not self.quantity:
            object.__setattr__(self, "quantity", quantity)
        if not self.unit:
            object.__setattr__(self, "unit", unit)

    @property
    def measured(self) -> str:
        """'bandwidth 3.5 kHz (below 4.5 kHz)'; '' when nothing was measured"""
        if not np.isfinite(self.value) or not self.quantity:
            return ""
        side = "below" if self.value < self.threshold else "above"
        return (f"{self.quantity} {with_unit(self.value, self.unit)} "
                f"({side} {with_unit(self.threshold, self.unit)})")  # fmt: skip

    def to_json(self) -> dict:
        return finite(
            {"code": self.code, "message": self.message, "value": self.value,
             "threshold": self.threshold, "quantity": self.quantity, "unit": self.unit,
             "measured": self.measured}
        )  # fmt: skip


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
    rolloff_db: float | None = None  # level drop ROLLOFF_BELOW_HZ -> ROLLOFF_ABOVE_HZ
    notes: tuple[str, ...] = field(default=())  # plain facts, no warning (with_windows)

    @classmethod
    def from_json(cls, d: dict) -> "InputQuality":
        """inverse of to_json (None for a value to_json wrote as null: NaN)"""
        names = {f.name for f in fields(cls)} - {"warnings", "notes"}
        kw = {k: d[k] for k in names if k in d}
        for k in ("snr_db", "effective_bandwidth_hz", "clipping_fraction"):
            if kw.get(k) is None:
                kw[k] = float("nan")
        nan = float("nan")
        warnings = tuple(
            QualityWarning(w["code"], w["message"], nan if w["value"] is None else
                           float(w["value"]), float(w["threshold"]),
                           w.get("quantity") or "", w.get("unit") or "")
            for w in d.get("warnings", ())
            if w["code"] != "few_windows"  # a note since; with_windows writes it again
        )  # fmt: skip
        return cls(**kw, warnings=warnings, notes=tuple(d.get("notes") or ()))

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
                "rolloff_db": self.rolloff_db,
                "notes": list(self.notes),
            }
        )


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
        drop = rolloff(edges, level)
    else:
        bandwidth, cut, drop = 0.0, None, None
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
             f"Only {speech_seconds:.1f} s of speech was found, and at least "
             f"{MIN_SPEECH_SECONDS:g} s is needed: too short to judge.",
             speech_seconds, MIN_SPEECH_SECONDS)
    if duration < MIN_DURATION_SECONDS:
        warn("too_short",
             f"The file lasts {duration:.2f} s, and at least {MIN_DURATION_SECONDS:g} s "
             "is needed: too short to judge.",
             duration, MIN_DURATION_SECONDS)
    # the spectral rules need some speech to measure; without it little_speech says enough
    if speech.any() and bandwidth < NARROW_BAND_HZ:
        warn("narrow_band",
             f"The audio holds nothing above {bandwidth / 1000:.1f} kHz: telephone or "
             "upsampled audio, which the detectors were not trained on.",
             bandwidth, NARROW_BAND_HZ)
    elif speech.any() and cut is None and drop is not None and drop >= ROLLOFF_DB:
        above = sum(ROLLOFF_ABOVE_HZ) / 2000
        warnings.append(QualityWarning(
            "narrow_band",
            f"Above {above:.1f} kHz the audio is {drop:.0f} dB quieter than at the top of "
            "the speech band: it went through a telephone-like band-pass, which the "
            "detectors were not trained on.",
            drop, ROLLOFF_DB, f"level drop {sum(ROLLOFF_BELOW_HZ) / 2000:.1f} to "
            f"{above:.1f} kHz", "dB",
        ))  # fmt: skip
    if orig_sample_rate < MIN_ORIG_SAMPLE_RATE:
        warn("low_sample_rate",
             f"The file was recorded at {orig_sample_rate / 1000:g} kHz and upsampled "
             f"to {SAMPLE_RATE // 1000} kHz for the detectors.",
             orig_sample_rate, MIN_ORIG_SAMPLE_RATE)
    if clip > CLIPPING_FRACTION:
        warn("clipping",
             f"{100 * clip:.2g} % of the samples are clipped at full scale.",
             clip, CLIPPING_FRACTION)
    if speech.any() and snr < LOW_SNR_DB:
        warn("low_snr",
             f"The background noise is loud: the estimated SNR is {snr:.0f} dB.",
             snr, LOW_SNR_DB)
    if lossy or cut is not None:
        why = f"It is a lossy {orig_format} file" if lossy else "It was low-passed hard"
        at = f", cut at {cut / 1000:.1f} kHz" if cut is not None else ""
        warn("lossy_codec",
             f"{why}{at}: compression removes cues the detectors rely on.",
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
        rolloff_db=drop,
    )
    return with_windows(signal, n_windows, window_samples) if n_windows is not None else signal


def with_windows(
    q: InputQuality,
    n_windows: dict[str, int],
    window_samples: dict[str, int] | None = None,
    total_windows: dict[str, int] | None = None,
) -> InputQuality:
    """
    ``q`` with the window facts of these models (replacing any it had). A warning,
    partial_coverage, for a model that scored only some of the file's windows
    (``total_windows``: the interactive cap). A note, said once for all models, when
    the file is shorter than a model's window (it heard the clip repeated, as at
    training time: every ordinary 3-5 s clip) or its score rests on fewer than
    MIN_WINDOWS windows. The signal measurements are kept, so a stored InputQuality is
    reused for any set of models.
    """
    warnings = [w for w in q.warnings if w.code not in ("few_windows", "partial_coverage")]
    for model, total in sorted((total_windows or {}).items()):
        n = n_windows.get(model, total)
        if n < total:
            warnings.append(QualityWarning(
                "partial_coverage",
                f"{model}: {n} of the file's {total} windows were scored, evenly spread "
                "(the dashboard's cap for long files); `python -m core analyze` scores all.",
                round(n / total, 4), 1.0,
            ))  # fmt: skip
    n_audio = round(q.duration_s * SAMPLE_RATE)
    tiled, few = [], []
    for model, n in sorted(n_windows.items()):
        length = (window_samples or {}).get(model)
        if length is not None and n_audio < length:
            tiled.append(model)
        elif n < MIN_WINDOWS:
            few.append(model)
    notes = []
    if tiled:
        each = "each heard" if len(tiled) > 1 else "it heard"
        notes.append(f"Shorter than one window of {_and(tiled)}: {each} the clip repeated.")
    if few:
        rests = "rest" if len(few) > 1 else "rests"
        notes.append(f"The score{'s' * (len(few) > 1)} of {_and(few)} {rests} on one window.")
    return replace(q, n_windows=dict(n_windows), warnings=tuple(warnings), notes=tuple(notes))


def _and(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'"""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
