"""The dashboard's model work on a Ray cluster: one Ray Serve replica of one model.

A replica loads its model exactly as a batch worker does (core.corpus.ray_cluster:
the checkpoint's bytes come once through the object store, their SHA-256 is checked,
then ``torch.load(..., weights_only=True)``) and never reads a path of the server; the
other files the explanation code reads from the weights directory (the real-speech
reference) come the same way, into a private folder. It runs the same code as the
server would in-process:

- ``score``: Detector.score, streaming ("progress", (done, total)) events;
- ``explain``: core.explain.explain, unchanged, streaming ("progress", (fraction, msg));
- ``score_short``: files of at most BATCH_SIZE windows (a 6-s upload), batched across
  concurrent requests with ``serve.batch``: their windows share forward passes.

Concurrent requests on one replica take fair turns on its Detector's lock
(core.detectors.scheduler), as the server's sessions do in-process. A streamed job sends
("started", where) first, then progress, then ("result", value) or ("error", exception),
and ("alive", None) every HEARTBEAT_S while it has nothing else to say, so the server can
tell a slow job from a lost one. When the server cancels the request (Cancel, a closed
page) the job raises JobCancelled at its next progress report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import pickle
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import numpy as np
from ray import serve

from core.audio.decode import cut_windows, window_starts
from core.corpus.ray_cluster import ShippedWeights, shipped_detector
from core.corpus.tasks import one_line
from core.detectors.detect import Detector, select_windows, verdict_from_windows
from core.detectors.registry import WEIGHTS_ENV, WeightsError
from core.detectors.scheduler import JobCancelled

HEARTBEAT_S = 2.0  # a streamed job says it is alive at least this often
MAX_ONGOING = 16  # requests a replica takes at once; its Detector's lock orders their turns
BATCH_REQUESTS = 8  # short verdict requests merged into one serve.batch call
BATCH_WAIT_S = 0.01  # how long the first of them waits for others


def portable(e: BaseException) -> BaseException:
    """The exception itself if it survives pickling (the server re-raises it), else a
    RuntimeError that names it."""
    e = e.with_traceback(None)
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {one_line(e)}")


def score_together(det: Detector, requests: list[tuple[np.ndarray, int | None]]) -> list:
    """
    Verdicts of several short files whose windows go through shared forward passes,
    equal to det.score(samples, max_windows=cap) of each (same windows, same network).

    requests : [(samples, shape = (n,) float32 at 16 kHz, max_windows or None)]
    """
    t0 = time.perf_counter()
    spec, plans, parts = det.spec, [], []
    for samples, cap in requests:
        starts = window_starts(len(samples), spec.input_length, spec.window_hop)
        chosen = select_windows(len(starts), cap)
        plans.append((len(samples), starts, chosen))
        parts.append(cut_windows(samples, [starts[j] for j in chosen], spec.input_length))
    emb: list = []  # (n, d) embeddings per forward pass, rows in window order
    p = det.p_spoof(np.concatenate(parts), embeddings=emb)
    rows = np.concatenate([e.double().numpy() for e in emb]) if emb else None
    seconds, out, at = time.perf_counter() - t0, [], 0
    for n_samples, starts, chosen in plans:
        v = verdict_from_windows(
            spec, p[at : at + len(chosen)], [starts[j] for j in chosen], n_samples,
            seconds=seconds, indices=chosen, n_windows=len(starts),
        )  # fmt: skip
        if rows is not None:
            mean = rows[at : at + len(chosen)].mean(axis=0)
            v = dataclasses.replace(v, embedding=tuple(float(x) for x in mean))
        out.append(v)
        at += len(chosen)
    return out


def install_files(files: dict[str, tuple[str, Any]]) -> Path | None:
    """
    Write the server's shipped files ({name: (sha256, ObjectRef of the bytes)}), each
    checked, into a private folder, and make it this process's weights directory: the
    replica reads nothing else from there (its weights come through shipped_detector).
    """
    if not files:
        return None
    import ray

    folder = Path(tempfile.mkdtemp(prefix="deepfake-weights-"))
    for name, (sha256, ref) in files.items():
        data = ray.get(ref)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise WeightsError(
                f"{name} from the object store has SHA-256 {actual[:12]}..., expected "
                f"{sha256[:12]}...: refusing to use it"
            )
        (folder / name).write_bytes(data)
    os.environ[WEIGHTS_ENV] = str(folder)
    return folder


class ModelReplica:
    """One model on the cluster (deployed by core.corpus.serve, one app per model)."""

    def __init__(self, weights: ShippedWeights, files: dict | None = None):
        install_files(files or {})
        self.det = shipped_detector(weights)
        self.pool = ThreadPoolExecutor(MAX_ONGOING, thread_name_prefix="job")

    def where(self) -> dict:
        """This replica's process id and Ray node (tests kill it; logs name it)."""
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def pace(self) -> float | None:
        """Measured seconds per window (the server's priorities use it)."""
        return self.det.seconds_per_window

    async def score(self, samples: np.ndarray, max_windows: int | None, work_after: float):
        def job(progress):
            return self.det.score(
                samples, progress=progress, max_windows=max_windows, work_after=work_after
            )

        async for event in self._stream(job):
            yield event

    async def explain(self, samples: np.ndarray, options: dict):
        from core.explain import explain

        async for event in self._stream(lambda progress: explain(
            self.det, samples, progress=progress, **options
        )):  # fmt: skip
            yield event

    @serve.batch(max_batch_size=BATCH_REQUESTS, batch_wait_timeout_s=BATCH_WAIT_S)
    async def score_short(self, requests: list[tuple[np.ndarray, int | None]]) -> list:
        """[(verdict or exception, seconds per window)] per request, in order."""
        loop = asyncio.get_running_loop()
        try:
            verdicts = await loop.run_in_executor(self.pool, score_together, self.det, requests)
        except Exception as e:  # every request of the batch gets the reason
            verdicts = [portable(e)] * len(requests)
        return [(v, self.det.seconds_per_window) for v in verdicts]

    async def _stream(self, job: Callable[[Callable], Any]) -> AsyncIterator[tuple]:
        """Run job(progress) on the pool; yield its events (see the module doc)."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def progress(*args) -> None:
            if stop.is_set():
                raise JobCancelled("cancelled by the server")
            loop.call_soon_threadsafe(events.put_nowait, ("progress", args))

        def run() -> None:
            try:
                out = ("result", (job(progress), self.det.seconds_per_window))
            except BaseException as e:  # sent to the server, which raises it
                out = ("error", portable(e))
            loop.call_soon_threadsafe(events.put_nowait, out)

        yield ("started", self.where())
        self.pool.submit(run)
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(events.get(), HEARTBEAT_S)
                except asyncio.TimeoutError:
                    yield ("alive", None)
                    continue
                yield (kind, value)
                if kind != "progress":
                    return
        finally:  # done, or the server cancelled the request
            stop.set()
