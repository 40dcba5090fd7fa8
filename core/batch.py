"""Batch analysis of a labelled corpus into the store, locally or on a Ray cluster.

    python -m core batch --protocol P --audio-dir D [--model KEY]... [--explain METHODS]
        [--workers N] [--engine local|ray] [--ray-address ADDR] [--db PATH] [--name NAME]

Workers (processes of a local pool, or Ray tasks) decode a file and compute its verdicts
and explanations; the driver alone writes to the store, so a cluster needs no shared
database. A rerun skips every file whose results are stored (resumable); a file that
fails is recorded with its one-line error and the batch goes on.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from . import store
from .analyze import get_detector, prediction_params
from .audio import AudioError, audio_sha256, load_audio
from .explain import EXPLAINERS, explain, explain_params
from .data import ProtocolEntry, ProtocolError, audio_path, parse_protocol
from .registry import MODELS, WeightsError, available_models


@dataclass(frozen=True)
class Task:
    file_id: str
    path: str
    models: tuple[str, ...]
    methods: tuple[str, ...]  # explanation methods (may be empty)
    segments: int
    todo: tuple[tuple[str, str], ...] = ()  # (model, "verdict" | method) still missing


@dataclass
class BatchReport:
    name: str
    n_files: int
    computed: int = 0  # files with at least one result computed in this run
    skipped: int = 0  # files whose results were all stored already
    failed: dict[str, str] = field(default_factory=dict)  # file_id -> error
    seconds: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def work(task: Task) -> dict:
    """
    Compute one file's missing results. Runs in a worker; touches no database.

    Returns {"file_id", "sha256", "info", "verdicts": {model: verdict json},
    "explanations": [(model, method, params, version, (meta, arrays))], "error": None}
    or {"file_id", "error": one-line message}.
    """
    try:
        data = Path(task.path).read_bytes()
        audio = load_audio(data)
        out = {"file_id": task.file_id, "sha256": audio.sha256, "info": _info(audio),
               "verdicts": {}, "explanations": [], "error": None}
        for model, what in task.todo:
            det = get_detector(model)  # loaded once per worker process
            if what == "verdict":
                out["verdicts"][model] = det.score(audio).to_json()
            else:
                e = explain(det, audio.samples, method=what, segments=task.segments)
                params = explain_params(what, segments=task.segments)
                out["explanations"].append(
                    (model, what, params, EXPLAINERS[what].version, e.to_record())
                )
        return out
    except (AudioError, OSError, WeightsError) as e:
        return {"file_id": task.file_id, "error": str(e).splitlines()[0]}
    except Exception as e:  # a bug on one file must not stop the batch
        return {"file_id": task.file_id, "error": f"{type(e).__name__}: {e}".splitlines()[0]}


def _info(audio) -> dict:
    return {
        "sha256": audio.sha256, "n_bytes": audio.n_bytes, "duration": audio.duration,
        "orig_sample_rate": audio.orig_sample_rate, "orig_channels": audio.orig_channels,
        "orig_format": audio.orig_format, "rms_dbfs": audio.rms_dbfs,
        "near_silent": audio.near_silent,
    }


def _missing(sha: str, models: Iterable[str], methods: Iterable[str], segments: int, db) -> list:
    """(model, what) pairs not in the store for this audio hash"""
    todo = []
    for model in models:
        spec = MODELS[model]
        if store.get_prediction(sha, model, spec.sha256, prediction_params(spec), db=db) is None:
            todo.append((model, "verdict"))
        for m in methods:
            key = store.explanation_key(sha, model, spec.sha256, m, EXPLAINERS[m].version,
                                        explain_params(m, segments=segments))
            if store.get_explanation(key, db=db) is None:
                todo.append((model, m))
    return todo


def _save(result: dict, entry: ProtocolEntry, path: Path, db) -> None:
    """driver side: write one worker result into the store"""
    sha = result["sha256"]
    store.record_audio(result["info"], path.read_bytes(), path.name, db=db)
    for model, verdict in result["verdicts"].items():
        spec = MODELS[model]
        store.get_or_compute_prediction(
            sha, model, spec.sha256, prediction_params(spec), lambda v=verdict: v, db=db
        )
    for model, method, params, version, record in result["explanations"]:
        spec = MODELS[model]
        store.get_or_compute_explanation(
            sha, model, spec.sha256, method, version, params, lambda r=record: r, db=db
        )


def _local_results(tasks: list[Task], workers: int) -> Iterator[dict]:
    if workers <= 1:
        for t in tasks:
            yield work(t)
        return
    ctx = mp.get_context("spawn")  # fork after torch's thread pools start can deadlock
    threads = max(1, (os.cpu_count() or 1) // workers)
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                initargs=(threads,)) as pool:
        futures = [pool.submit(work, t) for t in tasks]
        for f in cf.as_completed(futures):
            yield f.result()


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _ray_results(tasks: list[Task], workers: int, address: str | None) -> Iterator[dict]:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("engine 'ray' needs the ray package: pip install ray") from e
    started = False
    if not ray.is_initialized():
        kw = {"address": address} if address else {"num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, **kw)
        started = True
    try:
        n_gpus = ray.cluster_resources().get("GPU", 0)
        # GPU-aware: when the cluster has GPUs, each task takes a share of one
        remote = ray.remote(num_cpus=1, num_gpus=0.25 if n_gpus else 0)(work)
        pending = [remote.remote(t) for t in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def run_batch(
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    *,
    name: str,
    protocol: str = "",
    models: list[str] | None = None,
    methods: list[str] | None = None,
    segments: int = 16,
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    db: str | Path | None = None,
    progress: bool = True,
) -> BatchReport:
    """Analyse every entry into the store; see the module doc."""
    models = list(models or available_models())
    methods = list(methods or [])
    if not models:
        raise WeightsError("no model has weights installed; see `python -m core models`")
    t0 = time.perf_counter()
    report = BatchReport(name=name, n_files=len(entries))
    store.record_batch(name, protocol=protocol, audio_dir=str(audio_dir), models=models,
                       methods=methods, db=db)

    tasks, by_id = [], {e.file_id: e for e in entries}
    for e in entries:
        path = audio_path(audio_dir, e)
        base = dict(batch=name, file_id=e.file_id, system=e.system, key=e.key, db=db)
        if not path.exists():
            report.failed[e.file_id] = f"audio file not found: {path}"
            store.record_batch_file(**base, sha256=None, status="failed",
                                    error=report.failed[e.file_id])
            continue
        sha = audio_sha256(path.read_bytes())
        todo = _missing(sha, models, methods, segments, db)
        if not todo:
            report.skipped += 1
            store.record_batch_file(**base, sha256=sha, status="done", error=None)
            continue
        tasks.append(Task(e.file_id, str(path), tuple(models), tuple(methods), segments,
                          tuple(todo)))

    if engine == "ray":
        results = _ray_results(tasks, workers, ray_address)
    elif engine == "local":
        results = _local_results(tasks, workers)
    else:
        raise ValueError(f"unknown engine {engine!r}: use 'local' or 'ray'")

    bar = tqdm(total=len(tasks), unit="file", desc=f"batch {name}", disable=not progress,
               dynamic_ncols=True)
    with bar:
        for result in results:
            e = by_id[result["file_id"]]
            base = dict(batch=name, file_id=e.file_id, system=e.system, key=e.key, db=db)
            if result["error"]:
                report.failed[e.file_id] = result["error"]
                store.record_batch_file(**base, sha256=None, status="failed",
                                        error=result["error"])
            else:
                _save(result, e, audio_path(audio_dir, e), db)
                report.computed += 1
                store.record_batch_file(**base, sha256=result["sha256"], status="done",
                                        error=None)
            bar.update(1)
            bar.set_postfix(failed=len(report.failed))
    report.seconds = time.perf_counter() - t0
    return report


def cmd_batch(args) -> int:
    try:
        entries = parse_protocol(args.protocol)
    except ProtocolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    methods = [m for m in (args.explain or "").split(",") if m]
    name = args.name or Path(args.protocol).stem
    try:
        report = run_batch(
            entries, args.audio_dir, name=name, protocol=str(args.protocol),
            models=args.model, methods=methods, segments=args.segments,
            workers=args.workers, engine=args.engine, ray_address=args.ray_address,
            db=args.db,
        )
    except (WeightsError, store.StoreError, RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"batch {report.name}: {report.n_files} files, {report.computed} computed, "
          f"{report.skipped} already stored, {len(report.failed)} failed, "
          f"{report.seconds:.1f} s ({report.files_per_second:.2f} files/s)")
    for file_id, err in sorted(report.failed.items()):
        print(f"  failed {file_id}: {err}", file=sys.stderr)
    return 1 if report.failed else 0


def add_cli(sub) -> None:
    from .explain import METHODS

    p = sub.add_parser("batch", help="analyse every file of a protocol into the store")
    p.add_argument("--protocol", required=True, help="ASVspoof-format protocol file")
    p.add_argument("--audio-dir", required=True, help="folder with FILE_ID.flac")
    p.add_argument("--model", action="append", metavar="KEY", choices=list(MODELS))
    p.add_argument("--explain", metavar="METHODS", help=f"comma-separated: {','.join(METHODS)}")
    p.add_argument("--segments", type=int, default=16)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", metavar="ADDR", help="existing Ray cluster (default: local)")
    p.add_argument("--name", help="batch name (default: the protocol file's stem)")
    p.add_argument("--db", metavar="PATH", help="store path (default: $DEEPFAKE_DB or cache/analyses.db)")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("corpus", help="per-attack EER and attribution profiles of a batch")
    p.add_argument("name", help="batch name")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--csv-dir", metavar="DIR", help="also write eer.csv and profiles.csv here")
    p.add_argument("--db", metavar="PATH")
    p.set_defaults(func=cmd_corpus)


def cmd_corpus(args) -> int:
    from .corpus import summary_json

    try:
        summary = summarise_batch(args.name, db=args.db)
    except (store.StoreError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
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


def _current(rows: list[dict], by: tuple[str, ...]) -> list[dict]:
    """
    One row per group: made with the registry's current weights when there is one,
    else the newest (rows arrive newest first per model).
    """
    best: dict[tuple, dict] = {}
    for r in rows:
        k = tuple(r[c] for c in by)
        spec = MODELS.get(r["model"])
        is_current = spec is not None and r["weights_sha256"] == spec.sha256
        if k not in best or (is_current and best[k]["weights_sha256"] != spec.sha256):
            best[k] = r
    return list(best.values())


def summarise_batch(name: str, *, db=None):
    """CorpusSummary of a stored batch: scores and explanations joined with labels."""
    from .corpus import summarise

    files = store.batch_files(name, db=db)
    if not files:
        raise KeyError(f"no batch named {name!r} in the store")
    label = {f["sha256"]: f for f in files if f["sha256"] and f["status"] == "done"}
    scores, records = [], []
    for sha, f in label.items():
        analysis = store.get_analysis(sha, db=db, arrays=True)
        if analysis is None:
            continue
        for p in _current(analysis["predictions"], ("model",)):
            scores.append({"model": p["model"], "system": f["system"], "key": f["key"],
                           "score": p["p_spoof"]})
        for e in _current(analysis["explanations"], ("model", "method")):
            meta, arrays = e["meta"], e["arrays"]
            records.append({
                "model": e["model"], "method": e["method"], "system": f["system"],
                "target_label": meta["target_label"], "window_start": meta["window_start"],
                "window_end": meta["window_end"], "feature_kind": meta["feature_kind"],
                "feature_bounds": arrays.get("feature_bounds"),
                "values": arrays.get("values"),
            })
    return summarise(scores, records)
