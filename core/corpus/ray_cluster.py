"""Batch tasks on a Ray cluster: shipping weights and audio, and the task loop.

No worker node needs the driver's paths:

- code: the ``core`` package travels in the job's runtime_env (``py_modules``; caches,
  stores, weights and audio excluded); the nodes' packages are checked against the
  driver's when it joins, and the pinned requirements travel too (Ray's ``pip``) only
  when asked (see core.corpus.ray_connect, which also joins the cluster);
- weights: each checkpoint is read once by the driver, checked against the model's
  SHA-256 and put once into the object store (one object per content hash); a worker
  checks the hash of the bytes it receives before ``torch.load(..., weights_only=True)``
  and keeps the Detector for the rest of its life;
- audio: each file's bytes go with its task through the object store, or, with
  ``audio_url``, the worker fetches PREFIX/FILE_ID.flac and checks it against the hash
  the driver computed from its own copy.

The driver alone writes the store (core.corpus.batch). Tasks are submitted in a bounded
window, so driver memory stays flat on a large corpus. A task whose worker dies is
retried once by Ray, then reported as failed with the reason. Problems with the
cluster itself (unreachable address, token authentication, runtime_env set-up) are
ClusterErrors whose str() is one line naming the fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from core.corpus.ray_connect import (  # noqa: F401 (callers catch ClusterError from here)
    ClusterError,
    connect,
    runtime_env_error,
)
from core.corpus.tasks import Task, one_line, work
from core.detectors.detect import Detector
from core.detectors.registry import (
    ModelSpec,
    WeightsError,
    build_model,
    default_device,
    weights_dir,
)

GPU_SHARE = 0.25  # of one GPU per task where the cluster has GPUs: 4 files per GPU at once
IN_FLIGHT_PER_CPU = 2  # tasks sent ahead per cluster CPU: no worker waits on the driver
FETCH_TIMEOUT_S = 60.0  # to read one file from --audio-url


# ------------------------------------------------------------------ shipping weights


@dataclass(frozen=True)
class ShippedWeights:
    spec: ModelSpec
    ref: Any  # ray.ObjectRef of the checkpoint's bytes


def checked(spec: ModelSpec, data: bytes, origin: str) -> bytes:
    """The bytes, if their SHA-256 is the model's; else WeightsError."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise WeightsError(
            f"model {spec.key}: weights from {origin} have SHA-256 {actual[:12]}..., "
            f"expected {spec.sha256[:12]}...: refusing to load them"
        )
    return data


def put_weights(specs: list[ModelSpec]) -> dict[str, ShippedWeights]:
    """Driver: each checkpoint read once, verified, and put once per content hash."""
    import ray

    refs: dict[str, Any] = {}
    out = {}
    for spec in specs:
        if not spec.sha256:
            raise WeightsError(f"model {spec.key}: no registered weights; {spec.how_to_get}")
        if spec.sha256 not in refs:
            path = weights_dir() / spec.weights
            try:
                data = checked(spec, path.read_bytes(), str(path))
            except OSError as e:
                raise WeightsError(
                    f"model {spec.key}: weights file {path} is missing; {spec.how_to_get}"
                ) from e
            refs[spec.sha256] = ray.put(data)
        out[spec.key] = ShippedWeights(spec, refs[spec.sha256])
    return out


_LOADED: dict[tuple[str, str], Detector] = {}  # worker: (model, sha256) -> Detector


def shipped_detector(w: ShippedWeights) -> Detector:
    """Worker: the Detector built from the object store's bytes, once per process."""
    key = (w.spec.key, w.spec.sha256)
    det = _LOADED.get(key)
    if det is None:
        import ray
        import torch

        data = checked(w.spec, ray.get(w.ref), "the object store")
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        net = build_model(w.spec)
        net.load_state_dict(state, strict=True)
        det = _LOADED[key] = Detector(w.spec, net.eval().to(default_device()))
    return det


# ------------------------------------------------------------------- the task loop


def fetch_audio(url: str, sha256: str) -> bytes:
    """Worker: one file from the user's URL prefix, checked against the driver's hash."""
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as r:
        data = r.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ValueError(
            f"{url} has SHA-256 {actual[:12]}..., but the driver's copy has "
            f"{sha256[:12]}...: the two corpora differ"
        )
    return data


def audio_url_for(prefix: str, task: Task) -> str:
    if "://" not in prefix:
        raise ValueError(f"audio URL {prefix!r} needs a scheme: https://, http:// or file://")
    return f"{prefix.rstrip('/')}/{Path(task.path).name}"


def run_task(task: Task, audio: list, weights: dict[str, ShippedWeights]) -> dict:
    """
    Worker (a Ray task): get this file's audio and the Detectors it needs, then
    core.corpus.batch.work. ``audio`` is [ObjectRef of the bytes], or [] to read ``task.url``.
    """
    import ray

    node = ray.get_runtime_context().get_node_id()
    t0 = time.perf_counter()
    try:
        data = ray.get(audio[0]) if audio else fetch_audio(task.url, task.sha256)
        t1 = time.perf_counter()
        detectors = {t.model: shipped_detector(weights[t.model]) for t in task.todo}
    except (OSError, ValueError, WeightsError) as e:
        return {"file_id": task.file_id, "error": one_line(e), "node": node}
    t2 = time.perf_counter()
    out = work(task, data=data, detectors=detectors)
    out["node"] = node
    out["seconds"] = {**out.get("seconds", {}), "audio": t1 - t0, "weights": t2 - t1}
    return out


class Cluster:
    """A connected Ray session (see ``session``): runs tasks, yields their results."""

    def __init__(
        self, *, audio_url: str | None = None, gpus_per_task: float | None = None,
        pip: bool = False,
    ):  # fmt: skip
        import ray

        self.resources = ray.cluster_resources()
        n_gpus = self.resources.get("GPU", 0)
        if gpus_per_task and not n_gpus:
            raise ClusterError(f"--gpus-per-task {gpus_per_task:g}: the cluster has no GPUs")
        # GPU-aware: where the cluster has GPUs, each task takes a share of one
        default = GPU_SHARE if n_gpus else 0
        self.gpus = gpus_per_task if gpus_per_task is not None else default
        self.audio_url = audio_url
        self.pip = pip
        self.window = max(4, IN_FLIGHT_PER_CPU * int(self.resources.get("CPU", 1)))

    def results(self, tasks: list[Task], specs: dict[str, ModelSpec]) -> Iterator[dict]:
        """One result dict per task (core.corpus.batch.work's shape plus "node"), as they finish."""
        import ray
        from ray import exceptions as rx

        needed = {t.model for task in tasks for t in task.todo}
        weights = put_weights([specs[m] for m in specs if m in needed])
        remote = ray.remote(num_cpus=1, num_gpus=self.gpus, max_retries=1)(run_task)
        pending: dict[Any, tuple[Task, float]] = {}
        queue = iter(tasks)
        early: list[dict] = []

        def submit() -> None:
            """Send the next task that can be read; a file gone since planning fails."""
            for task in queue:
                t0 = time.perf_counter()
                try:
                    if self.audio_url:
                        audio = []
                        url = audio_url_for(self.audio_url, task)
                        shipped = dataclasses.replace(task, path=None, url=url)
                    else:
                        audio = [ray.put(Path(task.path).read_bytes())]
                        shipped = dataclasses.replace(task, path=None)
                except (OSError, ValueError) as e:
                    early.append({"file_id": task.file_id, "error": one_line(e)})
                    continue
                use = {t.model: weights[t.model] for t in task.todo}
                ref = remote.remote(shipped, audio, use)
                pending[ref] = (task, time.perf_counter() - t0)
                return

        for _ in range(self.window):
            submit()
        while pending or early:
            if early:
                yield early.pop()
                continue
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            task, put_seconds = pending.pop(ref)
            submit()  # keep the window full while this result is saved
            try:
                out = ray.get(ref)
            except rx.RuntimeEnvSetupError as e:
                raise runtime_env_error(e, pip=self.pip) from None
            except (rx.WorkerCrashedError, rx.NodeDiedError, rx.OutOfMemoryError,
                    rx.LocalRayletDiedError) as e:  # fmt: skip
                out = {"file_id": task.file_id,
                       "error": f"worker died twice (retried once): {one_line(e)}"}  # fmt: skip
            except rx.RayError as e:  # the task's own exception (work() catches most)
                cause = getattr(e, "cause", None) or e
                out = {"file_id": task.file_id,
                       "error": f"{type(cause).__name__}: {one_line(cause)}"}  # fmt: skip
            out.setdefault("seconds", {})["put"] = put_seconds
            yield out


@contextlib.contextmanager
def session(
    address: str | None,
    *,
    num_cpus: int,
    pip: bool = False,
    audio_url: str | None = None,
    gpus_per_task: float | None = None,
) -> Iterator[Cluster]:
    """Connect (see ``connect``), yield a Cluster, disconnect if this call connected."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("engine 'ray' needs the ray package: pip install ray") from e
    started = connect(address, num_cpus=num_cpus, pip=pip)
    try:
        yield Cluster(audio_url=audio_url, gpus_per_task=gpus_per_task, pip=pip)
    finally:
        if started:
            ray.shutdown()
