"""The dashboard's models on a Ray cluster (core.corpus.serve, core.corpus.replica), and
cluster jobs that need no flag: only the code is shipped, every node's packages are checked.

The cluster tests start benchmarks.cluster's two-node cluster with no CPU on the head, so
every replica and task runs on the second node, which sees neither the project, ../shared
nor the corpus. They skip, saying why, where this machine cannot start such a node.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import signal
import sqlite3
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import MINISPOOF, ROOT, SHARED, require_shared
from test_ray_cluster import _isolated_node, _reload_ray_auth
from test_ray_connect import batch_argv

from core.audio.decode import load_audio
from core.audio.protocol import parse_protocol
from core.cli import main
from core.corpus import ray_connect
from core.corpus.batch import run_batch
from core.corpus.serve import ServeCompute, ServeSettings, serve_settings
from core.engine.compute import ComputeUnavailable
from core.engine.service import Engine

MODEL = "tssd1d"  # the cheapest shipped model: weights in the project's weights/
SHAP = dict(segments=4, n_evals=24)  # a small SHAP: the same on both sides, in seconds


# ---------------------------------------------------------------- no cluster needed


def test_settings_come_from_the_secrets_file_else_the_environment():
    assert serve_settings({}, {}) is None  # no address: everything runs in-process
    env = {"DEEPFAKE_RAY_ADDRESS": "10.0.0.5:6379", "DEEPFAKE_RAY_NUM_CPUS": "2"}
    assert serve_settings({}, env) == ServeSettings("10.0.0.5:6379", num_cpus=2.0)
    got = serve_settings({"ray_address": "auto", "ray_num_gpus": 0.5, "ray_replicas": 3}, env)
    assert got == ServeSettings("auto", num_cpus=2.0, num_gpus=0.5, replicas=3)
    with pytest.raises(ValueError, match=r"ray_num_cpus / \$DEEPFAKE_RAY_NUM_CPUS must be a number"):
        serve_settings({}, {**env, "DEEPFAKE_RAY_NUM_CPUS": "two"})
    with pytest.raises(ValueError, match="out of range"):
        serve_settings({"ray_replicas": 0}, env)


def test_short_files_batched_together_get_the_verdicts_scored_alone(sine_wave):
    from core.corpus.replica import score_together
    from core.detectors.detect import Detector

    det = Detector.load(MODEL)
    rng = np.random.default_rng(0)
    clips = [np.tile(sine_wave, 4), (0.1 * rng.standard_normal(16_000 * 9)).astype(np.float32)]
    together = score_together(det, [(clips[0], None), (clips[1], 2)])
    for clip, cap, got in zip(clips, (None, 2), together):
        alone = det.score(clip, max_windows=cap)
        assert got.p_spoof == pytest.approx(alone.p_spoof, abs=1e-6)
        assert [w.index for w in got.windows] == [w.index for w in alone.windows]
        assert got.n_windows == alone.n_windows and got.max_window == alone.max_window
        assert (got.embedding is None) == (alone.embedding is None)
        if alone.embedding is not None:
            assert np.allclose(got.embedding, alone.embedding, atol=1e-5)


def test_a_node_that_differs_is_named_with_the_remedy():
    mine = {"python": "3.11.7", "ray": "2.60.0", "torch": "2.13.0", "soundfile": "0.14.0"}
    assert ray_connect.difference(mine, dict(mine)) is None
    older = {**mine, "torch": "2.12.0"}
    assert ray_connect.difference(mine, older) == "has torch 2.12.0, this driver 2.13.0"
    assert "--ray-pip" in ray_connect.remedy(mine, older)
    lacking = {**mine, "soundfile": None}
    assert ray_connect.difference(mine, lacking) == "lacks soundfile (this driver has 0.14.0)"
    other_ray = {**mine, "ray": "2.59.0", "torch": "2.12.0"}  # Ray first: pip cannot fix it
    assert ray_connect.difference(mine, other_ray) == "has ray 2.59.0, this driver 2.60.0"
    assert "ray==2.60.0" in ray_connect.remedy(mine, other_ray)
    names = ray_connect.compared_packages()
    assert names[0] == "ray" and "torch" in names and "streamlit" not in names


def test_jobs_ship_only_the_code_by_default_and_ray_no_pip_still_parses(tmp_path, capsys):
    pytest.importorskip("ray")
    assert "pip" not in ray_connect.runtime_env()
    protocol = tmp_path / "p.txt"
    protocol.write_text("S F1 - - bonafide\n")
    argv = batch_argv(protocol, tmp_path, "just-a-name") + ["--ray-no-pip"]
    assert main(argv) == 2  # the bad address still stops it, with one line
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("note: --ray-no-pip is the default now") and len(err) == 2


class _Stub:
    """A ServeCompute stand-in that counts failures."""

    def __init__(self):
        self.failures = 0

    def failed(self):
        self.failures += 1


class _Events:
    """A stand-in for a streamed Serve response: yields events, may then raise."""

    def __init__(self, events, then=None, block=False):
        self.events, self.then, self.block = list(events), then, block
        self.cancelled = threading.Event()

    def __iter__(self):
        yield from self.events
        if self.block:  # a cluster that stopped answering
            self.cancelled.wait(30)
        if self.then is not None:
            raise self.then

    def cancel(self):
        self.cancelled.set()


def _remote():
    from core.corpus.serve import RemoteDetector
    from core.detectors.registry import MODELS

    return RemoteDetector(_Stub(), MODELS[MODEL])


def test_a_cancelled_job_cancels_its_request_on_the_cluster():
    from core.detectors.scheduler import CancelToken, JobCancelled, cancellable

    det, token = _remote(), CancelToken()
    response = _Events([("started", {}), ("progress", (0.1, "shap: 1/24")), ("alive", None)],
                       block=True)  # fmt: skip
    token.cancel()
    with pytest.raises(JobCancelled):
        det._stream(lambda: response, cancellable(lambda f, m: None, token), "shap")
    assert response.cancelled.wait(5) and det.compute.failures == 0


def test_a_lost_replica_is_one_line_and_retried_only_before_it_started(monkeypatch):
    from ray.exceptions import ActorDiedError

    from core.corpus import serve

    monkeypatch.setattr(serve.time, "sleep", lambda s: None)
    det, seen = _remote(), []
    tries = iter([_Events([], then=ActorDiedError()),  # never reached a replica: again
                  _Events([("started", {}), ("result", ("E", 0.01))])])  # fmt: skip
    assert det._stream(lambda: next(tries), None, "shap") == "E" and det.seconds_per_window == 0.01
    mid = _Events([("started", {}), ("progress", (0.2, "shap: 3/24"))], then=ActorDiedError())
    with pytest.raises(ComputeUnavailable) as e:
        det._stream(lambda: mid, lambda f, m: seen.append(m), "shap")
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{MODEL} shap failed on the Ray")
    assert seen == ["shap: 3/24"] and det.compute.failures == 1
    with pytest.raises(ValueError, match="bad window"):  # the model's own error, as in-process
        det._stream(lambda: _Events([("started", {}), ("error", ValueError("bad window"))]),
                    None, "shap")  # fmt: skip


def test_a_cluster_that_stops_answering_never_hangs_the_page(monkeypatch):
    from core.corpus import serve

    monkeypatch.setattr(serve, "IDLE_TIMEOUT_S", 0.5)
    det, response = _remote(), _Events([("started", {})], block=True)
    t0 = time.monotonic()
    with pytest.raises(ComputeUnavailable, match=r"no answer for 0.5 s\); nothing was stored"):
        det._stream(lambda: response, None, "verdict")
    assert time.monotonic() - t0 < 5 and response.cancelled.wait(5)


# -------------------------------------------------------------- a two-node cluster


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two MiniSpoof eval files copied (the second node cannot see ../shared)."""
    src = require_shared(MINISPOOF)
    entries = parse_protocol(src / "protocols" / "minispoof.eval.txt")
    chosen = [next(e for e in entries if e.key == k) for k in ("spoof", "bonafide")]
    audio = tmp_path_factory.mktemp("clips")
    for e in chosen:
        shutil.copyfile(src / "flac" / f"{e.file_id}.flac", audio / f"{e.file_id}.flac")
    return chosen, audio


@pytest.fixture(scope="module")
def cluster(clips):
    """The address of a two-node cluster (token auth on) whose head has no CPU."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.serve")
    from benchmarks.cluster import ISOLATED, ClusterUnavailable, TwoNodeCluster

    token, _ = ray_connect.auth_token()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token or secrets.token_hex(16)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in auth.items():
            mp.setenv(k, v)
        _reload_ray_auth()
        nodes = TwoNodeCluster(hide=[ROOT, SHARED, clips[1]], env=auth, cpus_per_node=2,
                               head_cpus=0)  # fmt: skip
        try:
            nodes.__enter__()
        except ClusterUnavailable as e:
            pytest.skip(f"no two-node Ray cluster on this machine: {e}")
        try:
            ray.init(address=nodes.address, include_dashboard=False, log_to_driver=False)
            isolated = _isolated_node(ray, ISOLATED)
            ray.shutdown()
            yield nodes.address, isolated
        finally:
            ray.shutdown()
            nodes.__exit__(None, None, None)
    _reload_ray_auth()


def _scores(db, name):
    eng = Engine(db)
    return {f["file_id"]: eng.analysis(f["sha256"]).verdicts[MODEL].p_spoof
            for f in eng.batch_files(name) if f["status"] == "done"}  # fmt: skip


def test_batch_on_auto_needs_no_flag_and_stores_the_local_scores(
    tmp_path, clips, cluster, monkeypatch, capsys
):
    """The issue's case: --ray-address auto, no --ray-no-pip, no virtualenv needed."""
    entries, audio = clips
    protocol = tmp_path / "p.txt"
    protocol.write_text("".join(f"S {e.file_id} - {e.system} {e.key}\n" for e in entries))
    monkeypatch.setenv("RAY_ADDRESS", cluster[0])  # what `auto` finds (ray start writes it)
    local_db, ray_db = tmp_path / "local.db", tmp_path / "ray.db"
    run_batch(entries, audio, name="p", models=[MODEL], workers=1, db=local_db, progress=False)
    argv = ["batch", "--protocol", str(protocol), "--audio-dir", str(audio), "--engine", "ray",
            "--ray-address", "auto", "--model", MODEL, "--db", str(ray_db)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    local, remote = _scores(local_db, "p"), _scores(ray_db, "p")
    assert len(local) == 2 and local.keys() == remote.keys()
    for k in local:
        assert remote[k] == pytest.approx(local[k], abs=1e-6), k


@pytest.fixture(scope="module")
def server(cluster):
    """The dashboard's Engine as ui/engine.py builds it with $DEEPFAKE_RAY_ADDRESS set."""
    import ray

    from ui import engine as ui_engine

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DEEPFAKE_RAY_ADDRESS", raising=False)
        assert ui_engine._cluster() is None  # no setting: in-process, as before
        mp.setenv("DEEPFAKE_RAY_ADDRESS", cluster[0])
        compute = ui_engine._cluster()
    assert isinstance(compute, ServeCompute) and compute.settings.address == cluster[0]
    yield compute
    ray.shutdown()


@pytest.fixture(scope="module")
def expected_shap(clips):
    """The in-process SHAP values of the first clip (computed once: SHAP is the slow part)."""
    entries, audio = clips
    data = (audio / f"{entries[0].file_id}.flac").read_bytes()
    eng = Engine(use_store=False)
    return eng.explain_audio(load_audio(data), MODEL, "shap", **SHAP).explanation.values


def _flac(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, 16_000, format="FLAC")
    return buf.getvalue()


def test_verdicts_and_shap_on_the_cluster_equal_the_in_process_ones(
    tmp_path, clips, cluster, server, expected_shap
):
    entries, audio = clips
    data = (audio / f"{entries[0].file_id}.flac").read_bytes()
    long = _flac(np.tile(load_audio(data).samples, 9))  # > 8 windows: the streamed path
    here, there = Engine(tmp_path / "here.db"), Engine(tmp_path / "there.db", compute=server)
    shas = []
    for clip, name in ((data, "clip.flac"), (long, "long.flac")):
        seen = []
        a = here.analyze(clip, name, models=[MODEL])
        b = there.analyze(clip, name, models=[MODEL], progress=lambda f, m: seen.append(f))
        va, vb = a.verdicts[MODEL], b.verdicts[MODEL]
        assert not b.cached[MODEL] and seen[-1] == 1.0
        assert vb.p_spoof == pytest.approx(va.p_spoof, abs=1e-5), name
        assert [w.p_spoof for w in vb.windows] == pytest.approx([w.p_spoof for w in va.windows], abs=1e-5)
        shas.append(a.sha256)
    where = server.handle(server.detector(MODEL).spec).where.remote().result(timeout_s=60)
    assert where["node"] == cluster[1] and where["pid"] != os.getpid()
    eb = there.explain(shas[0], MODEL, "shap", **SHAP).explanation  # the MiniSpoof clip
    assert eb.values.shape == expected_shap.shape
    assert np.allclose(eb.values, expected_shap, atol=1e-5)
    assert there.find_explanation(shas[0], MODEL, "shap", segments=4, n_evals=24) is not None


def test_a_replica_killed_mid_explanation_gives_one_line_and_a_working_retry(
    tmp_path, clips, cluster, server, expected_shap
):
    entries, audio = clips
    data = (audio / f"{entries[0].file_id}.flac").read_bytes()
    db = tmp_path / "kill.db"
    eng = Engine(db, compute=server)
    sha = eng.analyze(data, "clip.flac", models=[MODEL]).sha256
    pid = server.handle(eng.spec(MODEL)).where.remote().result(timeout_s=60)["pid"]
    killed = []

    def kill_once(fraction, message):
        # at the replica's first report (the server's own "sent to the Ray cluster" aside):
        # the whole attribution is still ahead of it
        if "Ray cluster" not in message and not killed:
            os.kill(pid, signal.SIGKILL)  # the replica's worker process, mid-explanation
            killed.append(message)

    t0 = time.monotonic()
    with pytest.raises(ComputeUnavailable) as e:
        eng.explain(sha, MODEL, "shap", progress=kill_once, **SHAP)
    assert killed and time.monotonic() - t0 < 120  # never hangs the page
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{MODEL} shap failed on the Ray cluster")
    assert msg.endswith("nothing was stored: try again")
    with sqlite3.connect(db) as conn:  # no stuck claim, nothing stored
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    assert eng.find_explanation(sha, MODEL, "shap", segments=4, n_evals=24) is None
    retried = eng.explain(sha, MODEL, "shap", **SHAP)  # the retry button
    assert not retried.cached
    assert np.allclose(retried.explanation.values, expected_shap, atol=1e-5)
    new_pid = server.handle(eng.spec(MODEL)).where.remote().result(timeout_s=60)["pid"]
    assert new_pid != pid  # Serve started a new replica
