"""Cost of every explanation method for every model, on one window, through the engine.

    python -m benchmarks explain [--models K,...] [--methods M,...] [--segments 16]
                                 [--clip FILE] [--threads N] [--exact 8] [--json]

Each model x method runs in a fresh process, so "peak RSS" is that method's own peak
(ru_maxrss: model, input and all perturbation batches). For AASIST models SHAP and then
LIME also run together in one process: the issue's 2 GB bound is on that pair.

Columns: total seconds of the explanation (window preparation, attribution, deletion
curves) and their split; N = model evaluations of the attribution itself, N_del = those
of the deletion curves; fwd = bare forward time of one window (median of 3, batch 1,
front end excluded); ratio = attribution seconds / (N x fwd), the overhead of the
perturbation machinery (for gradshap each evaluation is a forward plus a backward, so
its ratio is not comparable). Models whose weights are not installed run with freshly
initialised nets and are marked RANDOM INIT: timing only, their explanations mean
nothing.

--exact S also checks SHAP's accuracy: SHAP with its default N on S segments against
exact Shapley values of the log-odds from all 2^S coalitions (Spearman, max error /
range); `python -m benchmarks shapley` is the full accuracy-versus-cost benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from core.audio.decode import load_audio
from core.detectors.registry import MODELS, build_model, weights_status
from core.engine.service import Engine
from core.explain import METHODS

from .common import MINISPOOF, ROOT, encoded, peak_rss_mb

DEFAULT_MODELS = ["tssd1d", "tssd2d", "aasist-official", "aasist-l-official"]
DEFAULT_CLIP = MINISPOOF / "flac/MS_D_1023594.flac"
RANDOM_INIT = "RANDOM INIT (timing only, not a working model)"


def engine_for(key: str) -> tuple[Engine, str]:
    """(engine without a store, weights note): installed weights, else a random net"""
    if weights_status(MODELS[key]) == "ok":
        return Engine(use_store=False), "installed, checksum OK"
    import torch

    from core.detectors.detect import Detector

    torch.manual_seed(0)
    detector = Detector(MODELS[key], build_model(MODELS[key]).eval().to("cpu"))
    return Engine(use_store=False, detectors={key: detector}), RANDOM_INIT


def load_clip(path: str | None):
    """(Audio, name): the clip, or 4 s of seeded noise when there is none"""
    p = DEFAULT_CLIP if path is None else os.path.expanduser(path)
    if os.path.exists(p):
        return load_audio(p), os.path.basename(p)
    noise = (0.1 * np.random.default_rng(0).standard_normal(64_000)).astype(np.float32)
    return load_audio(encoded(noise, "WAV", "FLOAT")), "synthetic noise"


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

    if args.threads:
        torch.set_num_threads(args.threads)
    # Captum imports scikit-learn on the first LIME/SHAP fit (1-3 s, once per process):
    # import it now so the table shows the per-window cost
    import sklearn.linear_model  # noqa: F401

    key = args.one
    eng, weights = engine_for(key)
    audio, clip = load_clip(args.clip)
    verdict, _ = eng.verdict(audio, key)
    fwd, front = forward_seconds(eng.detector(key), audio.samples)
    rss_loaded = peak_rss_mb()
    rows = []
    for method in args.methods.split(","):
        r = eng.explain_audio(audio, key, method, verdict=verdict, segments=args.segments)
        e = r.explanation
        q = e.quality
        n = q["n_evals"]
        rows.append(
            {
                "model": key, "weights": weights, "clip": clip, "method": method,
                "threads": torch.get_num_threads(), "window": e.window,
                "target": e.target_label, "p_target": e.p_target, "features": len(e.values),
                "seconds": e.seconds, "prepare": q["seconds_prepare"],
                "attribution": q["seconds_attribution"], "deletion": q["seconds_deletion"],
                "n": n, "n_deletion": q["n_evals_deletion"], "batch": q["batch"],
                "fwd": fwd, "frontend": front,
                "ratio": q["seconds_attribution"] / max(n * fwd, 1e-9),
                "rss_loaded_mb": rss_loaded, "peak_rss_mb": peak_rss_mb(),
                "r2": q.get("r2"), "completeness_rel": q.get("completeness_rel"),
                "deletion_auc": q["deletion_auc"],
                "deletion_auc_random": q.get("deletion_auc_random"),
            }
        )  # fmt: skip
    if args.exact:
        rows.append(exact_check(eng, key, audio, verdict, args.exact, weights))
    for r in rows:
        print("RESULT " + json.dumps(r), flush=True)
    return rows


def exact_check(eng: Engine, key: str, audio, verdict, segments: int, weights: str) -> dict:
    """KernelShap at its default N vs exact Shapley values on `segments` features"""
    from scipy.stats import spearmanr

    from core.explain import shapley
    from core.explain.window import prepare_window

    e = eng.explain_audio(audio, key, "shap", verdict=verdict, segments=segments).explanation
    win = prepare_window(eng.detector(key), audio.samples, window=e.window, segments=segments)
    t = time.perf_counter()
    phi = shapley.exact(win.game, win.n_features)  # the log-odds, as SHAP explains
    t_exact = time.perf_counter() - t
    spread = float(np.ptp(phi))
    return {
        "model": key, "weights": weights, "method": "shap-vs-exact",
        "features": win.n_features, "n": e.quality["n_samples"],
        "n_exact": 2**win.n_features, "seconds_exact": t_exact,
        "spearman": float(spearmanr(e.values, phi).statistic) if spread > 0 else None,
        "max_err_over_range": (
            float(np.abs(e.values - phi).max() / spread) if spread > 0 else None
        ),
        "completeness_rel": e.quality["completeness_rel"], "exact_range": spread,
    }  # fmt: skip


def child_command(args, model: str, methods: list[str], exact: bool) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks", "explain", "--one", model,
           "--methods", ",".join(methods), "--segments", str(args.segments)]  # fmt: skip
    if args.clip:
        cmd += ["--clip", args.clip]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if exact and args.exact:
        cmd += ["--exact", str(args.exact)]
    return cmd


def run_all(args) -> list[dict]:
    rows = []
    methods = args.methods.split(",")
    for model in args.models.split(","):
        jobs = [[m] for m in methods]
        if model.startswith("aasist") and {"shap", "lime"} <= set(methods):
            jobs.append(["shap", "lime"])
        for i, job in enumerate(jobs):
            out = subprocess.run(child_command(args, model, job, exact=i == 0),
                                 capture_output=True, text=True, cwd=ROOT)  # fmt: skip
            got = [json.loads(line[7:]) for line in out.stdout.splitlines()
                   if line.startswith("RESULT ")]  # fmt: skip
            if out.returncode != 0 or not got:
                print(f"{model} {job}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            if len(job) > 1:  # the pair: keep one row with the pair's peak
                got = [{**got[-1], "method": "+".join(job),
                        "seconds": sum(g["seconds"] for g in got)}]  # fmt: skip
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
            f"SHAP N={r['n']} vs exact ({r['n_exact']} coalitions): "
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
            f"deletion AUC {r['deletion_auc']:.3f} vs random {r['deletion_auc_random']:.3f}"
        )
    print(
        f"{r['model']:<18} {r['method']:<10} {r['seconds']:7.2f} {r['attribution']:7.2f} "
        f"{r['deletion']:6.2f} {r['n']:4d} {r['n_deletion']:5d} {r['fwd']:6.3f} "
        f"{r['ratio']:5.2f} {r['peak_rss_mb']:7.0f}  {', '.join(quality)}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks explain",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--segments", type=int, default=16)
    p.add_argument("--clip", default=None, help=f"audio file (default {DEFAULT_CLIP.name})")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--exact", type=int, default=0, metavar="S",
                   help="check SHAP vs exact on S segments")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        run_one(args)
        return 0

    import torch

    if not args.json:
        print(f"one window per model; clip {load_clip(args.clip)[1]}; "
              f"segments {args.segments}; "
              f"torch threads {args.threads or torch.get_num_threads()}; "
              f"CPU cores {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        for k in args.models.split(","):
            note = "installed" if weights_status(MODELS[k]) == "ok" else RANDOM_INIT
            print(f"  {k}: weights {note}")
        print(HEADER)
    rows = run_all(args)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if rows else 1
