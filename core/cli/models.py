"""`models` and `weights ...`: the registry, the state of each model's weights, and the
user's own checkpoints (add, list, remove, verify; core.detectors.user_weights)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.cli.common import one_line, print_err
from core.detectors.precision import scoring_precision
from core.detectors.registry import (
    ARCHS,
    MODELS,
    WeightsError,
    default_device,
    fetch_weights,
    user_registry_problems,
    weights_dir,
    weights_status,
)
from core.detectors.user_registry import registry_path
from core.detectors.user_weights import add_weights, remove_weights, verify_weights


def _print_problems() -> int:
    """the user registry's problems on stderr; 1 when there are any"""
    problems = user_registry_problems()
    for p in problems:
        print_err(one_line(p))
    return 1 if problems else 0


def cmd_models(args) -> int:
    try:
        device = default_device()
        rows = [{**spec.to_json(), "status": weights_status(spec),
                 "precision": scoring_precision(spec, device)}
                for spec in MODELS.values()]  # fmt: skip
    except ValueError as e:  # a bad DEEPFAKE_PRECISION
        print_err(str(e))
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return _print_problems()
    print(f"weights directory: {weights_dir()} (user registry {registry_path(weights_dir()).name})")
    for r in rows:
        status = {"ok": "present, checksum OK"}.get(r["status"], r["status"])
        origin = " [user]" if r["origin"] == "user" else ""
        status += f", scores in {r['precision']}"
        print(f"{r['key']:<18} {r['display_name'] + origin:<40} {status}")
        if r["status"] != "ok":
            print(f"{'':<18} to get it: {r['how_to_get']}")
    return _print_problems()


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


def _config(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        config = json.loads(text)
    except ValueError as e:
        raise WeightsError(f"--config is not JSON: {e}") from e
    if not isinstance(config, dict):
        raise WeightsError("--config must be a JSON object, e.g. '{\"first_conv\": 128}'")
    return config


def cmd_weights_add(args) -> int:
    try:
        spec = add_weights(
            args.key,
            arch=args.arch,
            file=Path(args.file),
            name=args.name,
            provenance=args.provenance,
            card=Path(args.card) if args.card else None,
            spoof_index=args.spoof_index,
            config=_config(args.config),
        )
    except (WeightsError, OSError) as e:
        print_err(one_line(e))
        return 1
    print(f"added {spec.key}: {spec.display_name}, arch {spec.arch}, spoof logit {spec.spoof_index}")
    print(f"  weights {weights_dir() / spec.weights} (SHA-256 {spec.sha256[:12]}...)")
    print(f"  provenance: {spec.provenance}")
    return 0


def cmd_weights_remove(args) -> int:
    spec = MODELS.get(args.key)
    if not args.yes:
        if not sys.stdin.isatty():
            print_err(f"removing {args.key} needs confirmation: run it in a terminal or add --yes")
            return 1
        name = f" ({spec.display_name})" if spec else ""
        answer = input(
            f"remove user model {args.key}{name} and its copied weights? Its stored "
            "results stay in the history. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    try:
        deleted = remove_weights(args.key)
    except (WeightsError, OSError) as e:
        print_err(one_line(e))
        return 1
    print(f"removed {args.key}; its stored results stay in the history")
    for p in deleted:
        print(f"  deleted {p}")
    return 0


def cmd_weights_verify(args) -> int:
    checks, problems = verify_weights()
    if args.json:
        print(json.dumps({"checks": [c.to_json() for c in checks], "problems": problems}, indent=2))
    else:
        for c in checks:
            tag = {"ok": "OK"}.get(c.status, c.status)
            print(f"{tag:<18} {c.key:<18} {c.origin:<9} {c.path}")
    for p in problems:
        print_err(one_line(p))
    bad = [c for c in checks if not c.ok]
    if bad or problems:
        print_err(f"{len(bad)} weights file(s) failed, {len(problems)} registry problem(s)")
        return 1
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("models", help="list models and the state of their weights")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("weights", help="install published weights, or add your own")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    f = wsub.add_parser("fetch", help="download (or copy) and verify a published bundle")
    f.add_argument("bundle", choices=["aasist-official"])
    f.add_argument("--from", dest="source", metavar="DIR", help="copy from DIR, no network")
    f.set_defaults(func=cmd_weights_fetch)

    a = wsub.add_parser("add", help="register a trained checkpoint as a new model")
    a.add_argument("key", help="the new model's key (lower case, digits, . _ -)")
    a.add_argument("--arch", required=True, choices=list(ARCHS))
    a.add_argument("--file", required=True, metavar="PATH", help="state dict or checkpoint")
    a.add_argument("--name", help="display name")
    a.add_argument("--provenance", metavar="TEXT", help="where the weights come from")
    a.add_argument("--card", metavar="FILE", help="model card (markdown) to keep with it")
    a.add_argument(
        "--spoof-index", type=int, choices=(0, 1),
        help="which logit means spoof (default: the arch's)",
    )  # fmt: skip
    a.add_argument("--config", metavar="JSON", help="arch config overrides (AASIST)")
    a.set_defaults(func=cmd_weights_add)

    ls = wsub.add_parser("list", help="the same as `models`")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_models)

    r = wsub.add_parser("remove", help="unregister a user model (stored results stay)")
    r.add_argument("key")
    r.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    r.set_defaults(func=cmd_weights_remove)

    v = wsub.add_parser("verify", help="re-hash every weights file; non-zero on a problem")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_weights_verify)
