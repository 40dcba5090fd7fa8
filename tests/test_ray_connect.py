"""core.corpus.ray_connect: what a job ships, and one-line errors for a cluster that cannot be used.

No cluster is started here (tests/test_ray_cluster.py runs a real one): ray.init is
replaced where a test needs Ray's answer, and what it writes to fd 2 is what Ray's C++
core writes there.
"""

from __future__ import annotations

import os
import socket

import pytest
from conftest import ROOT

from core.cli import main
from core.corpus import ray_connect
from core.corpus.ray_connect import ClusterError
from core.engine.service import Engine

MODEL = "tssd1d"


# ------------------------------------------------------------------ what is shipped


def test_runtime_env_ships_the_core_package_without_data_and_with_the_pins():
    env = ray_connect.runtime_env(pip=True)
    (core_dir,) = env["py_modules"]
    assert os.path.samefile(core_dir, ROOT / "core") and (ROOT / "core" / "corpus" / "batch.py").exists()
    for pattern in ("__pycache__", "*.db", "*.pt", "*.pth", "*.npy", "*.flac"):
        assert pattern in env["excludes"]
    text = (ROOT / "requirements.txt").read_text()
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    pins = [l for l in lines if l and not l.startswith("ray==")]
    assert env["pip"]["packages"] == pins and any(p.startswith("torch==") for p in pins)
    assert not any(p.startswith("ray") for p in env["pip"]["packages"])
    assert "pip" not in ray_connect.runtime_env(pip=False)


def test_an_unpinned_requirement_is_refused(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\nnumpy==2.4.6\ntorch>=2\n")
    with pytest.raises(ValueError, match="'torch>=2' is not pinned"):
        ray_connect.pinned_requirements(req)


# ----------------------------------------------------------- one-line cluster errors


@pytest.fixture
def protocol(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("S F1 - - bonafide\n")
    return p


def batch_argv(protocol, tmp_path, address):
    return ["batch", "--protocol", str(protocol), "--audio-dir", str(tmp_path / "nowhere"),
            "--engine", "ray", "--ray-address", address, "--model", MODEL,
            "--db", str(tmp_path / "b.db")]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address,expected", [
    ("127.0.0.1:{port}", "cannot reach the Ray cluster at 127.0.0.1:{port}: connection refused"),
    ("no-such-host.invalid:6379", "unknown host 'no-such-host.invalid'"),
    ("just-a-name", "is not HOST:PORT"),
])  # fmt: skip
def test_an_unusable_address_is_one_line_and_exit_code_2(
    tmp_path, capsys, protocol, address, expected
):
    pytest.importorskip("ray")
    port = _free_port()
    address, expected = address.format(port=port), expected.format(port=port)
    assert main(batch_argv(protocol, tmp_path, address)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err
    assert Engine(tmp_path / "b.db").batch("p") is None  # failed before any work


@pytest.fixture
def listening():
    """An address where something accepts TCP connections (the probe passes)."""
    srv = socket.create_server(("127.0.0.1", 0))
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


def _init_that(fd2: bytes, error: BaseException):
    """A stand-in for ray.init: writes what Ray's C++ core would to fd 2, then fails."""
    def init(**kwargs):
        os.write(2, fd2)
        raise error
    return init


def test_token_problems_say_which_variable_or_file_ray_expects(monkeypatch, listening):
    ray = pytest.importorskip("ray")
    from ray.exceptions import AuthenticationError

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    refused = b"gcs_client.cc:210: Failed to get cluster ID from GCS server: Unauthenticated: " \
              b"RPC error: InvalidAuthToken: Authentication token is missing or incorrect\n"
    monkeypatch.setattr(ray, "init", _init_that(refused, ConnectionError("Failed to connect")))

    def message() -> str:
        with pytest.raises(ClusterError) as e:
            ray_connect.connect(listening, num_cpus=1)
        assert "\n" not in str(e.value)
        return str(e.value)

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # the explicit-address case
    msg = message()
    assert "requires token authentication: set RAY_AUTH_MODE=token" in msg
    for where in ("$RAY_AUTH_TOKEN", "$RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token"):
        assert where in msg
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-clusters")
    assert "rejected the token from $RAY_AUTH_TOKEN" in message()
    missing = AuthenticationError("RAY_AUTH_TOKEN_PATH is set but file cannot be opened: /x")
    monkeypatch.setattr(ray, "init", _init_that(b"", missing))
    msg = message()
    assert "no usable token" in msg and "cannot be opened: /x" in msg
    assert "$RAY_AUTH_TOKEN" in msg
    monkeypatch.setattr(ray, "init", _init_that(b"other trouble\n", ConnectionError("Failed")))
    msg = message()
    assert "could not connect to the Ray cluster" in msg and "token from $RAY_AUTH_TOKEN" in msg
    monkeypatch.delenv("RAY_AUTH_MODE")
    assert "if the cluster uses token authentication, set RAY_AUTH_MODE=token" in message()
