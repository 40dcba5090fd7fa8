"""`python -m core ...`: a thin shell over the engine.

Each feature module that adds commands exposes ``add_cli(subparsers)``; the modules are
listed in COMMAND_MODULES and skipped when not present.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

from .audio import AudioError, load_audio
from .registry import (
    MODELS,
    WeightsError,
    available_models,
    fetch_weights,
    weights_dir,
    weights_status,
)

# modules (besides this one) that add subcommands with add_cli(subparsers)
COMMAND_MODULES = ["core.analyze", "core.train", "core.evaluate", "core.store", "core.batch"]


def _print_err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def cmd_models(args) -> int:
    rows = []
    for key, spec in MODELS.items():
        rows.append({**spec.to_json(), "status": weights_status(spec)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"weights directory: {weights_dir()}")
    for r in rows:
        status = {"ok": "present, checksum OK"}.get(r["status"], r["status"])
        print(f"{r['key']:<18} {r['display_name']:<40} {status}")
        if r["status"] != "ok":
            print(f"{'':<18} to get it: {r['how_to_get']}")
    return 0


def cmd_weights_fetch(args) -> int:
    try:
        paths = fetch_weights(args.bundle, source_dir=Path(args.source) if args.source else None)
    except WeightsError as e:
        _print_err(str(e))
        return 1
    for p in paths:
        print(f"installed {p} (SHA-256 verified)")
    keys = ", ".join(k for k in MODELS if MODELS[k].weights in {p.name for p in paths})
    print(f"registered models: {keys}")
    return 0


def cmd_verdicts(args) -> int:
    """analyze without the store (used when core.analyze is absent)"""
    from .detect import Detector

    keys = args.model or available_models()
    if not keys:
        _print_err("no model has weights installed; see `python -m core models`")
        return 1
    try:
        detectors = [Detector.load(k) for k in keys]
    except (WeightsError, KeyError) as e:
        _print_err(str(e))
        return 1
    failed = 0
    out = []
    for f in args.files:
        try:
            audio = load_audio(f)
        except AudioError as e:
            _print_err(f"{f}: {e}")
            failed += 1
            continue
        verdicts = [d.score(audio) for d in detectors]
        out.append(_report_json(f, audio, verdicts))
        if not args.json:
            _print_report(out[-1])
    if args.json:
        print(json.dumps(out, indent=2))
    return 1 if failed else 0


def _report_json(name, audio, verdicts) -> dict:
    return {
        "file": str(name),
        "sha256": audio.sha256,
        "duration": audio.duration,
        "orig_sample_rate": audio.orig_sample_rate,
        "orig_channels": audio.orig_channels,
        "near_silent": audio.near_silent,
        "models": [v.to_json() for v in verdicts],
    }


def _print_report(r: dict) -> None:
    flag = "  (near-silent)" if r["near_silent"] else ""
    print(f"{r['file']}  sha256 {r['sha256'][:16]}  {r['duration']:.2f} s{flag}")
    for v in r["models"]:
        print(f"  {v['model']:<18} P(spoof) {v['p_spoof']:.3f}  {v['label']}")
        for w in v["windows"]:
            print(f"    {w['start']:7.2f}-{w['end']:7.2f} s  {w['p_spoof']:.3f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="Synthetic speech detection and explanation"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list models and the state of their weights")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("weights", help="install published weights")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    f = wsub.add_parser("fetch", help="download (or copy) and verify a published bundle")
    f.add_argument("bundle", choices=["aasist-official"])
    f.add_argument("--from", dest="source", metavar="DIR", help="copy from DIR, no network")
    f.set_defaults(func=cmd_weights_fetch)

    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_cli(sub)

    if "analyze" not in sub.choices:
        p = sub.add_parser("analyze", help="score files with every available model")
        p.add_argument("files", nargs="+", metavar="FILE")
        p.add_argument("--model", action="append", metavar="KEY", choices=list(MODELS))
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_verdicts)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
