"""`batch` and `corpus`: analyse a labelled protocol into the store, then aggregate it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core import store
from core.audio.protocol import ProtocolError, parse_protocol
from core.cli.common import add_db, print_err
from core.corpus.batch import run_batch
from core.corpus.ray_connect import ClusterError
from core.corpus.summary import summarise_batch, summary_json
from core.detectors.registry import MODELS, WeightsError
from core.engine.service import DEFAULT_SEGMENTS, Engine


def cmd_batch(args) -> int:
    try:
        entries = parse_protocol(args.protocol)
    except ProtocolError as e:
        print_err(str(e))
        return 2
    if args.ray_no_pip:
        print("note: --ray-no-pip is the default now (only the code is shipped) and does "
              "nothing; --ray-pip ships requirements.txt", file=sys.stderr)  # fmt: skip
    methods = [m for m in (args.explain or "").split(",") if m]
    name = args.name or Path(args.protocol).stem
    try:
        report = run_batch(
            entries, args.audio_dir, name=name, protocol=str(args.protocol),
            models=args.model, methods=methods, segments=args.segments,
            workers=args.workers, engine=args.engine, ray_address=args.ray_address,
            ray_pip=args.ray_pip, audio_url=args.audio_url,
            gpus_per_task=args.gpus_per_task, db=args.db, progress=args.progress,
        )  # fmt: skip
    except ClusterError as e:  # unreachable, refused token, runtime_env: the setup, not the data
        print_err(str(e))
        return 2
    except (WeightsError, store.StoreError, RuntimeError, ValueError) as e:
        print_err(str(e))
        return 1
    nodes = f" on {len(set(report.node.values()))} Ray nodes" if report.node else ""
    print(f"batch {report.name}: {report.n_files} files, {report.computed} computed, "
          f"{report.skipped} already stored, {len(report.failed)} failed, "
          f"{report.seconds:.1f} s ({report.files_per_second:.2f} files/s){nodes}")
    for file_id, err in sorted(report.failed.items()):
        print(f"  failed {file_id}: {err}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_corpus(args) -> int:
    try:
        summary = summarise_batch(Engine(args.db), args.name)
    except (store.StoreError, KeyError) as e:
        print_err(str(e).strip("'\""))
        return 1
    if args.csv_dir:
        out = Path(args.csv_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eer.csv").write_text(summary.eer_csv())
        (out / "profiles.csv").write_text(summary.profiles_csv())
        (out / "summary.json").write_text(summary_json(summary))
    if args.json:
        print(summary_json(summary))
        return 0
    print(f"{'model':<18} {'system':<6} {'EER %':>7} {'bona':>5} {'spoof':>5}")
    for r in summary.eer:
        print(f"{r['model']:<18} {r['system']:<6} {r['eer_percent']:7.2f} "
              f"{r['n_bonafide']:5d} {r['n_spoof']:5d}")
    return 0


def add_cli(sub) -> None:
    from core.explain import METHODS

    p = sub.add_parser("batch", help="analyse every file of a protocol into the store")
    p.add_argument("--protocol", required=True, help="ASVspoof-format protocol file")
    p.add_argument("--audio-dir", required=True, help="folder with FILE_ID.flac")
    p.add_argument("--model", action="append", metavar="KEY", choices=list(MODELS))
    p.add_argument("--explain", metavar="METHODS", help=f"comma-separated: {','.join(METHODS)}")
    p.add_argument("--segments", type=int, default=DEFAULT_SEGMENTS)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="join this Ray cluster: HOST:PORT of `ray start --head`, ray://HOST:PORT "
                   "or auto (default: $RAY_ADDRESS, else a local Ray instance)")
    p.add_argument("--ray-pip", action="store_true",
                   help="have Ray install requirements.txt for this job on every node "
                   "(needs virtualenv there; default: ship only the code, and check that "
                   "every node has this machine's package versions)")
    p.add_argument("--ray-no-pip", action="store_true",
                   help="accepted for old command lines: shipping only the code is the default")
    p.add_argument("--audio-url", metavar="PREFIX",
                   help="cluster workers read PREFIX/FILE_ID.flac (https://, http://, file://) "
                   "instead of receiving the bytes from the driver")
    p.add_argument("--gpus-per-task", type=float, metavar="F",
                   help="GPU share per Ray task (default: 0.25 where the cluster has GPUs)")
    p.add_argument("--name", help="batch name (default: the protocol file's stem)")
    # the same switch as `analyze`
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="a progress bar with throughput and ETA on stderr (default: on)")
    add_db(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("corpus", help="per-attack EER and attribution profiles of a batch")
    p.add_argument("name", help="batch name")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--csv-dir", metavar="DIR", help="also write eer.csv and profiles.csv here")
    add_db(p)
    p.set_defaults(func=cmd_corpus)
