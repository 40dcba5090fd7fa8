"""Small helpers every command shares: error lines and the --db option."""

from __future__ import annotations

import sys

DB_ENV = "DEEPFAKE_DB"


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def print_err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def add_db(p) -> None:
    p.add_argument(
        "--db", metavar="PATH",
        help=f"store file (default: ${DB_ENV}, else cache/analyses.db)",
    )  # fmt: skip
