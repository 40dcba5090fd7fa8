"""What the benchmarks share: test signals, timing, peak memory, where ../shared is."""

from __future__ import annotations

import io
import os
import resource
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from core.audio.decode import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPFAKE_SHARED_DIR", ROOT.parent / "shared"))
MINISPOOF = SHARED / "data" / "minispoof"


def peak_rss_mb() -> float:
    """this process's peak resident memory (ru_maxrss is in KiB on Linux)"""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """a harmonic tone with syllable-rate amplitude modulation plus noise, 16 kHz"""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    x += 0.01 * rng.standard_normal(len(t))
    return (0.1 * x / np.max(np.abs(x))).astype(np.float32)


def encoded(x: np.ndarray, fmt: str = "FLAC", subtype: str | None = None) -> bytes:
    """16 kHz samples as the bytes of an audio file (what an upload would be)"""
    buf = io.BytesIO()
    sf.write(buf, x, SAMPLE_RATE, format=fmt, subtype=subtype)
    return buf.getvalue()


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """the fastest of ``repeats`` calls, seconds"""
    best = float("inf")
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
