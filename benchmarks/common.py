"""What the benchmarks share: test signals, timing, peak memory, where ../shared is."""

from __future__ import annotations

import io
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(
    script: str | Path, log: Path, *, env: Mapping[str, str], args: tuple[str, ...] = (),
    timeout_s: float = 60.0,
) -> tuple[subprocess.Popen, str]:
    """
    `streamlit run SCRIPT` on a free 127.0.0.1 port (cwd: the project root), output to
    ``log``; returns the process and its URL once /_stcore/health answers ok.
    """
    port = free_port()
    with open(log, "wb") as out:  # the child keeps its own copy of the handle
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.port",
             str(port), "--server.headless", "true", "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", *args],
            cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"streamlit did not become healthy within {timeout_s:.0f} s")


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a live process (Linux), in MiB: now and its peak"""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))
