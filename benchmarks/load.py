"""Many analysts on one server: cold start, then a mixed load over loopback.

    python -m benchmarks load [--sessions 8] [--duration 60] [--think 0]
                              [--client protocol|browser] [--cold-only] [--seed 0]
                              [--ray-address ADDR]

Starts the real dashboard (`streamlit run streamlit_app.py`) on a free 127.0.0.1 port
with a fresh store, and drives it as people would:

1. **Cold start** (Debian's Chromium through Playwright): the first page load of a
   server that has just started; seconds until the Analyze page's title shows, and
   until its uploader can be used.
2. **Offline check**: every request the browser makes is recorded; any host other than
   the server is reported (the dashboard must work on a LAN without internet).
3. **Load**: ``--sessions`` concurrent analysts for ``--duration`` seconds, each
   repeating a random action: 80 % a repeat view of a stored analysis (its share link,
   in a new tab), 15 % a new 6-s upload, 5 % a new 2-min upload (each upload is new
   audio), back to back or (``--think T``) with a random pause of mean T seconds between
   actions, as people reading a result would. The latency of an action is from its start
   until every model's verdict card has arrived. A few analyses are stored before the
   clock starts. With ``--client protocol`` (default) each analyst is
   benchmarks.stclient: Streamlit's own websocket protocol and upload route, nothing
   rendered, so the server has the cores as it does when the analysts' browsers run on
   their own machines; the time until the page's script finished is shown too.
   ``--client browser`` drives one headless Chromium tab per analyst instead, on the
   same cores as the server (rendering included).

Prints p50 / p95 / max latency per kind, the count of errors, and the server's peak
resident memory. With ``--ray-address`` the whole run is made twice from this machine,
first with the models in the server's process, then with a server that sends them to
that Ray cluster's Serve deployments ($DEEPFAKE_RAY_ADDRESS; core.corpus.serve), and
the two latency tables are printed side by side. Targets (issue 14, 2-core machine): 0 errors, repeat views p95 < 1 s
while a 2-min upload is being scored, new 6-s uploads p95 < 5 s with 8 sessions.
Traffic goes to 127.0.0.1 only and stops by itself after the duration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks.common import encoded, speech_like, start_streamlit
from benchmarks.stclient import ProtocolError, Visit
from core.engine.trace import TRACE_ENV, read_trace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
MIX = (("repeat view", 0.80), ("upload 6 s", 0.15), ("upload 2 min", 0.05))
SECONDS = {"upload 6 s": 6.0, "upload 2 min": 120.0}
ACTION_TIMEOUT_MS = 600_000
TRACE_FILE = "trace.jsonl"  # the server's phase timings (core.engine.trace)
RAY_ADDRESS_ENV = "DEEPFAKE_RAY_ADDRESS"  # core.corpus.serve: the server's models on Ray Serve


def start_server(store: Path, ray_address: str | None = None) -> tuple[subprocess.Popen, str, Path]:
    env = {**os.environ, "DEEPFAKE_DB": str(store / "analyses.db"), TRACE_ENV: str(store / TRACE_FILE)}
    env.pop("DEEPFAKE_PASSWORD", None)
    env.pop(RAY_ADDRESS_ENV, None)
    if ray_address:
        env[RAY_ADDRESS_ENV] = ray_address
    log = store / "streamlit.log"
    proc, url = start_streamlit("streamlit_app.py", log, env=env)
    return proc, url, log


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process (Linux), in MiB"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Recorder:
    """every request URL of every page, to find hosts other than the server"""

    def __init__(self, server: str):
        self.host = urllib.parse.urlparse(server).hostname
        self.external: set[str] = set()

    def __call__(self, request) -> None:
        u = urllib.parse.urlparse(request.url)
        if u.scheme in ("http", "https", "ws", "wss") and u.hostname not in (self.host, "localhost"):
            self.external.add(f"{u.scheme}://{u.hostname}{u.path}")


async def cold_start(browser, url: str, recorder: Recorder) -> dict:
    ctx = await browser.new_context()
    ctx.on("request", recorder)
    page = await ctx.new_page()
    t0 = time.perf_counter()
    await page.goto(url)
    await page.get_by_text("Analyze a recording").wait_for(timeout=120_000)
    t_title = time.perf_counter() - t0
    await page.locator('[data-testid="stFileUploader"] input[type=file]').wait_for(
        state="attached", timeout=120_000
    )
    t_ready = time.perf_counter() - t0
    await ctx.close()
    return {"title_s": t_title, "uploader_s": t_ready}


async def wait_verdicts(page, n_models: int) -> None:
    await page.wait_for_function(
        f"() => document.querySelectorAll('.verdict-card').length >= {n_models}",
        timeout=ACTION_TIMEOUT_MS,
    )


async def upload(page, url: str, audio: bytes, name: str, n_models: int) -> str:
    """a new upload on the Analyze page; returns the analysis' sha from the address bar"""
    await page.goto(url)
    await page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(
        {"name": name, "mimeType": "audio/flac", "buffer": audio}
    )
    await wait_verdicts(page, n_models)
    await page.wait_for_function("() => location.search.includes('sha=')", timeout=60_000)
    return urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["sha"][0]


async def analyst(stop_at: float, rng: random.Random, results: list, act, think: float = 0.0) -> None:
    """
    One analyst acting until stop_at: each action's kind is drawn from MIX and ``await
    act(kind, n)`` returns (latency, finished or None); errors are counted. Between two
    actions the analyst pauses a random time, exponential with mean ``think`` seconds
    (0: back to back). Each action appends (kind, latency, finished, error or None,
    time.monotonic() at its start) to ``results``.
    """
    kinds, weights = zip(*MIX)
    n = 0
    while time.monotonic() < stop_at:
        if n and think > 0:
            await asyncio.sleep(min(rng.expovariate(1.0 / think), max(0.0, stop_at - time.monotonic())))
            if time.monotonic() >= stop_at:
                break
        kind = rng.choices(kinds, weights)[0]
        started = time.monotonic()
        try:
            latency, finished = await act(kind, n)
            results.append((kind, latency, finished, None, started))
        except Exception as e:  # counted and shown: the load test goes on
            err = f"{type(e).__name__}: {e}"[:200]
            results.append((kind, time.monotonic() - started, None, err, started))
        n += 1


async def browser_user(i, url, stored, n_models, stop_at, rng, results, *, browser, recorder, think) -> None:
    ctx = await browser.new_context()
    ctx.on("request", recorder)
    page = await ctx.new_page()

    async def act(kind: str, n: int) -> tuple[float, None]:
        t0 = time.perf_counter()
        if kind == "repeat view":
            await page.goto(f"{url}/?sha={rng.choice(stored)}")
            await wait_verdicts(page, n_models)
        else:
            audio = encoded(speech_like(SECONDS[kind], seed=1000 * (i + 1) + n))
            stored.append(await upload(page, url, audio, f"u{i}-{n}.flac", n_models))
        return time.perf_counter() - t0, None

    await analyst(stop_at, rng, results, act, think)
    await ctx.close()


async def protocol_upload(url: str, audio: bytes, name: str, n_models: int) -> tuple[str, dict]:
    """a new tab on the Analyze page, then an upload; (sha, timings)"""
    async with Visit(url) as tab:
        await tab.run("")
        times = await tab.upload(name, audio, cards=n_models)
        sha = urllib.parse.parse_qs(tab.query).get("sha", [""])[0]
    if times["cards_s"] is None or not sha:
        raise ProtocolError(f"no verdicts for {name} (query {tab.query!r})")
    return sha, times


async def protocol_user(i, url, stored, n_models, stop_at, rng, results, *, think, **_) -> None:
    async def act(kind: str, n: int) -> tuple[float, float]:
        if kind == "repeat view":
            t0 = time.perf_counter()
            async with Visit(url) as tab:
                times = await tab.run(f"sha={rng.choice(stored)}", cards=n_models)
            if times["cards_s"] is None:
                raise ProtocolError("the stored analysis showed no verdicts")
            opened = time.perf_counter() - t0 - times["finished_s"]  # the new tab
            return times["cards_s"] + opened, times["finished_s"] + opened
        audio = encoded(speech_like(SECONDS[kind], seed=1000 * (i + 1) + n))
        sha, times = await protocol_upload(url, audio, f"u{i}-{n}.flac", n_models)
        stored.append(sha)
        return times["cards_s"], times["finished_s"]

    await analyst(stop_at, rng, results, act, think)


async def run(args) -> int:
    if not args.ray_address:
        return await run_once(args)
    where = {}
    for name, address in (("in-process", None), ("Ray Serve", args.ray_address)):
        print(f"\n=== models {name}{f' at {address}' if address else ''} ===")
        where[name] = {}
        await run_once(args, ray_address=address, out=where[name])
    report_side_by_side(where)
    return 0


async def run_once(args, *, ray_address: str | None = None, out: dict | None = None) -> int:
    """One server, one load; ``out`` receives {"results", "rss"} for the side-by-side table."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        proc, url, log = start_server(Path(tmp), ray_address)
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                recorder = Recorder(url)
                cold = await cold_start(browser, url, recorder)
                print(f"cold start: title after {cold['title_s']:.2f} s, uploader after "
                      f"{cold['uploader_s']:.2f} s (first request to a just-started server)")  # fmt: skip
                if args.cold_only:
                    report_offline(recorder)
                    return 0
                ctx = await browser.new_context()
                ctx.on("request", recorder)
                page = await ctx.new_page()
                await page.goto(url)
                n_models = await count_models(page)
                stored = []
                for k in range(3):  # repeat views need something stored
                    audio = encoded(speech_like(6.0, seed=k))
                    stored.append(await upload(page, url, audio, f"seed{k}.flac", n_models))
                await ctx.close()
                if args.client == "protocol":
                    await browser.close()
                pause = f"a mean pause of {args.think:g} s" if args.think > 0 else "no pause"
                print(f"{n_models} models; {len(stored)} analyses stored; {args.sessions} "
                      f"{args.client} sessions for {args.duration:.0f} s, {pause} between actions …")  # fmt: skip
                results: list = []
                traced_before = len(read_trace(Path(tmp) / TRACE_FILE))
                stop_at = time.monotonic() + args.duration
                rng = random.Random(args.seed)
                user = protocol_user if args.client == "protocol" else browser_user
                await asyncio.gather(*[
                    user(i, url, stored, n_models, stop_at, random.Random(rng.random()),
                         results, browser=browser, recorder=recorder, think=args.think)
                    for i in range(args.sessions)
                ])  # fmt: skip
                if args.client == "browser":
                    await browser.close()
        finally:
            rss = peak_rss_mb(proc.pid) if proc.poll() is None else float("nan")
            proc.terminate()
            proc.wait(timeout=30)
        trace = read_trace(Path(tmp) / TRACE_FILE)[traced_before:]
    report(results, rss)
    report_phases(trace)
    report_offline(recorder)
    if out is not None:
        out.update(results=results, rss=rss, trace=trace)
    return 0


async def count_models(page) -> int:
    """the number of models the server shows as ready (sidebar)"""
    cap = page.locator('[data-testid="stSidebar"]').get_by_text("Models ready")
    await cap.wait_for(timeout=120_000)
    text = await page.locator('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]').first.inner_text()
    return max(1, len([t for t in text.split(",") if t.strip()]))


def report(results: list, rss: float) -> None:
    print("\nlatency: from the action's start until every verdict card arrived "
          "(finished: until the page's script ended; protocol client only)")
    print(f"{'action':<14} {'n':>4} {'errors':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7} "
          f"{'finished p95 s':>15}")  # fmt: skip
    for kind, _ in MIX:
        ok = [t for k, t, _, err, _ in results if k == kind and err is None]
        done = [f for k, _, f, err, _ in results if k == kind and err is None and f is not None]
        errs = [err for k, _, _, err, _ in results if k == kind and err is not None]
        print(f"{kind:<14} {len(ok) + len(errs):>4} {len(errs):>6} {percentile(ok, 50):>7.2f} "
              f"{percentile(ok, 95):>7.2f} {max(ok, default=float('nan')):>7.2f} "
              f"{percentile(done, 95):>15.2f}")  # fmt: skip
        for err in sorted(set(errs))[:3]:
            print(f"    error: {err}")
    print(f"server peak RSS: {rss:.0f} MiB")
    report_timeline(results)


def latency_row(results: list, kind: str) -> tuple[int, int, float, float, float]:
    """(n, errors, p50, p95, max) of one kind of action"""
    ok = [t for k, t, _, err, _ in results if k == kind and err is None]
    errs = sum(1 for k, _, _, err, _ in results if k == kind and err is not None)
    return len(ok) + errs, errs, percentile(ok, 50), percentile(ok, 95), max(ok, default=float("nan"))


def report_side_by_side(runs: dict[str, dict]) -> None:
    """The latency table of each run, one column group per run, from the same machine."""
    names = list(runs)
    print("\nlatency side by side (s, until every verdict card arrived; same machine, same mix)")
    print(f"{'action':<14}" + "".join(f" | {n:^30}" for n in names))
    print(f"{'':<14}" + " | {:>4} {:>3} {:>6} {:>6} {:>6}".format("n", "err", "p50", "p95", "max") * len(names))
    for kind, _ in MIX:
        cells = ""
        for n in names:
            k, errs, p50, p95, top = latency_row(runs[n].get("results", []), kind)
            cells += f" | {k:>4} {errs:>3} {p50:>6.2f} {p95:>6.2f} {top:>6.2f}"
        print(f"{kind:<14}{cells}")
    print(f"{'server RSS MiB':<14}" + "".join(f" | {runs[n].get('rss', float('nan')):>30.0f}" for n in names))
    print("server side, new uploads: total p50 / p95 s (core.engine.trace)")
    for kind, seconds in SECONDS.items():
        cells = ""
        for n in names:
            totals = [t["total"] for t in runs[n].get("trace", [])
                      if abs(t["duration"] - seconds) < 1.0 and not t.get("cached")]  # fmt: skip
            cells += f" | {len(totals):>4} {'':>3} {percentile(totals, 50):>6.2f} {percentile(totals, 95):>6.2f} {'':>6}"
        print(f"{kind:<14}{cells}")


def report_timeline(results: list, kind: str = "upload 6 s") -> None:
    """the latency of one kind of action by when it started: a start-up burst shows here"""
    if not results:
        return
    origin = min(r[4] for r in results)
    rows = sorted((r[4] - origin, r[1]) for r in results if r[0] == kind and r[3] is None)
    if rows:
        print(f"{kind}, by start (s after the load began): "
              + ", ".join(f"{t:.0f}: {lat:.1f}" for t, lat in rows))  # fmt: skip


def report_phases(trace: list[dict]) -> None:
    """where the server spent each new upload's time (core.engine.trace lines), p50 / p95"""
    for kind, seconds in SECONDS.items():
        lines = [t for t in trace if abs(t["duration"] - seconds) < 1.0 and not t.get("cached")]
        if not lines:
            continue
        print(f"\nserver side, {kind} ({len(lines)} analyses): phase p50 / p95 s (of which queueing for turns)")
        names = list(dict.fromkeys(name for t in lines for name in t["phases"]))
        for name in [*names, "total"]:
            wall = [t["total"] if name == "total" else t["phases"][name]["seconds"] for t in lines if name == "total" or name in t["phases"]]
            waited = [t["phases"][name]["waited"] for t in lines if name in t["phases"]]
            queue = f"  ({percentile(waited, 50):.2f} / {percentile(waited, 95):.2f})" if waited else ""
            print(f"    {name:<12} {percentile(wall, 50):6.2f} / {percentile(wall, 95):6.2f}{queue}")


def report_offline(recorder: Recorder) -> None:
    if recorder.external:
        print("requests to other hosts (the dashboard should make none):")
        for u in sorted(recorder.external):
            print(f"    {u}")
    else:
        print("offline check: every request went to the server itself")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks load", description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--client", choices=("protocol", "browser"), default="protocol",
                    help="analysts as protocol clients (default) or Chromium tabs")
    ap.add_argument("--think", type=float, default=0.0,
                    help="mean pause between an analyst's actions, seconds (exponential; 0: back to back)")
    ap.add_argument("--cold-only", action="store_true", help="cold start and offline check only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ray-address", metavar="ADDR",
                    help="run the load twice: models in-process, then on this Ray cluster "
                    "(Ray Serve; the cluster's nodes need this machine's packages)")
    args = ap.parse_args(argv)
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C, so the server is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    return asyncio.run(run(args))
