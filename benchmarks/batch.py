"""Files per second of `python -m core batch`: local workers, and a two-node Ray cluster.

    python -m benchmarks batch [--protocol FILE] [--audio-dir DIR] [--limit N]
                               [--model KEY]... [--workers 1,2] [--no-cluster]

Each run writes into a fresh temporary store, so every file is computed. The cluster
row uses benchmarks.cluster (a head plus a second node that cannot see the project or
the corpus, one CPU each, on this machine) and includes joining the cluster and
starting its workers. Per file: "put" is the driver putting the audio bytes into the
object store, "audio" the worker getting them (or reading the file, locally),
"weights" getting, verifying and loading the checkpoint (once per worker process,
spread over its files) and "compute" the analysis itself.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
from pathlib import Path

from core.audio.protocol import parse_protocol
from core.corpus.batch import BatchReport, run_batch
from core.detectors.registry import WeightsError
from core.engine.service import Engine

from .common import MINISPOOF, ROOT, SHARED, peak_rss_mb

PARTS = ("put", "audio", "weights", "compute")


def _row(label: str, workers: int, rep: BatchReport) -> str:
    per = [1000 * rep.task_seconds.get(k, 0.0) / max(rep.computed, 1) for k in PARTS]
    cells = " ".join(f"{v:8.1f}" for v in per)
    return (f"{label:<12} {workers:>7} {rep.computed:>6} {rep.seconds:8.1f} "
            f"{rep.files_per_second:8.2f} {cells}")  # fmt: skip


def _cluster_run(entries, audio_dir, models, kw) -> tuple[BatchReport | None, str]:
    from core.corpus.ray_connect import auth_token

    from .cluster import ClusterUnavailable, TwoNodeCluster

    token, _ = auth_token()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token or secrets.token_hex(16)}
    os.environ.update(auth)  # before this process first uses Ray
    try:
        with TwoNodeCluster(hide=[ROOT, SHARED, Path(audio_dir)], env=auth) as nodes:
            with tempfile.TemporaryDirectory() as tmp:
                rep = run_batch(entries, audio_dir, engine="ray", ray_address=nodes.address,
                                ray_pip=False, db=Path(tmp) / "bench.db", **kw)  # fmt: skip
    except ClusterUnavailable as e:
        return None, str(e)
    return rep, ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks batch",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--protocol", default=str(MINISPOOF / "protocols/minispoof.eval.txt"))
    p.add_argument("--audio-dir", default=str(MINISPOOF / "flac"))
    p.add_argument("--limit", type=int, default=0, help="first N files only (0 = all)")
    p.add_argument("--model", action="append", metavar="KEY")
    p.add_argument("--workers", default="1,2", help="comma-separated local worker counts")
    p.add_argument("--no-cluster", action="store_true", help="skip the two-node Ray run")
    args = p.parse_args(argv)
    entries = parse_protocol(args.protocol)
    if args.limit:
        entries = entries[: args.limit]
    try:
        models = Engine(use_store=False).model_keys(args.model)
    except (WeightsError, ValueError) as e:
        print(e)
        return 1
    kw = dict(name="bench", models=models, progress=False)
    print(f"{len(entries)} files of {args.protocol}; models: {', '.join(models)}")
    print(f"{'engine':<12} {'workers':>7} {'files':>6} {'seconds':>8} {'files/s':>8} "
          + " ".join(f"{k + ' ms':>8}" for k in PARTS) + "  (per file)")  # fmt: skip
    failed = 0
    for n in [int(w) for w in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            rep = run_batch(entries, args.audio_dir, workers=n, db=Path(tmp) / "bench.db", **kw)
        failed += len(rep.failed)
        print(_row("local", n, rep))
    if not args.no_cluster:
        rep, why = _cluster_run(entries, args.audio_dir, models, kw)
        if rep is None:
            print(f"ray 2 nodes: skipped ({why})")
        else:
            failed += len(rep.failed)
            print(_row("ray 2 nodes", 2, rep) + f"  on {len(set(rep.node.values()))} nodes")
    print(f"peak RSS of the driver {peak_rss_mb():.0f} MB")
    return 1 if failed else 0
