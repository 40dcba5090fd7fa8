"""`models` and `weights`: the registry and the state of each model's weights."""

from __future__ import annotations

import json
from pathlib import Path

from ..registry import MODELS, WeightsError, fetch_weights, weights_dir, weights_status
from .common import print_err


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
        print_err(str(e))
        return 1
    for p in paths:
        print(f"installed {p} (SHA-256 verified)")
    keys = ", ".join(k for k in MODELS if MODELS[k].weights in {p.name for p in paths})
    print(f"registered models: {keys}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("models", help="list models and the state of their weights")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("weights", help="install published weights")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    f = wsub.add_parser("fetch", help="download (or copy) and verify a published bundle")
    f.add_argument("bundle", choices=["aasist-official"])
    f.add_argument("--from", dest="source", metavar="DIR", help="copy from DIR, no network")
    f.set_defaults(func=cmd_weights_fetch)
