"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Starts `streamlit run streamlit_app.py` on a free localhost port with a temp store,
uploads a minispoof clip, waits for the verdicts, opens History, follows its share link
in a fresh browser context (another analyst) and checks the same verdicts appear.
Screenshots of every page go to the test's temp folder: this test runs the published
AASIST weights without a calibration, not the default install, so the README's
screenshots come from tests/test_browser_layout.py instead (DEEPFAKE_SCREENSHOTS_DIR).

Set DASHBOARD_SCREENSHOT_EXPLAIN=1 to also store real Grad-CAM and SHAP explanations
for every model before the screenshots (several minutes on a busy CPU).
DASHBOARD_SCREENSHOT_STORE=DIR starts from a copy of the store in DIR (e.g. one kept
from such a run), so they are served instead of computed again.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import ui

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS_ENV = "DEEPFAKE_SCREENSHOTS_DIR"
CLIP = "flac/MS_D_1023594.flac"  # a minispoof dev clip
PAGE_NAMES = [p.title for p in ui.PAGES.values()]
VIEWPORT = {"width": 1440, "height": 1000}
# every visible Altair chart has drawn its canvas (those in closed tabs never do)
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .filter(c => c.getClientRects().length > 0)
    .every(c => c.querySelector('canvas, svg'))"""
SERVER_START_S = 60
VERDICT_TIMEOUT_MS = 120_000  # first upload loads both AASIST checkpoints


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path, official_weights_dir):
    """the app on a free port, with a temp store and the published weights"""
    port = free_port()
    seed_store = os.environ.get("DASHBOARD_SCREENSHOT_STORE")
    if seed_store:
        shutil.copytree(seed_store, tmp_path / "store")
    env = {
        **os.environ,
        "DEEPFAKE_DB": str(tmp_path / "store" / "analyses.db"),
        "DEEPFAKE_WEIGHTS_DIR": str(official_weights_dir),
    }
    env.pop("DEEPFAKE_PASSWORD", None)
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
                "--server.port", str(port), "--server.headless", "true",
                "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield {"url": url, "db": env["DEEPFAKE_DB"]}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} not found: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def settle(page) -> None:
    """wait until the app has finished its run (no 'Running...' status widget)"""
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000
    )


@pytest.fixture
def shots(tmp_path) -> Path:
    """the test's temp folder (never the README's: see tests/test_browser_layout.py)"""
    folder = tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page, name: str, folder: Path) -> Path:
    """
    a screenshot of the whole page: Streamlit scrolls inside its main block, so the
    viewport is grown to the content's height first (and restored after)
    """
    page.wait_for_function(CHARTS_DRAWN, timeout=60_000)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, 900), 8000)})
    page.wait_for_timeout(2000)  # charts and tables re-layout to the new size
    page.wait_for_function(CHARTS_DRAWN, timeout=60_000)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
    return path


def sidebar_links(page) -> list[str]:
    """the sidebar menu's entries, once the sidebar has been drawn"""
    links = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]')
    links.nth(len(PAGE_NAMES) - 1).wait_for()
    # Streamlit's own menu stays hidden (it would list pages/ a second time)
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    return [" ".join(t.split()) for t in links.all_inner_texts()]


def go(page, name: str) -> None:
    """follow the sidebar menu"""
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name=name, exact=True).click()


def verdicts(page) -> list[str]:
    return [" ".join(t.split()) for t in page.locator(".verdict-card").all_inner_texts()]


def explain_for_docs(sha: str, db: str) -> None:
    """real Grad-CAM and SHAP for every model, for the README's screenshots"""
    from core.engine.service import Engine

    engine = Engine(db)
    for model in sorted(engine.analysis(sha).verdicts):
        for method in ("gradcam", "shap"):
            engine.explain(sha, model, method)


def test_upload_history_share_link(server, browser, minispoof_dir, shots):
    url = server["url"]
    clip = minispoof_dir / CLIP
    assert clip.exists(), clip
    context = browser.new_context(viewport=VIEWPORT)
    requested: list[str] = []  # the dashboard must work on a LAN without internet
    context.on("request", lambda r: requested.append(r.url))
    page = context.new_page()
    page.set_default_timeout(60_000)

    page.goto(url)
    page.get_by_text("Analyze a recording").wait_for()
    # st.navigation + a pages/ folder: every page listed exactly once
    links = sidebar_links(page)
    for name in PAGE_NAMES:
        assert sum(name in t for t in links) == 1, links
    assert page.get_by_text("Open access").first.is_visible()

    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
    page.locator(".verdict-card").first.wait_for(timeout=VERDICT_TIMEOUT_MS)
    settle(page)
    seen = verdicts(page)
    assert seen and all(("SPOOF" in v) or ("BONA FIDE" in v) for v in seen), seen
    assert "sha=" in page.url  # the address bar is the share link
    if os.environ.get("DASHBOARD_SCREENSHOT_EXPLAIN"):
        explain_for_docs(page.url.split("sha=")[1].split("&")[0], server["db"])
        page.reload()
        page.get_by_text("Waveform with evidence over time").wait_for(timeout=120_000)
        settle(page)
    shoot(page, "analyze", shots)

    go(page, "History")
    page.get_by_text("Open, share or delete").wait_for()
    settle(page)
    page.get_by_text("1 analysis ·").wait_for()  # the upload is listed
    share = page.locator('[data-testid="stCode"] code').first.inner_text().strip()
    assert share.startswith(url) and "?sha=" in share, share
    shoot(page, "history", shots)

    go(page, "Compare")
    page.get_by_text("Explanations grid").wait_for()
    settle(page)
    shoot(page, "compare", shots)

    go(page, "Models")
    page.get_by_text("models ready on this server").wait_for()
    settle(page)
    shoot(page, "models", shots)

    # another analyst follows the link: same verdicts, straight from the store
    other_context = browser.new_context(viewport=VIEWPORT)
    other_context.on("request", lambda r: requested.append(r.url))
    other = other_context.new_page()
    other.set_default_timeout(60_000)
    other.goto(share)
    other.locator(".verdict-card").first.wait_for()
    settle(other)
    assert verdicts(other) == seen

    # deep links land on their page, each listed once in the menu
    for path, heading in [("/models", "Models"), ("/history", "History"),
                          ("/compare", "Compare models and methods")]:
        other.goto(url + path)
        other.get_by_role("heading", name=heading, exact=True).wait_for()
        settle(other)
        links = sidebar_links(other)
        assert all(sum(n in t for t in links) == 1 for n in PAGE_NAMES), links
    other.goto(url + "/?sha=" + "0" * 64)
    other.get_by_text("No analysis with hash").wait_for()
    for name in ("analyze", "history", "compare", "models"):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name
    # every request of every page went to the server (no fonts, icons or CDNs outside)
    hosts = {urllib.parse.urlparse(u).hostname for u in requested if u.startswith(("http", "ws"))}
    assert requested and hosts == {"127.0.0.1"}, sorted(set(requested) - {url})[:5]
