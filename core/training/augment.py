"""Waveform augmentations for training and the fixed degradations of robustness tests.

Every augmentation is a pure function ``f(x, rng) -> y`` of a 16 kHz mono float32 clip,
shape = (n,), returning float32 of the same length. ``Augmenter(config, seed)`` applies
each with its own probability, deterministic given (seed, key) with key e.g.
``(epoch, index)``; ``degrade(x, spec)`` applies one named evaluation condition
(``mp3:32k``, ``opus:24k``, ``telephone``, ``noise:10db``, ``gain:-12db``, ``clean``).

The channel augmentations follow the three RawBoost families (Tak et al., ICASSP 2022,
https://arxiv.org/abs/2111.04433): convolutive (random multi-band FIR equaliser),
impulsive signal-dependent noise on a few samples, and stationary coloured noise at a
random SNR. Codecs run in memory through libsndfile (soundfile >= 0.13 with libsndfile
>= 1.1: MP3 via LAME/mpg123, Opus in Ogg), with the bit rate set exactly through
libsndfile's compression level.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import scipy.signal
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000  # Hz
PEAK_LIMIT = 0.99  # gain never pushes a sample past this
TELEPHONE_BAND = (300.0, 3400.0)  # Hz: ITU-T G.712 narrow-band telephone pass band
TELEPHONE_RATE = 8_000  # Hz
CODEC_MAX_LAG = 4_096  # samples searched either side when re-aligning a decoded clip
CODECS = ("mp3", "opus")

Augmentation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _as_clip(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono clip of shape (n,), got {x.shape}")
    return x


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


# --- RawBoost-style channel noise -------------------------------------------------


def convolutive(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    n_bands: tuple[int, int] = (2, 8),
    gain_db: tuple[float, float] = (-12.0, 12.0),
    n_taps: tuple[int, int] = (65, 257),
) -> np.ndarray:
    """
    Random multi-band equaliser: a linear-phase FIR whose magnitude passes through
    random gains at random band centres, applied centred so nothing is delayed.
    """
    x = _as_clip(x)
    k = int(rng.integers(n_bands[0], n_bands[1] + 1))
    centres = np.sort(rng.uniform(50.0, SAMPLE_RATE / 2 - 50.0, size=k))
    gains = 10.0 ** (rng.uniform(*gain_db, size=k) / 20.0)
    freq = np.concatenate([[0.0], centres, [SAMPLE_RATE / 2]])
    amp = np.concatenate([[gains[0]], gains, [gains[-1]]])
    taps = int(rng.integers(n_taps[0] // 2, n_taps[1] // 2 + 1)) * 2 + 1  # odd: type I
    h = scipy.signal.firwin2(taps, freq, amp, fs=SAMPLE_RATE)
    y = scipy.signal.oaconvolve(x, h, mode="same")
    return y.astype(np.float32)


def impulsive(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    fraction: tuple[float, float] = (0.001, 0.05),
    strength: tuple[float, float] = (0.5, 3.0),
) -> np.ndarray:
    """
    Signal-dependent impulsive noise: a random fraction of samples get
    ``x[i] * g * u``, u uniform in [-1, 1], so the clicks scale with the signal.
    """
    x = _as_clip(x)
    n = len(x)
    m = int(round(rng.uniform(*fraction) * n))
    y = x.copy()
    if m == 0:
        return y
    idx = rng.choice(n, size=m, replace=False)
    g = rng.uniform(*strength)
    y[idx] += (x[idx] * g * rng.uniform(-1.0, 1.0, size=m)).astype(np.float32)
    return y


def coloured_noise_like(
    n: int, rng: np.random.Generator, *, tilt: float = 0.0
) -> np.ndarray:
    """
    Unit-power stationary noise with power spectrum ~ f**tilt (0 white, -1 pink,
    -2 brown, +1 blue), shape = (n,), float64.
    """
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, d=1.0 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    spec *= (f / 1000.0) ** (tilt / 2.0)
    noise = np.fft.irfft(spec, n=n)
    return noise / np.sqrt(max(_power(noise), 1e-20))


def add_noise(
    x: np.ndarray, rng: np.random.Generator, *, snr_db: float, tilt: float = 0.0
) -> np.ndarray:
    """x plus coloured noise scaled so 10 log10(P_x / P_noise) == snr_db exactly."""
    x = _as_clip(x)
    p = _power(x)
    if p == 0.0:
        return x.copy()
    noise = coloured_noise_like(len(x), rng, tilt=tilt) * np.sqrt(p / 10.0 ** (snr_db / 10.0))
    return (x + noise).astype(np.float32)


def stationary_noise(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    snr_db: tuple[float, float] = (10.0, 40.0),
    tilt: tuple[float, float] = (-2.0, 1.0),
) -> np.ndarray:
    """stationary noise of random spectral tilt at an SNR drawn from ``snr_db``"""
    return add_noise(x, rng, snr_db=rng.uniform(*snr_db), tilt=rng.uniform(*tilt))


# --- level --------------------------------------------------------------------------


def apply_gain(x: np.ndarray, db: float) -> np.ndarray:
    """x * 10**(db/20), scaled back if that would put a peak above PEAK_LIMIT"""
    x = _as_clip(x)
    g = 10.0 ** (db / 20.0)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak * g > PEAK_LIMIT:
        g = PEAK_LIMIT / peak
    return (x * g).astype(np.float32)


def gain(
    x: np.ndarray, rng: np.random.Generator, *, db: tuple[float, float] = (-18.0, 6.0)
) -> np.ndarray:
    return apply_gain(x, rng.uniform(*db))


# --- lossy codecs -------------------------------------------------------------------


def _mp3_level(kbps: float) -> float:
    # libsndfile's MPEG-2 layer III CBR maps compression level linearly onto 160..8
    # kbit/s at 16 kHz (measured: 16/24/32/48/64 k come out at 16.2/24.3/32.4/48.8/65.1)
    return float(np.clip((160.0 - kbps) / 152.0, 0.0, 0.99))


def _opus_level(kbps: float) -> float:
    # libsndfile ogg_opus.c: bitrate = (1 - level) * 250000 + 6000 bit/s per channel
    return float(np.clip(1.0 - (kbps * 1000.0 - 6000.0) / 250000.0, 0.0, 1.0))


def align_to(y: np.ndarray, x: np.ndarray, *, max_lag: int = CODEC_MAX_LAG) -> np.ndarray:
    """
    Shift y by the lag (|lag| <= max_lag) that best cross-correlates it with x, then
    trim or zero-pad to len(x): removes a codec's encoder delay and padding.
    """
    n = len(x)
    if len(y) == 0 or n == 0:
        return np.zeros(n, dtype=np.float32)
    corr = scipy.signal.correlate(y, x, mode="full", method="fft")  # lag k at k + n - 1
    lags = np.arange(-(n - 1), len(y))
    ok = np.abs(lags) <= max_lag
    lag = int(lags[ok][np.argmax(corr[ok])])
    out = np.zeros(n, dtype=np.float32)
    src = y[max(lag, 0) :]
    dst0 = max(-lag, 0)
    m = min(len(src), n - dst0)
    out[dst0 : dst0 + m] = src[:m]
    return out


def encode(x: np.ndarray, codec: str, kbps: float) -> bytes:
    """x as an in-memory MP3 ("mp3") or Ogg/Opus ("opus"/"ogg") file at ``kbps`` CBR"""
    x = _as_clip(x)
    if codec == "mp3":
        kw = dict(format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT",
                  compression_level=_mp3_level(kbps))  # fmt: skip
    elif codec in ("opus", "ogg"):
        kw = dict(format="OGG", subtype="OPUS", compression_level=_opus_level(kbps))
    else:
        raise ValueError(f"unknown codec {codec!r}: one of {', '.join(CODECS)}")
    buf = io.BytesIO()
    try:
        sf.write(buf, np.clip(x, -1.0, 1.0), SAMPLE_RATE, **kw)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise RuntimeError(
            f"{codec} encoding failed: libsndfile {sf.__libsndfile_version__} needs "
            f"MP3/Opus support (libsndfile >= 1.1, soundfile >= 0.13): {e}"
        ) from e
    return buf.getvalue()


def codec_roundtrip(x: np.ndarray, codec: str, kbps: float) -> np.ndarray:
    """
    Encode and decode in memory (see encode); the decoded clip is re-aligned to x
    (align_to) and keeps its length and 16 kHz.
    """
    x = _as_clip(x)
    y, sr = sf.read(io.BytesIO(encode(x, codec, kbps)), dtype="float32", always_2d=False)
    assert sr == SAMPLE_RATE, f"decoder returned {sr} Hz"
    if y.ndim > 1:
        y = y.mean(axis=1)
    return align_to(y, x)


def codec(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    codecs: tuple[str, ...] = CODECS,
    kbps: tuple[float, float] = (16.0, 64.0),
) -> np.ndarray:
    return codec_roundtrip(x, codecs[int(rng.integers(len(codecs)))], rng.uniform(*kbps))


# --- telephone ------------------------------------------------------------------------

_TELEPHONE_SOS = scipy.signal.ellip(
    5, 0.5, 50.0, TELEPHONE_BAND, btype="bandpass", output="sos", fs=TELEPHONE_RATE
)


def telephone(x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """
    Narrow-band telephone channel: 16 -> 8 kHz (soxr), 300-3400 Hz elliptic band-pass
    run forwards and backwards (zero phase, so no delay), 8 -> 16 kHz.
    """
    x = _as_clip(x)
    if len(x) == 0:
        return x.copy()
    nb = soxr.resample(x, SAMPLE_RATE, TELEPHONE_RATE, quality="HQ")
    nb = scipy.signal.sosfiltfilt(_TELEPHONE_SOS, nb)
    y = soxr.resample(nb.astype(np.float32), TELEPHONE_RATE, SAMPLE_RATE, quality="HQ")
    out = np.zeros(len(x), dtype=np.float32)
    out[: min(len(y), len(x))] = y[: len(x)]
    return out


# --- training-time augmenter ----------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """Probability of each augmentation, applied in this order; 0 switches one off."""

    convolutive: float = 0.3
    impulsive: float = 0.2
    stationary_noise: float = 0.3
    codec: float = 0.2
    telephone: float = 0.1
    gain: float = 0.5  # last, so its peak protection sees the final signal

    def __post_init__(self):
        for f in fields(self):
            p = getattr(self, f.name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment probability {f.name}={p} is not in [0, 1]")


AUGMENTATIONS: dict[str, Augmentation] = {
    "convolutive": convolutive,
    "impulsive": impulsive,
    "stationary_noise": stationary_noise,
    "codec": codec,
    "telephone": telephone,
    "gain": gain,
}


class Augmenter:
    """
    ``Augmenter(config, seed)(x, key=(epoch, index))``: each augmentation draws from its
    own generator seeded by (seed, *key, step), so the output depends only on those and
    switching one augmentation off leaves the others' draws unchanged.
    """

    def __init__(self, config: AugmentConfig | None = None, seed: int = 0):
        self.config = config or AugmentConfig()
        self.seed = int(seed)

    def __call__(self, x: np.ndarray, *, key: tuple[int, ...] = ()) -> np.ndarray:
        if any(int(k) < 0 for k in key) or self.seed < 0:
            raise ValueError(f"seed and key must be non-negative, got {self.seed}, {key}")
        y = _as_clip(x)
        for step, name in enumerate(AUGMENTATIONS):
            p = getattr(self.config, name)
            rng = np.random.default_rng([self.seed, *map(int, key), step])
            if p > 0.0 and rng.random() < p:
                y = AUGMENTATIONS[name](y, rng)
        return y

    def applied(self, key: tuple[int, ...] = ()) -> list[str]:
        """names of the augmentations __call__ applies for this key (for logging)"""
        out = []
        for step, name in enumerate(AUGMENTATIONS):
            p = getattr(self.config, name)
            if p > 0.0 and np.random.default_rng([self.seed, *map(int, key), step]).random() < p:
                out.append(name)
        return out


# --- evaluation conditions -------------------------------------------------------------

_SPEC = re.compile(
    r"^(?:(?P<plain>clean|telephone)"
    r"|(?P<codec>mp3|ogg|opus):(?P<kbps>\d+(?:\.\d+)?)k"
    r"|(?P<level>noise|gain):(?P<db>[+-]?\d+(?:\.\d+)?)db)$"
)


def parse_degradation(spec: str) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """condition string -> f(x, rng); ValueError naming the accepted forms otherwise"""
    m = _SPEC.match(spec.strip().lower())
    if not m:
        raise ValueError(
            f"unknown degradation {spec!r}: use clean, telephone, mp3:32k, ogg:24k "
            "(= opus:24k), noise:10db (white noise at that SNR) or gain:-12db"
        )
    if m["plain"] == "clean":
        return lambda x, rng: _as_clip(x).copy()
    if m["plain"] == "telephone":
        return telephone
    if m["codec"]:
        name, kbps = ("mp3" if m["codec"] == "mp3" else "opus"), float(m["kbps"])
        if not 8.0 <= kbps <= 256.0:
            raise ValueError(f"{spec!r}: bit rate must be 8-256 kbit/s")
        return lambda x, rng: codec_roundtrip(x, name, kbps)
    db = float(m["db"])
    if m["level"] == "noise":
        return lambda x, rng: add_noise(x, rng, snr_db=db)
    return lambda x, rng: apply_gain(x, db)


def degrade(x: np.ndarray, spec: str, *, seed: int = 0) -> np.ndarray:
    """one evaluation condition applied to x; identical for the same (x, spec, seed)"""
    return parse_degradation(spec)(x, np.random.default_rng(seed))
