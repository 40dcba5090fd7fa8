"""Upload flood against the password: the server's memory while clients try to upload.

    python -m benchmarks uploads [--clients 10] [--puts 20] [--mb 40] [--login 0]
                                 [--login-puts 4] [--baseline 0]

Starts the real dashboard (`streamlit run streamlit_app.py`) on a free 127.0.0.1 port
with a fresh store and an access password, then:

1. **Before the gate**: ``--clients`` sessions at once, none of which gives the
   password, each ask for an upload URL and then PUT ``--puts`` files of ``--mb`` MB to
   URLs made from their own session id, as a client that skips the frontend would.
2. **After the gate** (``--login N``): N sessions give the password and each PUT
   ``--login-puts`` files of ``--mb`` MB; the server keeps at most two per session and
   $DEEPFAKE_UPLOAD_MEMORY_MB (256 MB) in all. Then they close, and the benchmark waits
   for the server to free what they held (sessions end 2 s after they disconnect).
3. ``--baseline N``: N PUTs of ``--mb`` MB from one session to a plain Streamlit
   uploader page with no guard (what the dashboard took before ui.guard), for
   comparison; kept small, since that server keeps every byte.

Prints per phase the answers counted (403, 503, 204, "hung up": refused after reading
at most 1 MB of the body, the connection closed), the server's resident memory (idle,
peak while sampled every 0.1 s, after) and the upload bytes it holds (Streamlit's
/_stcore/metrics). At most a few hundred requests, to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import http.client
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Self

from benchmarks.common import rss_mb, start_streamlit
from benchmarks.stclient import Visit, _put_multipart

PASSWORD = "benchmark password 12345"
METRICS_TTL_S = 5.2  # Streamlit recomputes its memory metrics at most every 5 s
PLAIN_PAGE = 'import streamlit as st\nst.file_uploader("Audio file")\n'


class Sampler:
    """the server's VmRSS every 0.1 s in a thread: the peak between start and stop"""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid)[0])
            time.sleep(0.1)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def held_mb(url: str) -> float:
    time.sleep(METRICS_TTL_S)
    with urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('cache_memory_bytes{cache_type="UploadedFileManager"'):
                return int(line.rsplit(" ", 1)[1]) / 2**20
    return 0.0


def put(v: Visit, path: str, data: bytes) -> str:
    """one PUT; the answer as the client saw it: '204', '403', ... or 'closed'"""
    try:
        _put_multipart(v.url + path, v.xsrf, "clip.flac", data, "audio/flac")
    except urllib.error.HTTPError as e:
        return str(e.code)
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
        return "hung up"  # refused before the body was all sent: the server closed
    return "204"


async def flood(url: str, clients: int, puts: int, data: bytes) -> collections.Counter:
    """sessions that never give the password ask for URLs and PUT anyway"""
    answers: collections.Counter = collections.Counter()

    async def client() -> None:
        async with Visit(url) as v:
            await v.run("")
            resp = await v.upload_urls("clip.flac")
            answers[
                "URL refused" if resp.error_msg or not resp.file_urls else "URL given"
            ] += 1
            for _ in range(puts):
                path = f"/_stcore/upload_file/{v.session_id}/{uuid.uuid4()}"
                answers[await asyncio.to_thread(put, v, path, data)] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers


async def logged_in_uploads(url: str, sessions: int, puts: int, data: bytes):
    """sessions that gave the password upload; measured while they are still open"""
    answers: collections.Counter = collections.Counter()
    ready, done = asyncio.Event(), asyncio.Event()
    finished = 0

    async def analyst() -> None:
        nonlocal finished
        async with Visit(url) as v:
            await v.run("")
            await v.login(PASSWORD)
            for _ in range(puts):
                resp = await v.upload_urls("clip.flac")
                path = resp.file_urls[0].upload_url
                answers[await asyncio.to_thread(put, v, path, data)] += 1
            finished += 1
            if finished == sessions:
                ready.set()
            await done.wait()  # stay connected until the server's holdings are read

    async def measure() -> float:
        await ready.wait()
        held = await asyncio.to_thread(held_mb, url)
        done.set()
        return held

    *_, held = await asyncio.gather(*(analyst() for _ in range(sessions)), measure())
    print(f"  uploads held while those sessions were open: {held:.1f} MB")
    return answers


async def warm_up(url: str) -> None:
    """one session past the gate: the pages' imports (torch, ...) are then paid for"""
    async with Visit(url) as v:
        await v.run("")
        await v.login(PASSWORD)


def report(
    name: str, answers, idle: float, peak: float, after: float, held: float
) -> None:
    shown = ", ".join(f"{k}: {n}" for k, n in sorted(answers.items()))
    print(f"{name}: {shown}")
    print(f"  server RSS idle {idle:.0f} MB, peak {peak:.0f} MB (+{peak - idle:.0f}), "
          f"after {after:.0f} MB; uploads held {held:.1f} MB")  # fmt: skip


def run_phase(name: str, proc, url: str, coro_fn) -> None:
    idle = rss_mb(proc.pid)[0]
    with Sampler(proc.pid) as s:
        answers = asyncio.run(coro_fn())
    held = held_mb(url)
    report(name, answers, idle, max(s.peak, idle), rss_mb(proc.pid)[0], held)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks uploads",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--clients", type=int, default=10, help="sessions without the password"
    )
    ap.add_argument("--puts", type=int, default=20, help="PUTs per such session")
    ap.add_argument("--mb", type=float, default=40.0, help="size of each file, MB")
    ap.add_argument(
        "--login", type=int, default=0, help="sessions that give the password"
    )
    ap.add_argument("--login-puts", type=int, default=4, help="PUTs per such session")
    ap.add_argument("--baseline", type=int, default=0, help="PUTs to an unguarded page")
    args = ap.parse_args(argv)
    if (
        args.clients * (args.puts + 1) + args.login * args.login_puts + args.baseline
        > 600
    ):
        ap.error("at most a few hundred requests: lower --clients, --puts or --login")
    data = b"\x00" * int(args.mb * 2**20)
    print(
        f"{args.clients} sessions x {args.puts} PUTs of {args.mb:g} MB, 127.0.0.1 only"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {
            **os.environ,
            "DEEPFAKE_DB": str(tmp / "analyses.db"),
            "DEEPFAKE_PASSWORD": PASSWORD,
        }
        ttl = ("--server.disconnectedSessionTTL", "2")
        proc, url = start_streamlit(
            "streamlit_app.py", tmp / "dashboard.log", env=env, args=ttl
        )
        try:
            asyncio.run(flood(url, 1, 0, b""))  # one gate page first: the idle server
            run_phase("dashboard, before the gate", proc, url,
                      lambda: flood(url, args.clients, args.puts, data))  # fmt: skip
            if args.login:
                asyncio.run(warm_up(url))
                run_phase(
                    f"dashboard, {args.login} sessions past the gate",
                    proc,
                    url,
                    lambda: logged_in_uploads(url, args.login, args.login_puts, data),
                )
                # the sessions end 2 s after they close, and are swept every 5 s
                time.sleep(2 + 5)
                held, rss = held_mb(url), rss_mb(proc.pid)[0]
                print(f"  after those sessions ended: uploads held {held:.1f} MB, "
                      f"server RSS {rss:.0f} MB")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        if args.baseline:
            page = tmp / "plain_uploader.py"
            page.write_text(PLAIN_PAGE)
            env.pop("DEEPFAKE_PASSWORD")
            proc, url = start_streamlit(page, tmp / "plain.log", env=env, args=ttl)
            try:
                asyncio.run(flood(url, 1, 0, b""))
                run_phase("baseline: plain uploader page, no guard", proc, url,
                          lambda: flood_plain(url, 1, args.baseline, data))  # fmt: skip
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    return 0


async def flood_plain(
    url: str, clients: int, puts: int, data: bytes
) -> collections.Counter:
    """the same flood with the URLs the unguarded server hands out"""
    answers: collections.Counter = collections.Counter()

    async def client() -> None:
        async with Visit(url) as v:
            await v.run("")
            for _ in range(puts):
                resp = await v.upload_urls("clip.flac")
                answers[
                    await asyncio.to_thread(put, v, resp.file_urls[0].upload_url, data)
                ] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers
