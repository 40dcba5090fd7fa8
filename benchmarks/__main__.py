"""`python -m benchmarks NAME [options]`: run one benchmark (see the package doc)."""

from __future__ import annotations

import importlib
import sys

import benchmarks

NAMES = ("verdict", "batch", "explain", "store", "shapley", "cluster", "load", "aasist", "uploads")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in NAMES:
        print(benchmarks.__doc__)
        return 2
    return importlib.import_module(f"benchmarks.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
