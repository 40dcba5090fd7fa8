"""Time to a verdict: decoding, each model, all models together, peak memory.

    python -m benchmarks verdict [--model KEY]... [--repeats 3] [--clips 6,60]

For each clip length (a speech-like FLAC): decoding (FLAC bytes -> 16 kHz), the time to
a verdict per model through the engine (models already loaded, front end included, no
store), every model together (Engine.analyze_audio), what the input warnings and the
combined calibrated verdict add to that, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import time

import torch

from core.audio.decode import load_audio
from core.audio.quality import assess
from core.detectors.registry import WeightsError, default_device
from core.engine.service import Engine

from .common import best_of, encoded, peak_rss_mb, speech_like


def judgement(eng: Engine, audio, verdicts) -> None:
    """what an analysis adds to the verdicts: signal quality, window warnings, fusion"""
    signal = assess(audio.samples, orig_sample_rate=audio.orig_sample_rate,
                    orig_format=audio.orig_format)  # fmt: skip
    eng.judge(signal, verdicts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks verdict",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--model", action="append", metavar="KEY")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--clips", default="6,60", help="clip lengths in seconds, comma-separated")
    args = p.parse_args(argv)
    eng = Engine(use_store=False)
    try:
        keys = eng.model_keys(args.model)
    except (WeightsError, ValueError) as e:
        print(e)
        return 1
    t0 = time.perf_counter()
    for k in keys:
        eng.detector(k)
    load_s = time.perf_counter() - t0
    arith = ", ".join(f"{k} {eng.detector(k).precision}" for k in keys)
    print(f"device {default_device()}, torch threads {torch.get_num_threads()}, "
          f"models loaded in {load_s:.2f} s: {', '.join(keys)} (scoring in {arith}; "
          f"core.detectors.precision, DEEPFAKE_PRECISION=fp32 for float32 only)")
    print(f"timings are the best of {args.repeats} runs after one warm-up")
    print(f"{'clip':>6}  {'step':<22} {'windows':>7} {'seconds':>8}")
    for seconds in [float(s) for s in args.clips.split(",")]:
        data = encoded(speech_like(seconds))
        decode = best_of(lambda: load_audio(data), args.repeats)
        audio = load_audio(data)
        print(f"{seconds:>5g}s  {'decode (FLAC->16k)':<22} {'':>7} {decode:8.3f}")
        for k in keys:
            v, _ = eng.verdict(audio, k)  # warm-up
            s = best_of(lambda: eng.verdict(audio, k), args.repeats)
            print(f"{seconds:>5g}s  {k:<22} {len(v.windows):>7} {s:8.3f}")
        together = best_of(
            lambda: eng.analyze_audio(audio, data, "bench.flac", models=keys), args.repeats
        )
        print(f"{seconds:>5g}s  {'all models together':<22} {'':>7} {together:8.3f}"
              f"   (+decode {decode + together:.3f})")
        verdicts = {k: eng.verdict(audio, k)[0] for k in keys}
        judge = best_of(lambda: judgement(eng, audio, verdicts), args.repeats)
        print(f"{seconds:>5g}s  {'warnings + combined':<22} {'':>7} {judge:8.3f}"
              f"   (quality measurements, calibration, fusion, bands)")
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    return 0
