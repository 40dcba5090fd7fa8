"""The dashboard's verdicts and explanations on Ray Serve (core.engine.compute's backend).

    compute = compute_from_settings(secrets, os.environ)   # None: run in-process
    Engine(db, compute=compute)

With ``ray_address`` in the secrets file or $DEEPFAKE_RAY_ADDRESS, the server joins that
cluster (as ``batch`` does: the core package in py_modules, every node's packages
checked; core.corpus.ray_connect) and, on first use of a model, deploys one Serve
application per model (core.corpus.replica.ModelReplica): ``ray_replicas`` replicas,
each with ``ray_num_cpus`` CPUs and ``ray_num_gpus`` GPUs (default: a quarter of one
where the cluster has GPUs). The checkpoint is read here once, checked against its
SHA-256 and put once into the object store; replicas check it again before loading. The
real-speech reference the explanations read (core.explain.reference) travels the same way.

The Engine keeps everything else: keys, the store's single-flight claims (only the
server writes the store), progress, Cancel. Progress streams back from the replica;
a cancelled job (JobCancelled or Streamlit stopping the page's run inside a progress
report) cancels its request on the cluster. A lost replica, a cluster that went away, or
one that stops answering (no event for IDLE_TIMEOUT_S: replicas send one every
core.corpus.replica.HEARTBEAT_S) raises ComputeUnavailable with one line; the Engine
then drops its claim, and the next request checks the cluster (reconnecting if needed)
before it deploys again.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from core.corpus.ray_cluster import GPU_SHARE, ClusterError, put_weights
from core.corpus.tasks import one_line
from core.detectors.detect import BATCH_SIZE, Verdict, n_windows, select_windows
from core.detectors.registry import MODELS, ModelSpec
from core.engine.compute import ComputeUnavailable

ADDRESS_ENV, ADDRESS_SECRET = "DEEPFAKE_RAY_ADDRESS", "ray_address"
SIZING = {  # setting: (environment variable, type, default)
    "num_cpus": ("DEEPFAKE_RAY_NUM_CPUS", float, 1.0),
    "num_gpus": ("DEEPFAKE_RAY_NUM_GPUS", float, None),  # None: GPU_SHARE where there are GPUs
    "replicas": ("DEEPFAKE_RAY_REPLICAS", int, 1),
}
START_TIMEOUT_S = 180.0  # until a replica takes the job (it may be restarting: torch import)
IDLE_TIMEOUT_S = 60.0  # between two events of a running job
DEPLOY_TIMEOUT_S = 300.0  # until a model's replicas run
HEALTH_TIMEOUT_S = 15.0  # for the check after a failure
# Ray ends a driver that loses the cluster's GCS for 60 s; the server must outlive it
GCS_RECONNECT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
APP_PREFIX = "deepfake-"


@dataclass(frozen=True)
class ServeSettings:
    address: str
    num_cpus: float = 1.0
    num_gpus: float | None = None
    replicas: int = 1


def serve_settings(secrets: Mapping[str, Any], environ: Mapping[str, str]) -> ServeSettings | None:
    """The cluster settings (the secrets file wins over the environment), or None when
    no address is set. ValueError (one line) for a value that is not a number."""
    address = secrets.get(ADDRESS_SECRET) or environ.get(ADDRESS_ENV, "").strip()
    if not address:
        return None
    kw = {}
    for name, (env, kind, _) in SIZING.items():
        raw = secrets.get(f"ray_{name}", environ.get(env, ""))
        if raw in ("", None):
            continue
        try:
            kw[name] = kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"ray_{name} / ${env} must be a number, not {raw!r}") from None
        if kw[name] < (1 if name == "replicas" else 0):
            raise ValueError(f"ray_{name} / ${env} is out of range: {raw!r}")
    return ServeSettings(str(address), **kw)


def compute_from_settings(secrets: Mapping, environ: Mapping) -> "ServeCompute | None":
    settings = serve_settings(secrets, environ)
    return None if settings is None else ServeCompute(settings)


class ServeExplainers:
    """core.explain, except that explain() of a RemoteDetector runs on its replica."""

    def __getattr__(self, name: str) -> Any:
        import core.explain

        return getattr(core.explain, name)

    def explain(self, detector, samples, **options):
        if isinstance(detector, RemoteDetector):
            return detector.explain(samples, **options)
        import core.explain

        return core.explain.explain(detector, samples, **options)


class ServeCompute:
    """The cluster's deployments, joined and deployed lazily (the first job waits)."""

    explainers = ServeExplainers()

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self._lock = threading.Lock()  # connecting and deploying: one at a time
        self._detectors_lock = threading.Lock()  # never held while the cluster is asked
        self._handles: dict[tuple[str, str], Any] = {}  # (model, weights sha) -> handle
        self._detectors: dict[tuple[str, str], RemoteDetector] = {}
        self._files: dict[str, tuple[str, Any]] | None = None  # shipped once per connection
        self._connected = False
        self._suspect = False  # a job failed: check the cluster before the next one

    def detector(self, key: str) -> "RemoteDetector":
        if key not in MODELS:
            raise ValueError(f"unknown model {key!r}; known: {', '.join(MODELS)}")
        spec = MODELS[key]
        with self._detectors_lock:
            return self._detectors.setdefault((key, spec.sha256), RemoteDetector(self, spec))

    def handle(self, spec: ModelSpec):
        """The model's deployment handle: connect, check and deploy when needed."""
        with self._lock:
            if self._suspect:
                self._recheck()
            if not self._connected:
                self._connect()
            k = (spec.key, spec.sha256)
            if k not in self._handles:
                self._handles[k] = self._deploy(spec)
            return self._handles[k]

    def failed(self) -> None:
        """A job failed on the cluster: the next one checks it first."""
        self._suspect = True

    def _connect(self) -> None:
        from core.corpus.ray_connect import connect

        os.environ.setdefault(GCS_RECONNECT_ENV, str(10**9))
        try:
            connect(self.settings.address, num_cpus=1)
        except ClusterError as e:
            raise ComputeUnavailable(str(e)) from None
        self._connected = True

    def _recheck(self) -> None:
        """After a failure: keep the connection if the cluster answers, else start over."""
        import ray
        from ray import serve

        self._suspect = False
        if not self._connected:
            return
        ok = in_thread(lambda: serve.status(), HEALTH_TIMEOUT_S) if ray.is_initialized() else None
        if ok is None:
            self._handles.clear()
            self._files = None
            self._connected = False
            in_thread(ray.shutdown, HEALTH_TIMEOUT_S)

    def _deploy(self, spec: ModelSpec):
        import ray
        from ray import serve

        from core.corpus.replica import MAX_ONGOING, ModelReplica

        s = self.settings
        gpus = s.num_gpus
        if gpus is None:
            gpus = GPU_SHARE if ray.cluster_resources().get("GPU", 0) else 0
        shipped = put_weights([spec])[spec.key]
        if self._files is None:
            self._files = {name: (hashlib.sha256(data).hexdigest(), ray.put(data))
                           for name, data in explanation_files().items()}  # fmt: skip
        app = serve.deployment(
            name=spec.key, num_replicas=s.replicas, max_ongoing_requests=MAX_ONGOING,
            ray_actor_options={"num_cpus": s.num_cpus, "num_gpus": gpus},
        )(ModelReplica).bind(shipped, self._files)  # fmt: skip

        def run():
            serve.start(proxy_location="Disabled")
            return serve.run(app, name=APP_PREFIX + spec.key, route_prefix=None)

        try:
            handle = in_thread(run, DEPLOY_TIMEOUT_S, reraise=True)
        except Exception as e:
            self.failed()
            raise ComputeUnavailable(
                f"could not start {spec.key} on the Ray cluster: {one_line(e)}"
            ) from None
        if handle is None:
            self.failed()
            raise ComputeUnavailable(
                f"{spec.key}'s replicas did not start on the Ray cluster within "
                f"{DEPLOY_TIMEOUT_S:g} s: does it have {s.num_cpus:g} CPUs free per replica "
                "(ray_num_cpus / $DEEPFAKE_RAY_NUM_CPUS)?"
            )
        return handle


def explanation_files() -> dict[str, bytes]:
    """The files besides the weights that the explanation code reads from the weights
    directory: the real-speech reference and its sidecar, as this server has them (the
    replica's core.explain.reference checks one against the other, as it would here;
    a missing one is not shipped, and the replica then fails as this server would)."""
    from core.explain import reference

    path = reference.reference_path()
    files = [path, reference.sidecar(path)]
    return {f.name: f.read_bytes() for f in files if f.exists()}


def in_thread(fn: Callable[[], Any], timeout: float, *, reraise: bool = False) -> Any:
    """fn() in a daemon thread; its value, or None if it took longer than ``timeout``
    (the thread is left to finish on its own). Its exception is raised with ``reraise``,
    else gives None."""
    box: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            box.put((True, fn()))
        except BaseException as e:
            box.put((False, e))

    threading.Thread(target=run, daemon=True, name="ray-call").start()
    try:
        ok, value = box.get(timeout=timeout)
    except queue.Empty:
        return None
    if not ok:
        if reraise:
            raise value
        return None
    return value


class RemoteDetector:
    """A Detector-like whose work runs on the model's Serve deployment."""

    lock = None  # fair turns are taken on the replica, by its own Detector
    keeps_turns = False

    def __init__(self, compute: ServeCompute, spec: ModelSpec):
        self.compute = compute
        self.spec = spec
        self.seconds_per_window: float | None = None  # the replica's measured pace

    def score(
        self, audio, *, progress=None, max_windows: int | None = None, work_after: float = 0.0
    ) -> Verdict:
        """As core.detectors.detect.Detector.score, on the cluster."""
        samples = getattr(audio, "samples", audio)
        chosen = len(select_windows(n_windows(self.spec, len(samples)), max_windows))
        handle = self.compute.handle(self.spec)
        if chosen <= BATCH_SIZE:  # a short file: batched with others (serve.batch)
            verdict = self._short(handle, samples, max_windows)
            if progress is not None:
                progress(chosen, chosen)
            return verdict
        return self._stream(
            lambda: handle.options(stream=True).score.remote(samples, max_windows, work_after),
            progress, "verdict",
        )  # fmt: skip

    def explain(self, samples, *, progress=None, **options):
        """core.explain.explain(detector, samples, **options), run on the replica."""
        handle = self.compute.handle(self.spec)
        if progress is not None:
            progress(0.0, f"{self.spec.key}: sent to the Ray cluster")
        method = options.get("method", "explanation")
        return self._stream(
            lambda: handle.options(stream=True).explain.remote(samples, options), progress, method
        )

    def _short(self, handle, samples, max_windows):
        from ray.exceptions import GetTimeoutError

        for attempt in (1, 2):
            try:
                value, pace = handle.score_short.remote((samples, max_windows)).result(
                    timeout_s=START_TIMEOUT_S
                )
                break
            except (TimeoutError, GetTimeoutError):
                raise self._lost("verdict", f"no answer within {START_TIMEOUT_S:g} s") from None
            except Exception as e:  # the replica or the cluster, not the model: see _lost
                if attempt == 2 or not _replica_gone(e):
                    raise self._lost("verdict", one_line(e)) from None
                time.sleep(1.0)  # Serve routes around a dead replica once it knows
        self.seconds_per_window = pace or self.seconds_per_window
        if isinstance(value, BaseException):
            raise value
        return value

    def _stream(self, start: Callable[[], Any], progress, what: str):
        """Read a replica's events (core.corpus.replica) until its result."""
        for attempt in (1, 2):
            events, gen = _pump(start())
            started = False
            try:
                while True:
                    try:
                        kind, value = events.get(timeout=IDLE_TIMEOUT_S if started else START_TIMEOUT_S)
                    except queue.Empty:
                        wait = IDLE_TIMEOUT_S if started else START_TIMEOUT_S
                        raise self._lost(what, f"no answer for {wait:g} s") from None
                    if kind == "started":
                        started = True
                    elif kind == "progress" and progress is not None:
                        progress(*value)
                    elif kind == "result":
                        result, pace = value
                        self.seconds_per_window = pace or self.seconds_per_window
                        return result
                    elif kind == "error":
                        raise value
                    elif kind == "lost":
                        if not started and attempt == 1 and _replica_gone(value):
                            break  # never reached a replica: once more
                        raise self._lost(what, one_line(value)) from None
            except BaseException:
                threading.Thread(target=_cancel, args=(gen,), daemon=True).start()
                raise
            time.sleep(1.0)
        raise self._lost(what, "no replica took the job")

    def _lost(self, what: str, why: str) -> ComputeUnavailable:
        self.compute.failed()
        return ComputeUnavailable(
            f"{self.spec.key} {what} failed on the Ray cluster ({why}); nothing was "
            "stored: try again"
        )


def _pump(gen) -> tuple[queue.Queue, Any]:
    """A daemon thread reads the streamed events into a queue (a dead cluster may block
    the read forever; the page must not): ("lost", exception) ends it on a failure."""
    events: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            for event in gen:
                events.put(event)
        except BaseException as e:
            events.put(("lost", e))

    threading.Thread(target=run, daemon=True, name="serve-stream").start()
    return events, gen


def _cancel(gen) -> None:
    try:
        gen.cancel()
    except Exception:  # already finished or gone: nothing left to cancel
        pass


def _replica_gone(e: BaseException) -> bool:
    """The request failed because its replica (or its actor) is gone, not in the model."""
    from ray import exceptions as rx

    return isinstance(e, (rx.ActorDiedError, rx.ActorUnavailableError, rx.RayActorError))

