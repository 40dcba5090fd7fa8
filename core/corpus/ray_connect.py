"""Joining a Ray cluster: what the job ships (runtime_env), token authentication, and
one-line errors for an address that cannot be used.

Ray 2.60 turns token authentication on for clusters started where a token exists. A
driver that names an explicit address only sends a token when RAY_AUTH_MODE=token is
set (``auto`` turns it on by itself for a cluster on this machine): this is Ray's rule
(an explicit address is never sent the token unasked) and it is kept; the error then
says what to set. Ray looks for the token in $RAY_AUTH_TOKEN, then in the file named by
$RAY_AUTH_TOKEN_PATH, then in ~/.ray/auth_token.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from core.corpus.tasks import one_line

CORE_DIR = Path(__file__).resolve().parents[1]  # the core package (this file: core/corpus/)
REQUIREMENTS = CORE_DIR.parent / "requirements.txt"
# never shipped with the code: caches, stores, checkpoints, audio
EXCLUDES = ["__pycache__", "*.pyc", "*.db", "*.db-*", "*.sqlite*", "*.npy", "*.npz",
            "*.pt", "*.pth", "*.flac", "*.wav", "*.mp3", "*.ogg"]  # fmt: skip

PROBE_TIMEOUT_S = 3.0  # to open a TCP connection to the cluster's address

AUTH_MODE_ENV = "RAY_AUTH_MODE"  # "token" turns Ray's token authentication on
TOKEN_ENV = "RAY_AUTH_TOKEN"  # the token itself (highest precedence)
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"  # a file holding it (next)
# then ~/.ray/auth_token (see default_token_file); `ray get-auth-token` prints it
TOKEN_HELP = (
    f"put the cluster's token in ${TOKEN_ENV}, in a file named by ${TOKEN_PATH_ENV}, "
    "or in ~/.ray/auth_token (`ray get-auth-token` on the head node prints it)"
)


class ClusterError(RuntimeError):
    """The Ray cluster cannot be used; str() is one line that names the fix."""


# ------------------------------------------------------------------ shipping code


def pinned_requirements(path: Path = REQUIREMENTS) -> list[str]:
    """
    The project's runtime pins, for the runtime_env's ``pip``; ray itself is left out
    (a node runs the cluster's Ray, and a second copy in the job's env must not differ).
    """
    pins = []
    for line in Path(path).read_text().splitlines():
        req = line.split("#", 1)[0].strip()
        if not req:
            continue
        if "==" not in req:
            raise ValueError(f"{path}: {req!r} is not pinned (NAME==VERSION)")
        if req.split("==", 1)[0].strip().lower() != "ray":
            pins.append(req)
    return pins


def runtime_env(*, pip: bool) -> dict:
    """What every worker of the job gets: the core package, and the pins when ``pip``."""
    env: dict[str, Any] = {"py_modules": [str(CORE_DIR)], "excludes": list(EXCLUDES)}
    if pip:
        env["pip"] = {"packages": pinned_requirements(), "pip_check": False}
    return env


# ---------------------------------------------------------------------- connecting


def default_token_file() -> Path:
    return Path.home() / ".ray" / "auth_token"


def auth_token() -> tuple[str | None, str]:
    """(token or None, where it came from), in Ray's order of precedence."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    for path, where in ((os.environ.get(TOKEN_PATH_ENV), f"${TOKEN_PATH_ENV}"),
                        (str(default_token_file()), "~/.ray/auth_token")):  # fmt: skip
        if path:
            with contextlib.suppress(OSError):
                token = Path(path).read_text().strip()
                if token:
                    return token, f"{where} ({path})"
    return None, "nowhere"


def resolve_address(address: str | None) -> str | None:
    """--ray-address, else $RAY_ADDRESS, else None (start a local Ray instance)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def probe(address: str) -> None:
    """Raise ClusterError unless something accepts TCP connections at the address."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise ClusterError(
            f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or 'auto'"
        )
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as e:
        if isinstance(e, socket.gaierror):
            why = f"unknown host {host!r}"
        elif isinstance(e, TimeoutError):
            why = f"no answer within {PROBE_TIMEOUT_S:g} s"
        elif isinstance(e, ConnectionRefusedError):
            why = "connection refused"
        else:
            why = one_line(e)
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {why}; start it with "
            "`ray start --head` there, or fix --ray-address / $RAY_ADDRESS"
        ) from None


@contextlib.contextmanager
def _stderr_to(box: list[str]) -> Iterator[None]:
    """Send fd 2 (Ray's C++ logs write there) to a file; its text lands in ``box``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            box.append(f.read().decode(errors="replace"))


def _connection_error(address: str, e: BaseException, log: str) -> ClusterError:
    """
    The address answers TCP but Ray could not join it. Ray's C++ core says why on fd 2
    (in a fresh process; once Ray has run in this process it logs to files instead).
    """
    token_mode = os.environ.get(AUTH_MODE_ENV, "").lower() == "token"
    _, where = auth_token()
    if "Unauthenticated" in log or "InvalidAuthToken" in log:
        if not token_mode:
            return ClusterError(
                f"the Ray cluster at {address} requires token authentication: set "
                f"{AUTH_MODE_ENV}=token and {TOKEN_HELP}"
            )
        return ClusterError(
            f"the Ray cluster at {address} rejected the token from {where}: {TOKEN_HELP}"
        )
    if token_mode:
        auth = f"check that the token from {where} is the cluster's ({TOKEN_HELP})"
    else:
        auth = (f"if the cluster uses token authentication, set {AUTH_MODE_ENV}=token "
                f"and {TOKEN_HELP}")  # fmt: skip
    return ClusterError(
        f"could not connect to the Ray cluster at {address} ({one_line(e)}): {auth}; "
        "and check it is the address `ray start --head` printed"
    )


def connect(address: str | None, *, num_cpus: int, pip: bool | None = None) -> bool:
    """
    Join the cluster at ``address`` (or $RAY_ADDRESS), else start a local Ray instance
    with ``num_cpus``. ``pip`` None = ship the pins only when joining a cluster.
    Returns whether this call initialised Ray (and so must shut it down).
    """
    import ray
    from ray.exceptions import AuthenticationError

    if ray.is_initialized():  # the caller's own session: its runtime_env stands
        return False
    address = resolve_address(address)
    env = runtime_env(pip=(address is not None) if pip is None else pip)
    kw = dict(include_dashboard=False, log_to_driver=False, runtime_env=env)
    if address is None:
        ray.init(num_cpus=num_cpus, **kw)
        return True
    if address != "auto":
        probe(address)
    box: list[str] = []
    try:
        with _stderr_to(box):
            ray.init(address=address, **kw)
    except AuthenticationError as e:
        raise ClusterError(
            f"Ray token authentication is on ({AUTH_MODE_ENV}=token) but no usable "
            f"token was found ({one_line(getattr(e, 'message', e))}): {TOKEN_HELP}"
        ) from None
    except ConnectionError as e:
        raise _connection_error(address, e, box[0] if box else "") from None
    sys.stderr.write(box[0] if box else "")  # Ray's own notes on a good connection
    return True
