"""ASVspoof-style protocols and the audio they list: parsing, checking, whole-file loading.

Protocol lines follow ASVspoof 2019 LA: ``SPEAKER FILE_ID - SYSTEM_ID KEY`` with KEY
``bonafide`` or ``spoof`` and SYSTEM_ID ``-`` for bona fide. The ASVspoof 2021 LA/DF
keys (``SPEAKER FILE_ID CODEC TRANSMISSION SYSTEM_ID KEY ...``) are read too, so the same
commands work on the larger corpora. Audio lives at ``AUDIO_DIR/FILE_ID.flac``.

The training batches drawn from these files are core.training.data's.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio.decode import load_audio
from core.audio.features import cqt_log_power

KEYS = ("bonafide", "spoof")
AUDIO_EXT = ".flac"
CQT_CACHE_VERSION = "v1"  # bump when core.audio.features changes what cqt_log_power returns


class ProtocolError(ValueError):
    """A protocol line that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class ProtocolEntry:
    speaker: str
    file_id: str
    system: str  # attack id, "-" for bona fide
    key: str  # "bonafide" | "spoof"
    line: int  # 1-based line number in the protocol file

    @property
    def is_spoof(self) -> bool:
        return self.key == "spoof"


def parse_protocol_line(line: str, *, where: str = "", lineno: int = 0) -> ProtocolEntry:
    """One protocol line -> ProtocolEntry; raises ProtocolError naming ``where:lineno``."""
    fields = line.split()
    if len(fields) >= 5 and fields[4] in KEYS:  # 2019 LA: SPK FILE - SYS KEY
        speaker, file_id, _, system, key = fields[:5]
    elif len(fields) >= 6 and fields[5] in KEYS:  # 2021 LA/DF keys: SPK FILE CODEC TX SYS KEY
        speaker, file_id, system, key = fields[0], fields[1], fields[4], fields[5]
    else:
        raise ProtocolError(
            f"{where}:{lineno}: expected 'SPEAKER FILE_ID - SYSTEM_ID KEY' with KEY "
            f"'bonafide' or 'spoof', got {line.strip()!r}"
        )
    if key == "bonafide":
        system = "-"
    elif system == "-":
        raise ProtocolError(f"{where}:{lineno}: spoof line without an attack SYSTEM_ID")
    return ProtocolEntry(speaker=speaker, file_id=file_id, system=system, key=key, line=lineno)


def parse_protocol(path: str | Path) -> list[ProtocolEntry]:
    """
    Read a protocol file; blank lines and lines starting with '#' are skipped.

    Raises ProtocolError (a ValueError) with the file name and 1-based line number of the
    first malformed line, or when a FILE_ID appears twice or the file has no entries.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ProtocolError(f"cannot read protocol {path}: {e.strerror or e}") from e
    entries, seen = [], {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = parse_protocol_line(line, where=str(path), lineno=lineno)
        if entry.file_id in seen:
            raise ProtocolError(
                f"{path}:{lineno}: FILE_ID {entry.file_id} already listed on line "
                f"{seen[entry.file_id]}"
            )
        seen[entry.file_id] = lineno
        entries.append(entry)
    if not entries:
        raise ProtocolError(f"{path}: no protocol entries")
    return entries


def audio_path(audio_dir: str | Path, entry: ProtocolEntry) -> Path:
    return Path(audio_dir) / f"{entry.file_id}{AUDIO_EXT}"


def check_audio(entries: list[ProtocolEntry], audio_dir: str | Path) -> None:
    """Raise FileNotFoundError naming the first missing audio file (and how many are)."""
    missing = [audio_path(audio_dir, e) for e in entries if not audio_path(audio_dir, e).exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"audio file not found: {missing[0]}{more}")


def count_labels(entries: list[ProtocolEntry]) -> dict:
    """{'bonafide': n, 'spoof': n, 'systems': {SYS: n}}"""
    systems: dict[str, int] = {}
    for e in entries:
        if e.is_spoof:
            systems[e.system] = systems.get(e.system, 0) + 1
    n_spoof = sum(systems.values())
    return {
        "bonafide": len(entries) - n_spoof,
        "spoof": n_spoof,
        "systems": dict(sorted(systems.items())),
    }


def load_waveforms(
    entries: list[ProtocolEntry], audio_dir: str | Path, *, progress: bool = False
) -> list[np.ndarray]:
    """Decode every file once (16 kHz mono float32); a small corpus fits in memory."""
    check_audio(entries, audio_dir)
    it = entries
    if progress:
        from tqdm import tqdm

        it = tqdm(entries, desc="loading audio", unit="file", leave=False)
    return [load_audio(audio_path(audio_dir, e)).samples for e in it]


def load_cqts(
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """
    CQT log power of each whole file, computed once and optionally cached on disk.

    Returns a list of np.ndarray, shape = (432, 1 + n_samples // 256), float32 dB. The
    cache key includes the audio file's size and mtime, so a changed file is recomputed.
    """
    check_audio(entries, audio_dir)
    it = entries
    if progress:
        from tqdm import tqdm

        it = tqdm(entries, desc="CQT (cached per file)", unit="file", leave=False)
    out = []
    for e in it:
        path = audio_path(audio_dir, e)
        cached = None
        if cache_dir is not None:
            st = path.stat()
            tag = hashlib.sha1(
                f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CQT_CACHE_VERSION}".encode()
            ).hexdigest()[:16]
            cached = Path(cache_dir) / f"{e.file_id}.{tag}.npy"
            if cached.exists():
                out.append(np.load(cached))
                continue
        spec = cqt_log_power(load_audio(path).samples)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, spec)
        out.append(spec)
    return out


def crop_or_tile(x: np.ndarray, n: int, rng: np.random.Generator | None) -> np.ndarray:
    """
    Fit the last axis of x to n: a random crop of a long signal, or the signal repeated
    from a random phase when it is short (the papers tile, never zero-pad).
    rng None -> deterministic: the first n (tiled from the start), as at evaluation.

    x : np.ndarray, shape = (..., length) -> shape = (..., n)
    """
    length = x.shape[-1]
    if length >= n:
        start = 0 if rng is None else int(rng.integers(0, length - n + 1))
        return x[..., start : start + n]
    reps = math.ceil(n / length) + 1
    tiled = np.concatenate([x] * reps, axis=-1)
    start = 0 if rng is None else int(rng.integers(0, length))
    return tiled[..., start : start + n]
