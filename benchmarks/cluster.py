"""A throwaway two-node Ray cluster on this machine, for the cluster test and benchmark.

The head node runs as usual. The second node runs in its own mount namespace
(``unshare -m``), in which each path of ``hide`` (the project, ../shared, the corpus)
is covered by an empty tmpfs, with its own temporary directory and working directory
``/``: a task that succeeds there got its code, weights and audio from the cluster,
not from the driver's files. Both nodes are ``ray start --block`` processes, each in a
process group of its own, stopped by group id (never ``ray stop``, which would stop
every Ray on the machine), and their temporary directories are removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ISOLATED = "isolated_node"  # custom resource that marks the second node
START_TIMEOUT_S = 180.0  # a loaded 2-core machine has taken over 90 s
OBJECT_STORE_BYTES = 200_000_000  # per node: audio and weights are small


class ClusterUnavailable(RuntimeError):
    """This machine cannot run the two-node cluster; str() says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unshare() -> list[str]:
    """The unshare prefix that gives a private mount namespace, as root or not."""
    if shutil.which("unshare") is None:
        raise ClusterUnavailable("`unshare` (util-linux) is not installed")
    prefix = ["unshare", "-m", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix.insert(1, "-r")  # a user namespace lets a non-root user mount tmpfs
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(prefix + ["mount", "-t", "tmpfs", "tmpfs", d],
                           capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["exit code %d" % r.returncode])[-1]
        raise ClusterUnavailable(f"cannot hide paths from a second node: unshare: {why}")
    return prefix


class TwoNodeCluster:
    """
    with TwoNodeCluster(hide=[...], env={...}) as c: c.address  # "IP:PORT" of the head

    env : extra environment of both nodes (RAY_AUTH_MODE, RAY_AUTH_TOKEN)
    head_cpus : the head's CPUs (default cpus_per_node); 0 puts every task and replica
        that needs a CPU on the isolated node
    """

    def __init__(self, hide: list[Path], *, env: dict[str, str] | None = None,
                 cpus_per_node: int = 1, head_cpus: int | None = None):  # fmt: skip
        paths = {Path(p).resolve() for p in hide if Path(p).exists()}
        # a path inside another hidden one is hidden with it (and its mount point is gone)
        self.hide = sorted(p for p in paths if not any(q in p.parents for q in paths))
        self.env = {**os.environ, **(env or {})}
        self.cpus = cpus_per_node
        self.head_cpus = cpus_per_node if head_cpus is None else head_cpus
        self.procs: list[subprocess.Popen] = []
        self.dirs: list[str] = []
        self.address = ""

    def _ray_start(self, args: list[str], *, cpus: int, prefix: list[str] = (), cwd: str = "/"):
        tmp = tempfile.mkdtemp(prefix="rn", dir="/tmp")  # short: unix socket paths <108 B
        self.dirs.append(tmp)
        log = open(Path(tmp) / "start.log", "wb")
        cmd = ["ray", "start", *args, "--num-cpus", str(cpus), "--temp-dir", tmp,
               "--disable-usage-stats", "--object-store-memory", str(OBJECT_STORE_BYTES),
               "--dashboard-agent-listen-port", str(_free_port()), "--block"]  # fmt: skip
        if prefix:  # mount the tmpfs covers, then become ray start (same pid)
            mounts = " && ".join(f"mount -t tmpfs tmpfs '{p}'" for p in self.hide)
            cmd = [*prefix, "sh", "-c", f"{mounts or 'true'} && exec \"$@\"", "sh", *cmd]
        proc = subprocess.Popen(cmd, env=self.env, cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc, Path(tmp)

    def _wait(self, proc, tmp: Path, ready) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (tmp / "start.log").read_text(errors="replace").strip().splitlines()
                why = tail[-1] if tail else "no output"
                raise ClusterUnavailable(f"a Ray node did not start: {why}")
            time.sleep(0.3)

    def start(self) -> "TwoNodeCluster":
        prefix = _unshare()
        if shutil.which("ray") is None:
            raise ClusterUnavailable("the `ray` command is not on PATH")
        head, htmp = self._ray_start(["--head", "--port", "0", "--include-dashboard", "false"],
                                     cpus=self.head_cpus)  # fmt: skip
        current = htmp / "ray_current_cluster"
        self._wait(head, htmp, lambda: current.exists() and current.read_text().strip())
        self.address = current.read_text().strip()
        node, ntmp = self._ray_start(
            ["--address", self.address, "--resources", f'{{"{ISOLATED}": 1}}'], cpus=self.cpus,
            prefix=prefix,
        )  # fmt: skip
        started = ntmp / "start.log"
        self._wait(node, ntmp, lambda: b"Ray runtime started" in started.read_bytes())
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):  # the second node first, then the head
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is still up
            proc.wait()
        self.procs.clear()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()

    def __enter__(self) -> "TwoNodeCluster":
        for attempt in (1, 2):  # on a loaded machine a raylet may miss Ray's 30-s start window
            try:
                return self.start()
            except BaseException as e:
                self.stop()
                if attempt == 2 or not isinstance(e, ClusterUnavailable):
                    raise

    def __exit__(self, *exc) -> None:
        self.stop()
