"""Batch analysis of a labelled corpus into the store, locally or on a Ray cluster.

Workers (processes of a local pool, or Ray tasks: core.corpus.ray_cluster) decode a file and
compute its missing verdicts and explanations with a store-less Engine; the driver
alone writes to the store, so a cluster needs no shared database and no shared paths.
Keys come from core.engine.keys, exactly as the dashboard builds them: an explanation is always
of the verdict's most suspicious window (resolved before the key is made), so a
batch-computed explanation is the one the Analyze page finds. A rerun skips every file
whose results are stored (resumable); a file that fails is recorded with its one-line
error and the batch goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from core import store
from core.audio.decode import audio_sha256
from core.audio.protocol import ProtocolEntry, audio_path
from core.corpus.tasks import VERDICT, Task, Todo, one_line, work  # noqa: F401 (callers import them here)
from core.engine import keys
from core.engine.service import DEFAULT_SEGMENTS, Engine


@dataclass
class BatchReport:
    name: str
    n_files: int
    computed: int = 0  # files with at least one result computed in this run
    skipped: int = 0  # files whose results were all stored already
    failed: dict[str, str] = field(default_factory=dict)  # file_id -> error
    seconds: float = 0.0
    node: dict[str, str] = field(default_factory=dict)  # file_id -> Ray node id (ray engine)
    # summed over this run's tasks: "audio" (read or ship), "weights" (ship and load,
    # once per worker), "compute", "put" (driver: bytes into the object store)
    task_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def files_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def missing(engine: Engine, sha: str, models, methods, segments: int) -> list[Todo]:
    """What is not in the store for this audio hash, with the keys the pages use."""
    todo = []
    for model in models:
        verdict = engine.stored_verdict(sha, model)
        if verdict is None:
            todo.append(Todo(model, VERDICT))
        for m in methods:
            if verdict is None or engine.find_explanation(
                sha, model, m, window=verdict.max_window, segments=segments
            ) is None:
                todo.append(Todo(model, m, None if verdict is None else verdict.max_window))
    return todo


def save(engine: Engine, result: dict, path: Path, segments: int) -> None:
    """Driver side: write one worker result into the store."""
    sha, db = result["sha256"], engine.db_path
    store.record_audio(result["info"], path.read_bytes(), path.name, db=db)
    for model, verdict in result["verdicts"].items():
        store.get_or_compute_prediction(
            keys.verdict_key(sha, engine.spec(model)), lambda v=verdict: v, db=db
        )
    for model, method, record in result["explanations"]:
        ek = engine.explanation_key(sha, model, method, window=int(record[0]["window"]),
                                    segments=segments)
        store.get_or_compute_explanation(ek, lambda r=record: r, db=db)


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


def run_batch(
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    *,
    name: str,
    protocol: str = "",
    models: list[str] | None = None,
    methods: list[str] | None = None,
    segments: int = DEFAULT_SEGMENTS,
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    ray_pip: bool = False,
    audio_url: str | None = None,
    gpus_per_task: float | None = None,
    db: str | Path | None = None,
    progress: bool = True,
) -> BatchReport:
    """
    Analyse every entry into the store; see the module doc. engine "ray": join the
    cluster at ``ray_address`` (or $RAY_ADDRESS; "auto" = the one on this machine),
    else start a local Ray instance with ``workers`` CPUs; ``ray_pip`` (ship the pinned
    requirements through Ray's pip, else only the code), ``audio_url`` and
    ``gpus_per_task`` are core.corpus.ray_cluster.session's options. Raises
    core.corpus.ray_cluster.ClusterError when the cluster cannot be used.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}: use 'local' or 'ray'")
    eng = Engine(db)
    models = eng.model_keys(models)
    methods = list(methods or [])
    for m in methods:
        if m not in eng.methods():
            raise ValueError(f"unknown method {m!r}; known: {', '.join(eng.methods())}")
    db = eng.db_path
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        cluster = None
        if engine == "ray":  # connect first: a bad address fails before any work
            from core.corpus import ray_cluster

            cluster = stack.enter_context(ray_cluster.session(
                ray_address, num_cpus=workers, pip=ray_pip, audio_url=audio_url,
                gpus_per_task=gpus_per_task,
            ))  # fmt: skip
        report = BatchReport(name=name, n_files=len(entries))
        store.record_batch(name, protocol=protocol, audio_dir=str(audio_dir),
                           models=models, methods=methods, db=db)  # fmt: skip
        tasks = _plan(eng, entries, audio_dir, report, models, methods, segments)
        if cluster is not None:
            results = cluster.results(tasks, {m: eng.spec(m) for m in models})
        else:
            results = _local_results(tasks, workers)
        _collect(eng, results, entries, audio_dir, report, segments, len(tasks), progress)
    report.seconds = time.perf_counter() - t0
    return report


def _plan(eng, entries, audio_dir, report, models, methods, segments) -> list[Task]:
    """One task per file with something missing; missing files are recorded as failed."""
    tasks, db = [], eng.db_path
    for e in entries:
        path = audio_path(audio_dir, e)
        base = dict(batch=report.name, file_id=e.file_id, system=e.system, key=e.key, db=db)
        if not path.exists():
            report.failed[e.file_id] = f"audio file not found: {path}"
            store.record_batch_file(**base, sha256=None, status="failed",
                                    error=report.failed[e.file_id])
            continue
        sha = audio_sha256(path.read_bytes())
        todo = missing(eng, sha, models, methods, segments)
        if not todo:
            report.skipped += 1
            store.record_batch_file(**base, sha256=sha, status="done", error=None)
            continue
        tasks.append(Task(e.file_id, str(path), segments, tuple(todo), sha256=sha))
    return tasks


def _collect(eng, results, entries, audio_dir, report, segments, n_tasks, progress) -> None:
    """Driver: write each result as it arrives; a killed run loses only its in-flight files."""
    by_id, db = {e.file_id: e for e in entries}, eng.db_path
    bar = tqdm(total=n_tasks, unit="file", desc=f"batch {report.name}",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    with bar:
        for result in results:
            e = by_id[result["file_id"]]
            base = dict(batch=report.name, file_id=e.file_id, system=e.system, key=e.key,
                        db=db)  # fmt: skip
            if result.get("node"):
                report.node[e.file_id] = result["node"]
            if result["error"]:
                report.failed[e.file_id] = result["error"]
                store.record_batch_file(**base, sha256=None, status="failed",
                                        error=result["error"])
            else:
                save(eng, result, audio_path(audio_dir, e), segments)
                report.computed += 1
                store.record_batch_file(**base, sha256=result["sha256"], status="done",
                                        error=None)
                for k, v in result.get("seconds", {}).items():
                    report.task_seconds[k] = report.task_seconds.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(failed=len(report.failed))
