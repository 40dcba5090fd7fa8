"""Store benchmark: time to load one stored full analysis, and store size per analysis.

    python -m benchmarks store [--analyses 3] [--repeats 20] [--seconds 10] [--keep DIR]
                               [--dense-all]

Fills a temporary store through ``core.engine.service.Engine`` with full analyses: every
registered model's verdict (stand-in detectors with the real specs, random scores) and
its Grad-CAM, SHAP, GradientShap and LIME explanations (a stand-in backend with the
real method keys), with arrays of the real sizes: 16 features on the model's own grid
(spec.front_end.features), deletion curves, and dense maps on the input grid
(spec.front_end.grid_shape: 64 600 floats for AASIST, 96 000 for Res-TSSDNet 1D,
432 x 401 for the CQT model) where the method has one: Grad-CAM (a smooth upsampled
map) and GradientShap (noisy, barely compressible). ``--dense-all`` gives every
explanation a noisy dense map: an upper bound.

Then it times ``Engine.analysis`` + ``Engine.explanations`` (every array decoded into
Explanation objects) for one analysis: once in a fresh process (the first access pays
the schema check), then the median and worst of ``--repeats`` loads. Target: < 100 ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

import core.explain
from core import store
from core.audio.decode import SAMPLE_RATE, load_audio
from core.detectors.detect import verdict_from_windows
from core.detectors.registry import MODELS
from core.engine.service import Engine
from core.explain.base import Explanation

from .common import ROOT, encoded

METHODS = ("gradcam", "shap", "gradshap", "lime")
DENSE_METHODS = ("gradcam", "gradshap")  # the methods of core.explain with a dense map
SEGMENTS = 16
TARGET_MS = 100.0


class StandInDetector:
    """A real spec (weights hash filled in), random window scores: no network."""

    def __init__(self, spec):
        self.spec = dataclasses.replace(spec, sha256=spec.sha256 or "0" * 64)

    def windows(self, samples: np.ndarray):
        from core.audio.decode import frame_windows

        return frame_windows(samples, self.spec.input_length, self.spec.window_hop)

    def score(self, audio, progress=None):
        _, starts = self.windows(audio.samples)
        rng = np.random.default_rng(len(audio.samples))
        return verdict_from_windows(
            self.spec, rng.random(len(starts)), starts, len(audio.samples), seconds=1.0
        )


def dense_map(shape: tuple[int, ...], method: str, rng: np.random.Generator) -> np.ndarray:
    """Grad-CAM-like (a coarse map upsampled to the grid) or sample-level noise"""
    if method != "gradcam":
        return rng.standard_normal(shape).astype(np.float32)
    coarse = torch.from_numpy(rng.random(tuple(max(2, s // 64) for s in shape)))
    mode = "linear" if len(shape) == 1 else "bilinear"
    up = torch.nn.functional.interpolate(coarse[None, None], shape, mode=mode)
    return up[0, 0].numpy().astype(np.float32)


def stand_in_backend(dense_all: bool) -> SimpleNamespace:
    """core.explain's call shape: real method keys and versions, synthetic results"""

    def explain(detector, samples, *, method, window=None, target=None, segments=SEGMENTS,
                n_samples=None, seed=0, progress=None):  # fmt: skip
        spec, fe = detector.spec, detector.spec.front_end
        rng = np.random.default_rng(seed + len(samples) + len(method))
        _, bounds = fe.features(torch.zeros(1, *fe.input_shape), segments=segments, bands=4)
        end = min(spec.input_length, len(samples)) / SAMPLE_RATE
        dense = dense_all or method in DENSE_METHODS
        return Explanation(
            model=spec.key, weights_sha256=spec.sha256, method=method,
            method_version=str(core.explain.EXPLAINERS[method].version),
            params=core.explain.explain_params(method, window=window, target=target,
                                               segments=segments, seed=seed),
            target=spec.spoof_index, target_label="spoof", window=window or 0,
            window_start=0.0, window_end=end, p_target=0.9, feature_kind=fe.feature_kind,
            feature_bounds=bounds, values=rng.standard_normal(len(bounds)),
            dense=dense_map(fe.grid_shape, method, rng) if dense else None,
            deletion_curve=np.sort(rng.random(len(bounds) + 1))[::-1],
            deletion_random=np.sort(rng.random(len(bounds) + 1))[::-1],
            quality={"r2": 0.7, "deletion_auc": 0.3, "deletion_auc_random": 0.5,
                     "n_evals": 1000},
            seconds=5.0,
        )  # fmt: skip

    return SimpleNamespace(explain=explain, explain_params=core.explain.explain_params,
                           EXPLAINERS=core.explain.EXPLAINERS)  # fmt: skip


def fill(db: Path, n_analyses: int, seconds: float, dense_all: bool = False) -> list[str]:
    """n_analyses full analyses of distinct noise clips; returns their hashes"""
    detectors = {k: StandInDetector(spec) for k, spec in MODELS.items()}
    eng = Engine(db, detectors=detectors, backend=stand_in_backend(dense_all))
    shas = []
    for i in range(n_analyses):
        x = 0.1 * np.random.default_rng(i).standard_normal(int(seconds * SAMPLE_RATE))
        data = encoded(x.astype(np.float32), "WAV", "PCM_16")
        audio = load_audio(data)
        a = eng.analyze_audio(audio, data, f"bench_{i}.wav")
        for key, v in a.verdicts.items():
            for method in METHODS:
                eng.explain_audio(audio, key, method, verdict=v, segments=SEGMENTS)
        shas.append(a.sha256)
    return shas


def load_full(eng: Engine, sha: str):
    return eng.analysis(sha), eng.explanations(sha)


def first_load_ms(db: Path, sha: str) -> float:
    """one load in a fresh process, as the first page view after a restart"""
    code = (
        "import sys, time\nfrom core.engine.service import Engine\n"
        "eng = Engine(sys.argv[1]); t0 = time.perf_counter()\n"
        "eng.analysis(sys.argv[2]); eng.explanations(sys.argv[2])\n"
        "print((time.perf_counter() - t0) * 1000)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(db), sha], cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks store",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--analyses", type=int, default=3, help="full analyses in the store")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    p.add_argument("--keep", metavar="DIR", help="build the store in DIR and keep it")
    p.add_argument("--dense-all", action="store_true", help="a dense map on every explanation")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.keep or tmp) / "bench.db"
        t0 = time.perf_counter()
        shas = fill(db, args.analyses, args.seconds, args.dense_all)
        fill_s = time.perf_counter() - t0
        first_ms = first_load_ms(db, shas[0])
        eng = Engine(db)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            analysis, expls = load_full(eng, shas[-1])
            times.append((time.perf_counter() - t0) * 1000)
        stats = store.store_stats(db=db)

    n_dense = sum(e.dense.size for e in expls if e.dense is not None)
    print(f"store: {db}" if args.keep else "store: temporary")
    print(f"one full analysis = {len(analysis.verdicts)} models x {len(METHODS)} methods = "
          f"{len(expls)} explanations, {n_dense:,} dense floats; "
          f"{args.analyses} analyses filled in {fill_s:.2f} s")
    print(f"load one full analysis: first {first_ms:.1f} ms, median "
          f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms over "
          f"{args.repeats} (target < {TARGET_MS:.0f} ms)")
    per_db = stats["db_bytes"] / args.analyses
    per_audio = stats["audio_bytes"] / args.analyses
    print(f"store size per analysis: {per_db / 2**20:.2f} MiB in the database + "
          f"{per_audio / 2**20:.2f} MiB audio ({args.seconds:g} s 16-bit WAV) = "
          f"{(per_db + per_audio) / 2**20:.2f} MiB")
    return 0 if statistics.median(times) < TARGET_MS else 1
