"""Store benchmark: time to load one stored full analysis, and store size per analysis.

    python -m core.store_bench [--analyses 3] [--repeats 20] [--keep DIR]

Fills a temporary store with full analyses - every registered model's verdict and its
Grad-CAM, SHAP (segment KernelShap plus the dense GradientShap map, as core.explain
makes them) and LIME explanations - with arrays of the real sizes: 16 features,
deletion curves, and dense maps on the input grid (64 600 floats for AASIST, 96 000 for
Res-TSSDNet 1D, 432 x 401 for the CQT model) where the method has one: Grad-CAM (a
smooth upsampled map) and GradientShap (noisy, barely compressible). ``--dense-all``
gives every explanation a noisy dense map: an upper bound.

Then it times ``load_analysis`` + ``load_explanations`` (every array decoded into
Explanation objects) for one analysis: once as the first access of the process, then
the median and worst of ``--repeats`` loads. Target: < 100 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from . import analyze, store
from .audio import SAMPLE_RATE, frame_windows
from .detect import verdict_from_windows
from .explain.base import Explanation
from .registry import MODELS

METHODS = ("gradcam", "shap", "gradshap", "lime")
DENSE_METHODS = ("gradcam", "gradshap")  # the methods of core.explain with a dense map
SEGMENTS = 16
CQT_SHAPE = (432, 401)  # bins x frames of the 2D Res-TSSDNet's 6.4 s input
TARGET_MS = 100.0


def _clip(i: int, seconds: float) -> bytes:
    rng = np.random.default_rng(i)
    x = 0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _dense(spec, method: str, rng: np.random.Generator) -> np.ndarray:
    shape = CQT_SHAPE if spec.frontend == "cqt" else (spec.n_samples,)
    if method == "gradcam":
        # a coarse map upsampled to the input grid, as Grad-CAM gives
        coarse = rng.random(tuple(max(2, s // 64) for s in shape))
        grids = [np.linspace(0, c - 1, s) for c, s in zip(coarse.shape, shape)]
        if len(shape) == 1:
            return np.interp(grids[0], np.arange(coarse.shape[0]), coarse).astype(
                np.float32
            )
        rows = np.stack(
            [np.interp(grids[1], np.arange(coarse.shape[1]), r) for r in coarse]
        )
        return np.stack(
            [np.interp(grids[0], np.arange(coarse.shape[0]), c) for c in rows.T], 1
        ).astype(np.float32)
    return rng.standard_normal(shape).astype(
        np.float32
    )  # sample-level gradients: noisy


def _explanation(
    spec, method: str, window_end: float, rng, dense_all: bool
) -> Explanation:
    if spec.frontend == "cqt":
        t = np.linspace(0, window_end, SEGMENTS // 4 + 1)
        f = np.geomspace(15.0, 8000.0, 5)
        bounds = np.array(
            [[t[i], t[i + 1], f[j], f[j + 1]] for i in range(4) for j in range(4)]
        )
    else:
        t = np.linspace(0, window_end, SEGMENTS + 1)
        bounds = np.stack([t[:-1], t[1:]], 1)
    return Explanation(
        model=spec.key,
        weights_sha256=spec.sha256 or "0" * 64,
        method=method,
        method_version="1",
        params={"window": 0, "target": None, "segments": SEGMENTS, "seed": 0},
        target=spec.spoof_index,
        target_label="spoof",
        window=0,
        window_start=0.0,
        window_end=window_end,
        p_target=0.9,
        feature_kind="time-frequency" if spec.frontend == "cqt" else "time",
        feature_bounds=bounds.astype(np.float64),
        values=rng.standard_normal(len(bounds)),
        dense=(
            _dense(spec, method, rng) if dense_all or method in DENSE_METHODS else None
        ),
        deletion_curve=np.sort(rng.random(len(bounds) + 1))[::-1],
        deletion_random=np.sort(rng.random(len(bounds) + 1))[::-1],
        quality={"r2": 0.7, "deletion_auc": 0.3, "random_auc": 0.5, "n_evals": 1000},
        seconds=5.0,
    )


def fill(
    db: Path, n_analyses: int, seconds: float, dense_all: bool = False
) -> list[str]:
    shas = []
    for i in range(n_analyses):
        data = _clip(i, seconds)
        sha = hashlib.sha256(data).hexdigest()
        n = int(seconds * SAMPLE_RATE)
        info = {
            "sha256": sha, "n_bytes": len(data), "duration": seconds,
            "orig_sample_rate": SAMPLE_RATE, "orig_channels": 1, "orig_format": "WAV",
            "rms_dbfs": -20.0, "near_silent": False,
        }  # fmt: skip
        store.record_audio(info, data, f"bench_{i}.wav", db=db)
        rng = np.random.default_rng(i)
        for spec in MODELS.values():
            weights = spec.sha256 or "0" * 64
            starts = frame_windows(
                np.zeros(n, np.float32), spec.n_samples, spec.window_hop
            )[1]
            v = verdict_from_windows(
                spec, rng.random(len(starts)), starts, n, seconds=1.0
            )
            store.get_or_compute_prediction(
                sha,
                spec.key,
                weights,
                analyze.prediction_params(spec),
                v.to_json,
                db=db,
            )
            for method in METHODS:
                e = _explanation(
                    spec, method, min(spec.n_samples, n) / SAMPLE_RATE, rng, dense_all
                )
                store.get_or_compute_explanation(
                    sha, spec.key, weights, method, "1", e.params, e.to_record, db=db
                )
        shas.append(sha)
    return shas


def load_full(sha: str, db: Path) -> tuple[analyze.Analysis, list[Explanation]]:
    return analyze.load_analysis(sha, db=db), analyze.load_explanations(sha, db=db)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m core.store_bench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--analyses", type=int, default=3, help="full analyses in the store")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    p.add_argument("--keep", metavar="DIR", help="build the store in DIR and keep it")
    p.add_argument(
        "--dense-all", action="store_true", help="a dense map on every explanation"
    )
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.keep or tmp) / "bench.db"
        t0 = time.perf_counter()
        shas = fill(db, args.analyses, args.seconds, args.dense_all)
        fill_s = time.perf_counter() - t0
        with store.open_db(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        store._READY.clear()  # the first load pays the schema check, as a new process
        t0 = time.perf_counter()
        analysis, expls = load_full(shas[0], db)
        first_ms = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            load_full(shas[-1], db)
            times.append((time.perf_counter() - t0) * 1000)

        stats = store.store_stats(db=db)
        n_arrays = sum(e.dense.size for e in expls if e.dense is not None)
        print(f"store: {db}" if args.keep else "store: temporary")
        print(
            f"one full analysis = {len(analysis.verdicts)} models x {len(METHODS)} methods = "
            f"{len(expls)} explanations, {n_arrays:,} dense floats; "
            f"{args.analyses} analyses filled in {fill_s:.2f} s"
        )
        print(
            f"load one full analysis: first {first_ms:.1f} ms, median "
            f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms over "
            f"{args.repeats} (target < {TARGET_MS:.0f} ms)"
        )
        per_db = stats["db_bytes"] / args.analyses
        per_audio = stats["audio_bytes"] / args.analyses
        print(
            f"store size per analysis: {per_db / 2**20:.2f} MiB in the database + "
            f"{per_audio / 2**20:.2f} MiB audio ({args.seconds:.0f} s 16-bit WAV) = "
            f"{(per_db + per_audio) / 2**20:.2f} MiB"
        )
        ok = statistics.median(times) < TARGET_MS
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
