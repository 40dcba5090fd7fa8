"""`python -m core ...`: a thin shell over the engine.

Each feature module that adds commands exposes ``add_cli(subparsers)``; the modules are
listed in COMMAND_MODULES.

Layer 6 (the top, with ui/): may import any package of core.
"""

from __future__ import annotations

import argparse
import importlib

# modules (besides this one) that add subcommands with add_cli(subparsers)
COMMAND_MODULES = [
    "core.cli.models",
    "core.cli.analyze",
    "core.cli.train",
    "core.cli.evaluate",
    "core.cli.history",
    "core.cli.batch",
    "core.cli.calibrate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="Synthetic speech detection and explanation"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
