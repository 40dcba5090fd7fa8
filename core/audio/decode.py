"""Audio front end: decode, mix down, resample, and fit to a model's input length.

Pure functions of bytes and arrays, in the style of whisper/audio.py. A file that
cannot be decoded is named by what its first bytes say it is: "damaged FLAC file (...)"
when it starts as FLAC, WAV, Ogg or MP3 does, "not a supported audio file" otherwise.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000  # Hz: every detector here was trained at 16 kHz
MAX_SECONDS_DEFAULT = 30 * 60  # 30 min: longer uploads are refused, not truncated
SILENCE_DBFS = -60.0  # files whose RMS is below this are flagged near-silent
SUPPORTED_FORMATS = ("wav", "flac", "mp3", "ogg")


class AudioError(ValueError):
    """A file that cannot be analysed. ``str(err)`` is a one-line message for users."""


class EmptyFileError(AudioError):
    pass


class UnsupportedAudioError(AudioError):
    pass


class DamagedAudioError(AudioError):
    """The file starts as a known container (FLAC, WAV, Ogg, MP3) but won't decode."""


class NoSamplesError(AudioError):
    pass


class NonFiniteAudioError(AudioError):
    pass


class TooLongError(AudioError):
    pass


@dataclass(frozen=True)
class Audio:
    """A decoded file, mono at 16 kHz, plus what we know of the original."""

    samples: np.ndarray  # float32, shape = (n,), mono, 16 kHz
    sha256: str  # of the original file's bytes: the analysis identity
    orig_sample_rate: int  # Hz, as stored in the file
    orig_channels: int
    orig_format: str  # soundfile's container name, e.g. "WAV", "FLAC", "MP3", "OGG"
    n_bytes: int
    rms_dbfs: float  # of the 16 kHz mono signal
    near_silent: bool  # rms_dbfs < SILENCE_DBFS: analysed, but flagged

    @property
    def duration(self) -> float:
        """seconds, at 16 kHz"""
        return len(self.samples) / SAMPLE_RATE


def audio_info(audio: Audio) -> dict:
    """The audio row the store keeps for a decoded file."""
    return {
        "sha256": audio.sha256,
        "n_bytes": audio.n_bytes,
        "duration": audio.duration,
        "orig_sample_rate": audio.orig_sample_rate,
        "orig_channels": audio.orig_channels,
        "orig_format": audio.orig_format,
        "rms_dbfs": audio.rms_dbfs,
        "near_silent": audio.near_silent,
    }


def audio_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_audio(
    source: bytes | str | Path, *, max_seconds: float = MAX_SECONDS_DEFAULT
) -> Audio:
    """
    Decode wav, flac, mp3 or ogg from bytes or a path; mix to mono; resample to 16 kHz.

    Raises an AudioError subclass with a one-line message for every bad input.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise AudioError(f"cannot read {path.name}: {e.strerror or e}") from e
    else:
        data = bytes(source)
    if len(data) == 0:
        raise EmptyFileError("the file is empty (0 bytes)")

    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            orig_rate, channels, fmt = f.samplerate, f.channels, f.format
            # frames can be unknown (-1 or huge) for some mp3/ogg streams; the limit
            # is checked again after decoding
            if 0 < f.frames < 2**62 and f.frames / orig_rate > max_seconds:
                raise TooLongError(_too_long(f.frames / orig_rate, max_seconds))
            x = f.read(dtype="float32", always_2d=True)  # (n, channels)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        container = sniff_container(data)
        if container is not None:
            raise DamagedAudioError(
                f"damaged {container} file ({_decode_failure(e)}): it may be truncated "
                f"or corrupt"
            ) from e
        raise UnsupportedAudioError(
            "not a supported audio file (wav, flac, mp3 or ogg could not be decoded)"
        ) from e

    if x.shape[0] == 0:
        raise NoSamplesError("the file decodes to zero audio samples")
    if x.shape[0] / orig_rate > max_seconds:
        raise TooLongError(_too_long(x.shape[0] / orig_rate, max_seconds))
    if not np.isfinite(x).all():
        raise NonFiniteAudioError("the audio holds NaN or infinite sample values")

    mono = x.mean(axis=1) if channels > 1 else x[:, 0]
    if orig_rate != SAMPLE_RATE:
        mono = soxr.resample(mono, orig_rate, SAMPLE_RATE, quality="HQ")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if mono.size == 0:
        raise NoSamplesError("the file is too short to resample to 16 kHz")

    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
    rms_dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
    return Audio(
        samples=mono,
        sha256=audio_sha256(data),
        orig_sample_rate=int(orig_rate),
        orig_channels=int(channels),
        orig_format=str(fmt),
        n_bytes=len(data),
        rms_dbfs=rms_dbfs,
        near_silent=rms_dbfs < SILENCE_DBFS,
    )


def sniff_container(data: bytes) -> str | None:
    """
    "FLAC", "WAV", "Ogg" or "MP3" when the first bytes are that container's signature
    (an MP3 by its ID3 tag or a valid MPEG audio frame header), else None.
    """
    if data[:4] == b"fLaC":
        return "FLAC"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "WAV"
    if data[:4] == b"OggS":
        return "Ogg"
    if data[:3] == b"ID3" or _mpeg_frame_header(data[:4]):
        return "MP3"
    return None


def _mpeg_frame_header(head: bytes) -> bool:
    # 11 sync bits, then no reserved version, layer, bitrate or sample-rate code
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and rate != 0b11


def _decode_failure(e: Exception) -> str:
    """libsndfile's reason in one short line ("not a regular file" means no frames)."""
    if isinstance(e, sf.LibsndfileError):
        text = e.error_string
        if "not a regular file" in text:
            text = "no audio frame could be read"
    else:
        text = str(e)
    text = re.sub(r"^Error( in \w+ file)?\s*[:.]?\s*", "", " ".join(text.split()))
    return text.rstrip(".")[:60] or type(e).__name__


def _too_long(seconds: float, limit: float) -> str:
    return f"the audio is {seconds / 60:.1f} min long; the limit is {limit / 60:.1f} min"


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """
    Tile a short signal up to n samples, or keep the first n samples of a long one.

    This is the evaluation-time padding of the AASIST and TSSDNet papers: a short clip
    is repeated, never zero-padded.
    """
    if len(x) >= n:
        return x[:n]
    reps = math.ceil(n / max(len(x), 1))
    return np.tile(x, reps)[:n]


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """
    Start offsets of windows of ``window`` samples every ``hop`` samples that cover the
    whole signal: the last window is aligned to the end of the file, so no tail is lost.
    A signal shorter than one window gives a single window at 0 (to be tiled).
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def frame_windows(x: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, list[int]]:
    """
    Cut x into windows (see window_starts); returns (batch, starts).

    batch : np.ndarray, shape = (n_windows, window), float32
    """
    starts = window_starts(len(x), window, hop)
    return cut_windows(x, starts, window), starts


def cut_windows(x: np.ndarray, starts: list[int], window: int) -> np.ndarray:
    """the windows of x at ``starts``, each fitted to ``window`` samples -> float32 (n, window)"""
    batch = np.stack([fit_length(x[s : s + window], window) for s in starts])
    return batch.astype(np.float32, copy=False)
