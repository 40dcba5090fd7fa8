"""Files per second of `python -m core batch` (local engine) per worker count.

    python -m benchmarks batch [--protocol FILE] [--audio-dir DIR] [--limit N]
                               [--model KEY]... [--workers 1,2]

Each worker count runs into a fresh temporary store, so every file is computed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from core.batch import run_batch
from core.data import parse_protocol
from core.registry import WeightsError
from core.service import Engine

from .common import MINISPOOF, peak_rss_mb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks batch",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--protocol", default=str(MINISPOOF / "protocols/minispoof.eval.txt"))
    p.add_argument("--audio-dir", default=str(MINISPOOF / "flac"))
    p.add_argument("--limit", type=int, default=0, help="first N files only (0 = all)")
    p.add_argument("--model", action="append", metavar="KEY")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = p.parse_args(argv)
    entries = parse_protocol(args.protocol)
    if args.limit:
        entries = entries[: args.limit]
    try:
        models = Engine(use_store=False).model_keys(args.model)
    except (WeightsError, ValueError) as e:
        print(e)
        return 1
    print(f"{len(entries)} files of {args.protocol}; models: {', '.join(models)}")
    print(f"{'workers':>7} {'files':>6} {'seconds':>8} {'files/s':>8}")
    failed = 0
    for n in [int(w) for w in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            rep = run_batch(entries, args.audio_dir, name="bench", models=models,
                            workers=n, db=Path(tmp) / "bench.db", progress=False)  # fmt: skip
        failed += len(rep.failed)
        print(f"{n:>7} {rep.computed:>6} {rep.seconds:8.1f} {rep.files_per_second:8.2f}")
    print(f"peak RSS of the driver {peak_rss_mb():.0f} MB")
    return 1 if failed else 0
