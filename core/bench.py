"""Benchmarks that print measured numbers.

    python -m core.bench verdict [--model KEY]... [--repeats N]
    python -m core.bench batch [--limit N] [--model KEY]... [--workers 1,2]
    python -m core.bench explain ...   (core.explain.benchmark)
    python -m core.bench store ...     (core.store_bench)

`verdict` times, for a 6-s and a 60-s clip: decoding (FLAC bytes -> 16 kHz), the time
to a verdict per model (models already loaded, front end included) and for all models
together, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import importlib
import io
import resource
import sys
import time

import numpy as np
import soundfile as sf
import torch

from .audio import SAMPLE_RATE, load_audio
from .detect import Detector
from .registry import available_models, default_device


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """a harmonic tone with syllable-rate amplitude modulation plus noise"""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    x += 0.01 * rng.standard_normal(len(t))
    return (0.1 * x / np.max(np.abs(x))).astype(np.float32)


def _flac(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SAMPLE_RATE, format="FLAC")
    return buf.getvalue()


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_verdict(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench verdict")
    p.add_argument("--model", action="append", metavar="KEY")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    keys = args.model or available_models()
    if not keys:
        print("no model has weights installed; see `python -m core models`")
        return 1
    t0 = time.perf_counter()
    detectors = [Detector.load(k) for k in keys]
    load_s = time.perf_counter() - t0
    print(f"device {default_device()}, torch threads {torch.get_num_threads()}, "
          f"models loaded in {load_s:.2f} s: {', '.join(keys)}")
    print(f"timings are the best of {args.repeats} runs after one warm-up")
    print(f"{'clip':>6}  {'step':<22} {'windows':>7} {'seconds':>8}")
    for seconds in (6, 60):
        data = _flac(_speech_like(seconds))
        decode = _best_of(lambda: load_audio(data), args.repeats)
        audio = load_audio(data)
        print(f"{seconds:>5}s  {'decode (FLAC->16k)':<22} {'':>7} {decode:8.3f}")
        total = 0.0
        for d in detectors:
            v = d.score(audio)  # warm-up
            s = _best_of(lambda: d.score(audio), args.repeats)
            total += s
            print(f"{seconds:>5}s  {d.spec.key:<22} {len(v.windows):>7} {s:8.3f}")
        together = _best_of(lambda: [d.score(audio) for d in detectors], args.repeats)
        print(f"{seconds:>5}s  {'all models together':<22} {'':>7} {together:8.3f}"
              f"   (+decode {decode + together:.3f})")
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    return 0


def bench_batch(argv: list[str]) -> int:
    """files per second of `core batch` (local engine) on minispoof eval, per worker count"""
    import tempfile
    from pathlib import Path

    from .batch import run_batch
    from .data import parse_protocol

    default_root = Path(__file__).resolve().parent.parent.parent / "shared/data/minispoof"
    p = argparse.ArgumentParser(prog="python -m core.bench batch")
    p.add_argument("--protocol", default=str(default_root / "protocols/minispoof.eval.txt"))
    p.add_argument("--audio-dir", default=str(default_root / "flac"))
    p.add_argument("--limit", type=int, default=0, help="first N files only (0 = all)")
    p.add_argument("--model", action="append", metavar="KEY")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = p.parse_args(argv)
    entries = parse_protocol(args.protocol)
    if args.limit:
        entries = entries[: args.limit]
    models = args.model or available_models()
    print(f"{len(entries)} files of {args.protocol}; models: {', '.join(models)}")
    print(f"{'workers':>7} {'files':>6} {'seconds':>8} {'files/s':>8}")
    for n in [int(w) for w in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            rep = run_batch(entries, args.audio_dir, name="bench", models=models,
                            workers=n, db=Path(tmp) / "bench.db", progress=False)
        print(f"{n:>7} {rep.computed:>6} {rep.seconds:8.1f} {rep.files_per_second:8.2f}")
    print(f"peak RSS of the driver {peak_rss_mb():.0f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("verdict", "batch", "explain", "store"):
        print(__doc__)
        return 2
    if argv[0] == "verdict":
        return bench_verdict(argv[1:])
    if argv[0] == "batch":
        return bench_batch(argv[1:])
    module = {"explain": "core.explain.benchmark", "store": "core.store_bench"}[argv[0]]
    return importlib.import_module(module).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
