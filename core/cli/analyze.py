"""`analyze`: score (and explain) files through the engine and its store.

Each file gets a progress bar on stderr, fed by the engine's progress(fraction, message)
callback; with --json the bars are off unless --progress is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

from tqdm import tqdm

from core import store
from core.audio.decode import AudioError, load_audio
from core.cli.common import add_db, one_line, print_err
from core.detectors.registry import MODELS, WeightsError
from core.engine.results import Analysis, explanation_json
from core.engine.service import DEFAULT_SEGMENTS, Engine
from core.jsonsafe import finite

QUALITY_SHOWN = (
    "r2",
    "r2_heldout",
    "stability",
    "completeness_gap",
    "deletion_auc",
    "deletion_auc_random",
)


def _how(cached: bool, seconds: float) -> str:
    return f"{'cached' if cached else 'computed'} {seconds:.3f} s"


def print_analysis(name: str, a: Analysis) -> None:
    flag = "  (near-silent)" if a.near_silent else ""
    print(f"{name}  sha256 {a.sha256[:16]}  {a.duration:.2f} s{flag}")
    c = a.combined
    if c is not None:
        p = "" if c.p_spoof is None else f"  P(spoof) {c.p_spoof:.3f}"
        split = "  MODELS DISAGREE" if c.models_disagree else ""
        print(f"  combined: {c.label.upper()}{p}{split}")
        for r in c.reasons:
            print(f"    note: {r}")
    for w in a.warnings:
        print(f"  warning [{w.code}]: {w.message} (measured {w.value:g}, threshold {w.threshold:g})")
    for k, v in a.verdicts.items():
        print(
            f"  {k:<18} P(spoof) {v.p_spoof:.3f}  {v.label:<8}  max {v.max_p_spoof:.3f} "
            f"(window {v.max_window})  {_how(a.cached[k], a.seconds[k])}"
        )
        if len(v.windows) < v.total_windows:
            print(f"    scored {len(v.windows)} of {v.total_windows} windows, evenly spread")
        for w in v.windows:
            print(f"    #{w.index:<4} {w.start:7.2f}-{w.end:7.2f} s  {w.p_spoof:.3f}")


def print_explanation(d: dict) -> None:
    q = d["quality"] or {}
    shown = "  ".join(
        f"{k} {q[k]:.3f}" for k in QUALITY_SHOWN if isinstance(q.get(k), (int, float))
    )
    print(
        f"  {d['model']:<18} {d['method']:<8} window {d['window']} "
        f"({d['window_start']:.2f}-{d['window_end']:.2f} s)  target {d['target_label']}  "
        f"{shown}  {_how(d['cached'], d['seconds'])}"
    )
    order = sorted(range(len(d["values"])), key=lambda i: -abs(d["values"][i]))[:3]
    for i in order:
        bounds = d["feature_bounds"][i] if i < len(d["feature_bounds"]) else []
        where = (
            f"{bounds[0]:.2f}-{bounds[1]:.2f} s"
            + (f", {bounds[2]:.0f}-{bounds[3]:.0f} Hz" if len(bounds) == 4 else "")
            if bounds
            else f"feature {i}"
        )
        se = (d.get("uncertainty") or [None] * len(d["values"]))[i]
        print(f"      {where}  {d['values'][i]:+.4f}" + (f" ± {se:.4f}" if se else ""))
    if q.get("top3_stable") is False:
        print("      rankings unstable: the two halves disagree on the top three")


@contextlib.contextmanager
def file_progress(
    name: str, *, steps: int, enabled: bool
) -> Iterator[Callable[[int], Callable[[float, str], None]]]:
    """
    A bar on stderr for one file of ``steps`` engine calls (its analysis, then each
    explanation); ``step(i)`` is the progress callback of call i, mapped into its
    share of the bar.
    """
    bar = tqdm(
        total=1.0, desc=name, file=sys.stderr, disable=not enabled, leave=True,
        dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
    )  # fmt: skip

    def step(i: int) -> Callable[[float, str], None]:
        def report(fraction: float, message: str) -> None:
            done = (i + min(max(float(fraction), 0.0), 1.0)) / steps
            bar.n = max(bar.n, round(done, 4))  # never moves back
            bar.set_postfix_str(message, refresh=False)
            bar.refresh()

        return report

    try:
        yield step
    finally:
        bar.close()


def _say(fn: Callable, *args) -> None:
    # a line printed while a bar is drawn: clear the bar, print, redraw it
    with tqdm.external_write_mode():
        fn(*args)


def _analyze_file(
    eng, f: str, data: bytes, keys, methods, args, step
) -> tuple[dict, int]:
    """(the file's JSON report, number of failures); prints as it goes unless --json"""
    try:
        audio = load_audio(data)
        a = eng.analyze_audio(audio, data, Path(f).name, models=keys, progress=step(0),
                              max_windows=args.max_windows)  # fmt: skip
    except (AudioError, WeightsError, store.StoreError, ValueError) as e:
        _say(print_err, f"{f}: {one_line(e)}")
        return {"file": f, "error": one_line(e)}, 1
    report, failed = {"file": f, **a.to_json(), "explanations": []}, 0
    if not args.json:
        _say(print_analysis, f, a)
    pairs = [(key, method) for key in keys for method in methods]
    for i, (key, method) in enumerate(pairs, start=1):
        try:
            r = eng.explain_audio(
                audio, key, method, verdict=a.verdicts[key], window=args.window,
                target=args.target, segments=args.segments, n_evals=args.n_evals,
                seed=args.seed, progress=step(i),
            )  # fmt: skip
        except Exception as e:  # one explanation failing must not stop the run
            msg = one_line(e)
            if not isinstance(e, (ValueError, WeightsError, store.StoreError)):
                msg = f"{type(e).__name__}: {msg}"
            _say(print_err, f"{f}: {key} {method}: {msg}")
            failure = {"model": key, "method": method, "error": msg}
            report["explanations"].append(failure)
            failed += 1
            continue
        step(i)(1.0, f"{key} {method} done")
        d = explanation_json(r.explanation, cached=r.cached, seconds=r.seconds)
        report["explanations"].append(d)
        if not args.json:
            _say(print_explanation, d)
    return report, failed


def cmd_analyze(args) -> int:
    methods = [m.strip() for m in (args.explain or "").split(",") if m.strip()]
    try:
        eng = Engine(args.db, use_store=not args.no_store)
        known = eng.methods() if methods else {}
        unknown = [m for m in methods if m not in known]
        if unknown:
            print_err(f"unknown method {', '.join(unknown)}; known: {', '.join(known)}")
            return 1
        keys = eng.model_keys(args.model or None)
    except (ImportError, WeightsError, store.StoreError, ValueError) as e:
        print_err(one_line(e))
        return 1
    failed, out = 0, []
    show_bars = args.progress if args.progress is not None else not args.json
    for f in args.files:
        try:
            data = Path(f).read_bytes()
        except OSError as e:
            print_err(f"{f}: cannot read: {e.strerror or e}")
            out.append({"file": str(f), "error": f"cannot read: {e.strerror or e}"})
            failed += 1
            continue
        with file_progress(
            Path(f).name, steps=1 + len(keys) * len(methods), enabled=show_bars
        ) as step:
            report, n_failed = _analyze_file(
                eng, str(f), data, keys, methods, args, step
            )
        out.append(report)
        failed += n_failed
    if args.json:
        print(json.dumps(finite(out), indent=2))
    return 1 if failed else 0


def at_least_two(text: str) -> int:
    """argparse type of --max-windows"""
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 2:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 2, not {text!r}")
    return n


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="score (and explain) files, through the result store")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--model", action="append", metavar="KEY", choices=list(MODELS),
        help="repeatable; default: every model with weights installed",
    )  # fmt: skip
    p.add_argument("--explain", metavar="METHODS", help="comma-separated, e.g. shap,gradcam,lime")
    p.add_argument("--segments", type=int, default=DEFAULT_SEGMENTS, help="features per explanation")
    p.add_argument("--window", type=int, help="window index (default: most suspicious)")
    p.add_argument("--target", choices=("spoof", "bonafide"), help="default: predicted class")
    p.add_argument("--n-evals", "--n-samples", dest="n_evals", type=int,
                   help="model evaluations for SHAP/LIME (default: the method's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-windows", type=at_least_two, metavar="N",
                   help="score at most N windows per model, evenly spread (default: every "
                   "window; the dashboard caps long files at $DEEPFAKE_MAX_WINDOWS)")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="a progress bar per file on stderr (default: on, off with --json)",
    )  # fmt: skip
    add_db(p)
    p.add_argument("--no-store", action="store_true", help="neither read nor write the store")
    p.set_defaults(func=cmd_analyze)
