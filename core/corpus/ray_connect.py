"""Joining a Ray cluster: what the job ships (runtime_env), what every node must already
have (checked at connect time), token authentication, and one-line errors for an address
that cannot be used.

By default a job ships only the ``core`` package (``py_modules``): every node runs the
same Python packages as the driver, which ``check_nodes`` verifies with one tiny task
per node and names the first difference. ``pip=True`` (``--ray-pip``) makes Ray install
the pinned requirements.txt per job instead; that needs ``virtualenv`` on every node and
reinstalls torch for each job, so it is opt-in.

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
CHECK_TIMEOUT_S = 120.0  # for every node's version check (a worker start is seconds)
CHECK_TIMEOUT_PIP_S = 1800.0  # with --ray-pip the check waits for the pip install
# never compared: the driver's own tools, not what a worker imports
NOT_COMPARED = {"streamlit", "altair", "tqdm"}
PIP_HELP = (
    "install the same versions there (pip install -r requirements.txt), or pass "
    "--ray-pip to have Ray install them for each job (needs virtualenv on every node)"
)

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


def runtime_env(*, pip: bool = False) -> dict:
    """What every worker of the job gets: the core package, and the pins when ``pip``."""
    env: dict[str, Any] = {"py_modules": [str(CORE_DIR)], "excludes": list(EXCLUDES)}
    if pip:
        env["pip"] = {"packages": pinned_requirements(), "pip_check": False}
    return env


# ------------------------------------------------------- what every node must have


def compared_packages(path: Path = REQUIREMENTS) -> list[str]:
    """The distributions a worker imports: Ray, then requirements.txt's (dashboard-only
    ones left out), in that order, so the first difference named is the likeliest."""
    names = [pin.split("==", 1)[0].strip() for pin in pinned_requirements(path)]
    return ["ray", *(n for n in names if n.lower() not in NOT_COMPARED)]


def difference(driver: dict[str, str | None], node: dict[str, str | None]) -> str | None:
    """The first way the node's packages differ from the driver's, in words, or None."""
    for name, mine in driver.items():
        theirs = node.get(name)
        if mine is None or theirs == mine:
            continue  # what the driver lacks too is not the cluster's problem
        label = "Python" if name == "python" else name
        if theirs is None:
            return f"lacks {label} (this driver has {mine})"
        return f"has {label} {theirs}, this driver {mine}"
    return None


def remedy(driver: dict[str, str | None], node: dict[str, str | None]) -> str:
    """What to do about difference(driver, node)."""
    for name in ("python", "ray"):
        if node.get(name) != driver.get(name):
            which = "Python" if name == "python" else f"ray=={driver[name]}"
            return f"run the same {which} on every node (Ray cannot ship {which})"
    return PIP_HELP


def _versions_task():
    """A Ray task that reports a node's versions. Built here, so that Ray ships it by
    value: it must run where the project's own imports (numpy, torch ...) might fail."""

    def versions(names):
        import importlib.metadata
        import platform

        import ray

        out = {"python": platform.python_version()}
        for name in names:
            try:
                out[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                out[name] = None
        ctx = ray.get_runtime_context()
        return ctx.get_node_id(), out

    return versions


def check_nodes(*, pip: bool = False) -> None:
    """
    Run one tiny task on every alive node and compare its packages with this driver's;
    ClusterError (one line: the node, the first difference, the remedy) if any differs,
    or if a node cannot set up the job's runtime_env.
    """
    import ray
    from ray import exceptions as rx
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    names = compared_packages()
    task = _versions_task()
    _, mine = task(names)  # this driver's, by the same code
    remote = ray.remote(num_cpus=0, max_retries=0)(task)
    nodes = {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in ray.nodes() if n["Alive"]}
    refs = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
            .remote(names) for node in nodes]  # fmt: skip
    try:
        answers = ray.get(refs, timeout=CHECK_TIMEOUT_PIP_S if pip else CHECK_TIMEOUT_S)
    except rx.RuntimeEnvSetupError as e:
        raise runtime_env_error(e, pip=pip) from None
    except rx.GetTimeoutError:
        raise ClusterError(
            f"the cluster's nodes did not all run the version check within "
            f"{CHECK_TIMEOUT_PIP_S if pip else CHECK_TIMEOUT_S:g} s: check `ray status`"
        ) from None
    except rx.RayError as e:
        raise ClusterError(f"the version check failed on the cluster: {one_line(e)}") from None
    for node, theirs in sorted(answers):
        why = difference(mine, theirs)
        if why is not None:
            raise ClusterError(
                f"Ray node {nodes.get(node, '?')} ({node[:8]}) {why}: {remedy(mine, theirs)}"
            )


def runtime_env_error(e: BaseException, *, pip: bool) -> ClusterError:
    """One line for a runtime_env a node could not set up, with what to change."""
    if pip:
        hint = ("--ray-pip needs virtualenv on every node; leave --ray-pip out when the "
                "nodes already have requirements.txt installed")  # fmt: skip
    else:
        hint = "the job ships only the core package; check the node's Ray logs"
    return ClusterError(
        f"the cluster could not set up this job's runtime_env ({one_line(e)}): {hint}"
    )


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


def connect(
    address: str | None, *, num_cpus: int, pip: bool = False, check: bool = True
) -> bool:
    """
    Join the cluster at ``address`` (or $RAY_ADDRESS), else start a local Ray instance
    with ``num_cpus``. The job ships the core package, plus the pinned requirements with
    ``pip``; ``check``: compare every node's packages with this driver's (check_nodes).
    Returns whether this call initialised Ray (and so must shut it down).
    """
    import ray
    from ray.exceptions import AuthenticationError

    if ray.is_initialized():  # the caller's own session: its runtime_env stands
        return False
    address = resolve_address(address)
    kw = dict(include_dashboard=False, log_to_driver=False, runtime_env=runtime_env(pip=pip))
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
    if check:
        try:
            check_nodes(pip=pip)
        except BaseException:
            ray.shutdown()
            raise
    return True
