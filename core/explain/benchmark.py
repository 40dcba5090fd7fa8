"""Cost of every explanation method for every model, on one window.

    python -m core.explain.benchmark [--models K,...] [--methods M,...] [--segments 16]
                                     [--clip FILE] [--threads N] [--exact 8] [--json]

Each model x method runs in a fresh process, so "peak RSS" is that method's own peak
(ru_maxrss: model, input and all perturbation batches). For AASIST models SHAP and then
LIME also run together in one process: the issue's 2 GB bound is on that pair.

Columns: total seconds of explain() (window preparation, attribution, deletion curves)
and their split; N = model evaluations of the attribution itself, N_del = those of the
deletion curves; fwd = bare forward time of one window (median of 3, batch 1, front end
excluded); ratio = attribution seconds / (N x fwd), the overhead of the perturbation
machinery (for gradshap each evaluation is a forward plus a backward, so its ratio
is not comparable). Models whose weights are not installed run with freshly
initialised nets and are marked RANDOM INIT: timing only, their explanations mean
nothing.

--exact S also checks SHAP's accuracy: KernelShap with the default N on S segments
against exact Shapley values from all 2^S coalitions (Spearman, max error / range).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_MODELS = ["tssd1d", "tssd2d", "aasist-official", "aasist-l-official"]
DEFAULT_CLIP = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/minispoof/flac/MS_D_1023594.flac"
)
RANDOM_INIT = "RANDOM INIT (timing only, not a working model)"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_detector(key: str):
    """(detector, weights note): installed weights, else a freshly initialised net"""
    import torch

    from ..detect import Detector
    from ..registry import MODELS, build_model, load_model, weights_status

    spec = MODELS[key]
    if weights_status(spec) == "ok":
        return Detector(spec, load_model(spec)), "installed, checksum OK"
    torch.manual_seed(0)
    return Detector(spec, build_model(spec).eval().to("cpu")), RANDOM_INIT


def load_clip(path: str | None) -> tuple[np.ndarray, str]:
    from ..audio import load_audio

    p = Path(path) if path else DEFAULT_CLIP
    if p.exists():
        return load_audio(p).samples, p.name
    rng = np.random.default_rng(0)  # no clip available: 4 s of noise
    return (0.1 * rng.standard_normal(64_000)).astype(np.float32), "synthetic noise"


def forward_seconds(detector, samples: np.ndarray) -> tuple[float, float]:
    """(median bare forward of one window, its front end time)"""
    batch, _ = detector.windows(samples)
    t = time.perf_counter()
    x = detector.frontend(batch[:1])
    t_front = time.perf_counter() - t
    detector.logits(x)  # warm-up
    times = []
    for _ in range(3):
        t = time.perf_counter()
        detector.logits(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times)), t_front


def run_one(args) -> list[dict]:
    """child process: one model, the given methods in order"""
    import torch

    from . import explain

    if args.threads:
        torch.set_num_threads(args.threads)
    # Captum imports scikit-learn on the first LIME/SHAP fit (1-3 s, once per process):
    # import it now so the table shows the per-window cost
    import sklearn.linear_model  # noqa: F401

    detector, weights = load_detector(args.one)
    samples, clip = load_clip(args.clip)
    fwd, front = forward_seconds(detector, samples)
    rss_loaded = peak_rss_mb()
    rows = []
    for method in args.methods.split(","):
        e = explain(detector, samples, method=method, segments=args.segments, seed=0)
        q = e.quality
        n = q["n_evals"]
        rows.append(
            {
                "model": args.one,
                "weights": weights,
                "clip": clip,
                "method": method,
                "threads": torch.get_num_threads(),
                "window": e.window,
                "target": e.target_label,
                "p_target": e.p_target,
                "features": len(e.values),
                "seconds": e.seconds,
                "prepare": q["seconds_prepare"],
                "attribution": q["seconds_attribution"],
                "deletion": q["seconds_deletion"],
                "n": n,
                "n_deletion": q["n_evals_deletion"],
                "batch": q["batch"],
                "fwd": fwd,
                "frontend": front,
                "ratio": q["seconds_attribution"] / max(n * fwd, 1e-9),
                "rss_loaded_mb": rss_loaded,
                "peak_rss_mb": peak_rss_mb(),
                "r2": q.get("r2"),
                "completeness_rel": q.get("completeness_rel"),
                "deletion_auc": q["deletion_auc"],
                "deletion_auc_random": q.get("deletion_auc_random"),
            }
        )
    if args.exact:
        rows.append(exact_check(detector, samples, args.exact, weights))
    for r in rows:
        print("RESULT " + json.dumps(r), flush=True)
    return rows


def exact_check(detector, samples: np.ndarray, segments: int, weights: str) -> dict:
    """KernelShap at its default N vs exact Shapley values on `segments` features"""
    import itertools
    import math

    from scipy.stats import spearmanr

    from . import explain
    from .window import prepare_window

    e = explain(detector, samples, method="shap", segments=segments, random_orders=0)
    win = prepare_window(detector, samples, segments=segments)
    m = win.n_features
    keep = np.array(list(itertools.product([False, True], repeat=m)))
    t = time.perf_counter()
    f = dict(zip(map(tuple, keep), win.evaluate(keep)))
    t_exact = time.perf_counter() - t
    phi = np.zeros(m)
    for s, fs in f.items():
        k = sum(s)
        for i in (i for i in range(m) if not s[i]):
            w = math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m)
            phi[i] += w * (f[s[:i] + (True,) + s[i + 1 :]] - fs)
    spread = float(np.ptp(phi))
    return {
        "model": detector.spec.key,
        "weights": weights,
        "method": "shap-vs-exact",
        "features": m,
        "n": e.quality["n_evals"],
        "n_exact": len(keep),
        "seconds_exact": t_exact,
        "spearman": float(spearmanr(e.values, phi).statistic) if spread > 0 else None,
        "max_err_over_range": (
            float(np.abs(e.values - phi).max() / spread) if spread > 0 else None
        ),
        "completeness_rel": e.quality["completeness_rel"],
        "exact_range": spread,
    }


def run_all(args) -> list[dict]:
    rows = []
    for model in args.models.split(","):
        jobs = [[m] for m in args.methods.split(",")]
        if model.startswith("aasist") and {"shap", "lime"} <= set(
            args.methods.split(",")
        ):
            jobs.append(["shap", "lime"])
        for i, methods in enumerate(jobs):
            cmd = [
                sys.executable,
                "-m",
                "core.explain.benchmark",
                "--one",
                model,
                "--methods",
                ",".join(methods),
                "--segments",
                str(args.segments),
            ]
            if args.clip:
                cmd += ["--clip", args.clip]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.exact and i == 0:
                cmd += ["--exact", str(args.exact)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            got = [
                json.loads(line[7:])
                for line in out.stdout.splitlines()
                if line.startswith("RESULT ")
            ]
            if out.returncode != 0 or not got:
                print(
                    f"{model} {methods}: failed\n{out.stderr[-2000:]}", file=sys.stderr
                )
                continue
            if len(methods) > 1:  # the pair: keep one row with the pair's peak
                got = [
                    {
                        **got[-1],
                        "method": "+".join(methods),
                        "seconds": sum(g["seconds"] for g in got),
                    }
                ]
            rows += got
            if not args.json:
                for r in got:
                    print_row(r)
    return rows


HEADER = (
    f"{'model':<18} {'method':<10} {'total s':>7} {'attr s':>7} {'del s':>6} {'N':>4} "
    f"{'N_del':>5} {'fwd s':>6} {'ratio':>5} {'peak MB':>7}  quality"
)


def print_row(r: dict) -> None:
    if r["method"] == "shap-vs-exact":
        print(
            f"{r['model']:<18} SHAP accuracy on {r['features']} segments: "
            f"KernelShap N={r['n']} vs exact ({r['n_exact']} coalitions): "
            f"Spearman {r['spearman']}, max error {r['max_err_over_range']} of the "
            f"range, completeness gap {r['completeness_rel']:.2%}"
        )
        return
    quality = []
    if r.get("r2") is not None:
        quality.append(f"R2 {r['r2']:.2f}")
    if r.get("completeness_rel") is not None:
        quality.append(f"completeness gap {r['completeness_rel']:.1%}")
    if r.get("deletion_auc_random") is not None:
        quality.append(
            f"deletion AUC {r['deletion_auc']:.3f} "
            f"vs random {r['deletion_auc_random']:.3f}"
        )
    print(
        f"{r['model']:<18} {r['method']:<10} {r['seconds']:7.2f} "
        f"{r['attribution']:7.2f} "
        f"{r['deletion']:6.2f} {r['n']:4d} {r['n_deletion']:5d} {r['fwd']:6.3f} "
        f"{r['ratio']:5.2f} {r['peak_rss_mb']:7.0f}  {', '.join(quality)}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    from . import METHODS

    p = argparse.ArgumentParser(
        prog="python -m core.explain.benchmark", description=__doc__.split("\n")[0]
    )
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--segments", type=int, default=16)
    p.add_argument(
        "--clip", default=None, help=f"audio file (default {DEFAULT_CLIP.name})"
    )
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads (0 = torch default)"
    )
    p.add_argument(
        "--exact",
        type=int,
        default=0,
        metavar="S",
        help="check SHAP vs exact on S segments",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        run_one(args)
        return 0

    import torch

    from .. import registry

    notes = {
        k: (
            "installed"
            if registry.weights_status(registry.MODELS[k]) == "ok"
            else RANDOM_INIT
        )
        for k in args.models.split(",")
    }
    if not args.json:
        print(
            f"one window per model; clip {load_clip(args.clip)[1]}; "
            f"segments {args.segments}; "
            f"torch threads {args.threads or torch.get_num_threads()}; "
            f"CPU cores {os.cpu_count()}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        for k, v in notes.items():
            print(f"  {k}: weights {v}")
        print(HEADER)
    rows = run_all(args)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
