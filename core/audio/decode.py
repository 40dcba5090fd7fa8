"""Audio front end: decode, mix down, resample, and fit to a model's input length.

Pure functions of bytes and arrays, in the style of whisper/audio.py. A file that
cannot be decoded is named by what its first bytes say it is: "damaged FLAC file (...)"
when it starts as FLAC, WAV, Ogg or MP3 does, "not a supported audio file" otherwise.
A file whose header gives no length (a FLAC with total_samples = 0, a WAV whose data
chunk says 0 bytes: what encoders writing to a pipe leave) is read to its end, and
decoding stops as soon as it passes the duration limit.
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
UNKNOWN_FRAMES = 2**62  # libsndfile's frame count at or above this means "not known"
BLOCK_FRAMES = 1 << 16  # frames per read when streaming a file of unknown length


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

    data_with_length = _wav_with_length(data)  # a streamed WAV's length, written in
    try:
        with sf.SoundFile(io.BytesIO(data_with_length or data)) as f:
            orig_rate, channels, fmt = f.samplerate, f.channels, f.format
            known = 0 < f.frames < UNKNOWN_FRAMES
            if known and f.frames / orig_rate > max_seconds:
                raise TooLongError(_too_long(f.frames / orig_rate, max_seconds))
            # (n, channels)
            x = f.read(dtype="float32", always_2d=True) if known else None
        if x is None:
            # no length in the header (a piped FLAC encoder writes total_samples = 0,
            # which libsndfile reports as 2**63 - 1 frames): stream to the end instead
            x = _read_to_end(data, max_seconds=max_seconds)
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


class _ForwardReader(sf.SoundFile):
    """
    A SoundFile that reads block after block and never seeks. soundfile seeks back to
    where it read after every read, and libsndfile's FLAC decoder refuses that seek in
    a stream whose STREAMINFO gives no length.
    """

    def seekable(self) -> bool:
        return False


def _read_to_end(data: bytes, *, max_seconds: float) -> np.ndarray:
    """every frame up to the end, (n, channels) float32; TooLongError past the limit"""
    with _ForwardReader(io.BytesIO(data)) as f:
        limit = math.floor(max_seconds * f.samplerate)
        blocks, n = [], 0
        while True:
            block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            if len(block) == 0:
                break
            n += len(block)
            if n > limit:  # decoding stops here: the rest is never held
                raise TooLongError(
                    f"the audio is longer than the limit of {_span(max_seconds)}"
                )
            blocks.append(block)
        if not blocks:
            return np.zeros((0, f.channels), dtype=np.float32)
    return np.concatenate(blocks)


def _wav_with_length(data: bytes) -> bytes | None:
    """
    A copy of a RIFF/WAVE file whose ``data`` chunk says 0 bytes (as a writer that
    cannot seek back leaves it) with the real length written in; None for any other
    file. libsndfile takes the 0 at its word and reads no sample.
    """
    if not (data[:4] == b"RIFF" and data[8:12] == b"WAVE"):
        return None
    at = 12
    while at + 8 <= len(data):
        size = int.from_bytes(data[at + 4 : at + 8], "little")
        if data[at : at + 4] == b"data":
            rest = len(data) - at - 8
            if size != 0 or rest <= 0:
                return None
            fixed = bytearray(data)
            fixed[at + 4 : at + 8] = min(rest, 0xFFFFFFFF).to_bytes(4, "little")
            fixed[4:8] = min(len(data) - 8, 0xFFFFFFFF).to_bytes(4, "little")
            return bytes(fixed)
        at += 8 + size + (size & 1)  # chunks are padded to an even length
    return None


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


def _span(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _too_long(seconds: float, limit: float) -> str:
    return f"the audio is {_span(seconds)} long; the limit is {_span(limit)}"


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
