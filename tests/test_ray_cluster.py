"""core.corpus.ray_cluster: weights and audio shipped to workers, GPU shares, and a real
two-node run (core.corpus.ray_connect's own tests are in tests/test_ray_connect.py).

The two-node tests use benchmarks.cluster: a Ray head plus a second node in its own
mount namespace, where the project, ../shared and the corpus are hidden (empty tmpfs)
and its temporary directory is its own. They skip, saying why, where this machine
cannot start such a node.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import secrets
import shutil
import threading

import numpy as np
import pytest
from conftest import MINISPOOF, ROOT, SHARED, require_shared
from test_ray_connect import batch_argv

from core.audio.protocol import ProtocolEntry, parse_protocol
from core.cli import main
from core.corpus import batch, ray_cluster, ray_connect
from core.corpus.batch import Task, run_batch
from core.corpus.ray_cluster import ShippedWeights
from core.corpus.ray_connect import ClusterError
from core.detectors.detect import Detector
from core.detectors.registry import MODELS, WeightsError, weights_dir
from core.engine.service import Engine

MODEL = "tssd1d"  # the cheapest shipped model: weights in the project's weights/


# ------------------------------------------------------------------ what is shipped


@pytest.fixture
def fake_store(monkeypatch):
    """ray.get as identity, so a ShippedWeights may hold the bytes themselves."""
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "get", lambda ref: ref)
    monkeypatch.setattr(ray_cluster, "_LOADED", {})


def test_shipped_weights_are_verified_then_give_the_same_scores(fake_store, sine_wave):
    spec = MODELS[MODEL]
    data = (weights_dir() / spec.weights).read_bytes()
    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 1
    with pytest.raises(WeightsError, match="refusing to load"):
        ray_cluster.shipped_detector(ShippedWeights(spec, bytes(tampered)))
    assert ray_cluster._LOADED == {}  # nothing kept from the bad bytes
    det = ray_cluster.shipped_detector(ShippedWeights(spec, data))
    assert ray_cluster.shipped_detector(ShippedWeights(spec, b"not read again")) is det
    expected = Detector.load(MODEL).score(np.tile(sine_wave, 7))
    got = det.score(np.tile(sine_wave, 7))
    assert got.p_spoof == pytest.approx(expected.p_spoof, abs=1e-7)
    windows = [w.p_spoof for w in expected.windows]
    assert [w.p_spoof for w in got.windows] == pytest.approx(windows, abs=1e-7)


def test_audio_from_a_url_is_checked_against_the_drivers_hash(tmp_path):
    f = tmp_path / "F1.flac"
    f.write_bytes(b"some audio bytes")
    sha = hashlib.sha256(b"some audio bytes").hexdigest()
    task = Task("F1", str(f), 16, (), sha256=sha)
    url = ray_cluster.audio_url_for(tmp_path.as_uri(), task)
    assert url == f.as_uri()
    assert ray_cluster.fetch_audio(url, sha) == b"some audio bytes"
    with pytest.raises(ValueError, match="the two corpora differ"):
        ray_cluster.fetch_audio(url, "0" * 64)
    with pytest.raises(ValueError, match="needs a scheme"):
        ray_cluster.audio_url_for(str(tmp_path), task)


@pytest.mark.parametrize("resources,asked,gpus,window", [
    ({"CPU": 4.0, "GPU": 1.0}, None, 0.25, 8),  # a share of a GPU per task where there are GPUs
    ({"CPU": 4.0, "GPU": 2.0}, 0.5, 0.5, 8),
    ({"CPU": 1.0}, None, 0, 4),  # CPU only: no GPU asked for; the window never below 4
])  # fmt: skip
def test_tasks_take_a_gpu_share_only_where_the_cluster_has_gpus(
    monkeypatch, resources, asked, gpus, window
):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "cluster_resources", lambda: resources)
    c = ray_cluster.Cluster(gpus_per_task=asked)
    assert (c.gpus, c.window) == (gpus, window)


def test_asking_for_gpus_on_a_cluster_without_them_is_refused(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    with pytest.raises(ClusterError, match="the cluster has no GPUs"):
        ray_cluster.Cluster(gpus_per_task=0.5)


# -------------------------------------------------------------- a two-node cluster


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 MiniSpoof eval files (6 bona fide, 6 spoof) copied, plus one corrupt file."""
    src = require_shared(MINISPOOF)
    entries = parse_protocol(src / "protocols" / "minispoof.eval.txt")
    bona = [e for e in entries if e.key == "bonafide"][:6]
    spoof = [e for e in entries if e.key == "spoof"][:6]
    audio = tmp_path_factory.mktemp("corpus")
    for e in bona + spoof:
        shutil.copyfile(src / "flac" / f"{e.file_id}.flac", audio / f"{e.file_id}.flac")
    broken = ProtocolEntry(speaker="X", file_id="MS_E_BROKEN", system="M01", key="spoof", line=0)
    (audio / "MS_E_BROKEN.flac").write_bytes(b"fLaC but not really" * 20)
    return bona + spoof + [broken], audio


@pytest.fixture(scope="module")
def cluster(corpus):
    """(address, id of the isolated node) of a running two-node cluster, token auth on."""
    ray = pytest.importorskip("ray")
    from benchmarks.cluster import ISOLATED, ClusterUnavailable, TwoNodeCluster

    token, _ = ray_connect.auth_token()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token or secrets.token_hex(16)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in auth.items():
            mp.setenv(k, v)
        _reload_ray_auth()
        nodes = TwoNodeCluster(hide=[ROOT, SHARED, corpus[1]], env=auth)
        try:
            nodes.__enter__()
        except ClusterUnavailable as e:
            pytest.skip(f"no two-node Ray cluster on this machine: {e}")
        def look(paths):  # nested, so Ray ships it by value to a node without tests/
            import importlib.util
            import os

            import ray

            return (ray.get_runtime_context().get_node_id(),
                    [os.path.exists(p) for p in paths],
                    importlib.util.find_spec("core") is not None)  # fmt: skip

        try:
            ray.init(address=nodes.address, include_dashboard=False, log_to_driver=False)
            isolated = _isolated_node(ray, ISOLATED)
            first_file = corpus[1] / f"{corpus[0][0].file_id}.flac"
            probe = ray.remote(num_cpus=0, resources={ISOLATED: 0.01})(look)
            seen = ray.get(probe.remote([str(ROOT / "core"), str(first_file)]))
            ray.shutdown()
            assert seen == (isolated, [False, False], False), "the node sees the driver's files"
            yield nodes.address, isolated
        finally:
            ray.shutdown()
            nodes.__exit__(None, None, None)
    _reload_ray_auth()


def _reload_ray_auth() -> None:
    """Ray reads RAY_AUTH_* once per process; a user sets them before starting Python,
    this fixture sets them later, so it makes Ray read them again (as ray.init does
    when it turns token authentication on)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _isolated_node(ray, resource: str) -> str:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for n in ray.nodes():
            if n["Alive"] and resource in n["Resources"]:
                return n["NodeID"]
        time.sleep(0.5)
    pytest.skip("the second Ray node never joined the head")


def _scores(db, name):
    eng = Engine(db)
    return {f["file_id"]: eng.analysis(f["sha256"]).verdicts[MODEL].p_spoof
            for f in eng.batch_files(name) if f["status"] == "done"}  # fmt: skip


def test_two_nodes_give_the_local_scores_and_the_isolated_node_does_work(
    tmp_path, corpus, cluster
):
    entries, audio = corpus
    address, isolated = cluster
    local_db, ray_db = tmp_path / "local.db", tmp_path / "ray.db"
    here = run_batch(entries, audio, name="c", models=[MODEL], workers=1, db=local_db,
                     progress=False)  # fmt: skip
    # ray_pip=False: the nodes share this machine's environment (and ray's pip
    # runtime_env would need virtualenv); the code still travels in py_modules
    rep = run_batch(entries, audio, name="c", models=[MODEL], engine="ray",
                    ray_address=address, ray_pip=False, db=ray_db, progress=False)
    assert rep.computed == 12 and list(rep.failed) == ["MS_E_BROKEN"]
    assert rep.failed == here.failed and "FLAC" in rep.failed["MS_E_BROKEN"]  # same reason
    files = {f["file_id"]: f for f in Engine(ray_db).batch_files("c")}
    assert files["MS_E_BROKEN"]["status"] == "failed" and files["MS_E_BROKEN"]["error"]
    on_isolated = [f for f, n in rep.node.items() if n == isolated and f not in rep.failed]
    assert on_isolated, f"no task ran on the isolated node: {rep.node}"
    assert len(set(rep.node.values())) == 2
    local, remote = _scores(local_db, "c"), _scores(ray_db, "c")
    assert local.keys() == remote.keys() and len(local) == 12
    for k in local:
        assert remote[k] == pytest.approx(local[k], abs=1e-6), k
    assert rep.task_seconds["weights"] >= 0 and rep.task_seconds["put"] > 0


def test_a_stopped_driver_resumes_without_computing_twice(
    tmp_path, corpus, cluster, monkeypatch
):
    entries, audio = corpus
    entries = entries[:4]
    db = tmp_path / "resume.db"
    real_save, saved = batch.save, []

    def save_then_stop(eng, result, path, segments):
        if len(saved) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or a kill) with tasks still in flight
        real_save(eng, result, path, segments)
        saved.append(result["file_id"])

    monkeypatch.setattr(batch, "save", save_then_stop)
    kw = dict(name="r", models=[MODEL], engine="ray", ray_address=cluster[0], ray_pip=False,
              db=db, progress=False)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_batch(entries, audio, **kw)
    import ray

    assert not ray.is_initialized()  # the driver left the cluster
    first = _scores(db, "r")
    assert sorted(first) == sorted(saved)
    monkeypatch.setattr(batch, "save", real_save)
    again = run_batch(entries, audio, **kw)
    assert again.skipped == 2 and again.computed == 2 and not again.failed
    assert set(again.node) == {e.file_id for e in entries} - set(saved)  # only the rest ran
    final = _scores(db, "r")
    assert len(final) == 4 and all(final[k] == first[k] for k in first)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """(folder, URL) of a small HTTP server on this machine, which both nodes reach."""
    folder = tmp_path / "served"
    folder.mkdir()
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))  # fmt: skip
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def test_failures_on_the_cluster_are_retried_once_then_recorded_per_file(
    tmp_path, corpus, cluster, served, monkeypatch
):
    """Audio read from a URL; a worker that dies is retried once; a bad copy is refused."""
    entries, audio = corpus
    entries = entries[:4]
    always, once, differs = (e.file_id for e in entries[:3])
    folder, url = served
    for e in entries:
        shutil.copyfile(audio / f"{e.file_id}.flac", folder / f"{e.file_id}.flac")
    (folder / f"{differs}.flac").write_bytes(b"another version of the corpus")
    marks = tmp_path / "attempts"  # visible to both nodes (only the corpus is hidden)
    marks.mkdir()

    def dying(task, audio_refs, weights, real=ray_cluster.run_task, marks=str(marks)):
        import os

        path = os.path.join(marks, task.file_id)
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            n = len(f.read())
        if task.file_id == always or (task.file_id == once and n == 1):
            os._exit(1)  # the worker process dies mid-task
        return real(task, audio_refs, weights)

    monkeypatch.setattr(ray_cluster, "run_task", dying)
    rep = run_batch(entries, audio, name="d", models=[MODEL], engine="ray",
                    ray_address=cluster[0], ray_pip=False, audio_url=url,
                    db=tmp_path / "d.db", progress=False)  # fmt: skip
    attempts = {p.name: len(p.read_text()) for p in marks.iterdir()}
    assert attempts == {always: 2, once: 2, differs: 1, entries[3].file_id: 1}
    assert sorted(rep.failed) == sorted([always, differs]) and rep.computed == 2
    assert rep.failed[always].startswith("worker died twice (retried once): ")
    assert "the two corpora differ" in rep.failed[differs]
    rows = {f["file_id"]: f for f in Engine(tmp_path / "d.db").batch_files("d")}
    for f in (always, differs):
        assert rows[f]["status"] == "failed" and rows[f]["error"] == rep.failed[f]
    done = _scores(tmp_path / "d.db", "d")
    assert set(done) == {once, entries[3].file_id} and all(0 <= p <= 1 for p in done.values())


def test_a_cluster_that_wants_a_token_says_so(tmp_path, cluster, capsys):
    """The issue's case: an explicit address, RAY_AUTH_MODE unset and no token anywhere."""
    protocol = tmp_path / "p.txt"
    protocol.write_text("S F1 - - bonafide\n")
    with pytest.MonkeyPatch.context() as mp:
        for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
            mp.delenv(k, raising=False)
        mp.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either
        _reload_ray_auth()
        try:
            rc = main(batch_argv(protocol, tmp_path, cluster[0]))
        finally:
            mp.undo()
            _reload_ray_auth()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    # (Ray's own log handler may complain here of a stream an earlier test's capture
    # closed; what matters is that no raw ConnectionError reaches the user)
    assert rc == 2 and len(errors) == 1 and "ConnectionError:" not in err, err[-2000:]
    # the precise "requires token authentication" where Ray's core logs to stderr (a
    # fresh process); else a message that still names the switch and the token's places
    assert errors[0].startswith(("error: the Ray cluster at", "error: could not connect"))
    for part in ("RAY_AUTH_MODE=token", "$RAY_AUTH_TOKEN", "~/.ray/auth_token"):
        assert part in errors[0]
