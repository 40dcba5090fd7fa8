"""Every page of the default install, in Chromium at 1400x1000 and 1024x768: no chart's
plot under 120 px, no text overflowing its container, no table wider than its column,
no badge broken over two lines, and no console error from our own code. One screenshot
per page, its pixel height checked against the page's.

The store holds one analysed minispoof clip, scored by the default install's models
(weights/, with weights/calibration.json), with an explanation per model for Grad-CAM
and SHAP (stand-ins from tests/browser_seed.py), and a small labelled batch for the
Corpus page. DASHBOARD_SCREENSHOT_EXPLAIN=1 computes real Grad-CAM instead (real SHAP
takes too long on a busy CPU); DASHBOARD_SCREENSHOT_STORE=DIR starts from a copy of the
store in DIR, so what it already holds is served, not computed again.

README screenshots: DEEPFAKE_SCREENSHOTS_DIR=docs/screenshots DASHBOARD_SCREENSHOT_EXPLAIN=1
python -m pytest -m browser tests/test_browser_layout.py -k 1400 writes analyze.png,
compare.png, history.png and models.png there (1400 px wide, the whole page).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from browser_seed import SEED_METHODS, seed_analysis, seed_batch
from test_browser import CHARTS_DRAWN, CLIP, ROOT, SHOTS_ENV, free_port, wait_healthy

pytestmark = pytest.mark.browser

VIEWPORTS = {"1400x1000": (1400, 1000), "1024x768": (1024, 768)}
MIN_CHART_PX = 120
MIN_PLOT_WIDTH_PX = 60  # the small multiples of Compare, four across a 1024-px screen
README_SHOTS = ("analyze", "compare", "history", "models")
PAGE_TIMEOUT_MS = 600_000  # a cold server imports torch and loads three models first

# per chart: the element's height, and its plot area's (the frame's background path,
# when Vega drew SVG; a canvas is measured as a whole)
MEASURE_CHARTS = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
  .filter(c => c.getClientRects().length > 0).map(c => {
    const svg = c.querySelector('svg');
    const bg = svg && svg.querySelector('.role-frame path.background');
    const box = bg && bg.getBoundingClientRect();
    return {element: c.getBoundingClientRect().height,
            plot: box ? box.height : null, plot_width: box ? box.width : null,
            title: (c.closest('[data-testid="stVerticalBlock"]') || c).innerText.slice(0, 40)};
  })"""

# text that is cut, runs out of the main column, or a badge broken over two lines
OVERFLOWS = """() => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]')
    || document.querySelector('[data-testid="stMain"]');
  const right = main.getBoundingClientRect().right;
  const out = [];
  const sel = ['[data-testid="stMarkdownContainer"] p', '[data-testid="stMarkdownContainer"] li',
    '[data-testid="stCaptionContainer"]', '[data-testid="stMetricValue"]',
    '[data-testid="stMetricLabel"]', '[data-testid="stHeading"]', 'button p',
    '[data-testid="stAlertContainer"] p'].join(',');
  for (const el of main.querySelectorAll(sel)) {
    if (!el.getClientRects().length || el.closest('pre, [data-testid="stCode"]')) continue;
    const text = el.innerText.trim().slice(0, 60);
    if (!text) continue;
    const ox = getComputedStyle(el).overflowX;
    if (el.scrollWidth > el.clientWidth + 1 && ox !== 'auto' && ox !== 'scroll')
      out.push(`cut: ${text} (${el.scrollWidth} > ${el.clientWidth} px)`);
    else if (el.getBoundingClientRect().right > right + 1)
      out.push(`outside the page: ${text}`);
  }
  // any other text its box cuts off: an ellipsis, or hidden overflow (widget values)
  for (const el of main.querySelectorAll('*')) {
    if (!el.getClientRects().length || el.closest('pre, [data-testid="stCode"], [data-testid="stDataFrame"], [data-testid="stVegaLiteChart"]')) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.clientWidth < 8) continue;
    const cs = getComputedStyle(el);
    const clips = cs.textOverflow === 'ellipsis' || cs.overflowX === 'hidden';
    if (clips && el.scrollWidth > el.clientWidth + 1)
      out.push(`cut off: ${el.innerText.trim().slice(0, 60)} (${el.scrollWidth} > ${el.clientWidth} px)`);
  }
  for (const b of main.querySelectorAll('[data-testid="stMarkdownContainer"] span[style*="border-radius"]'))
    if (b.getClientRects().length > 1) out.push(`badge broken over lines: ${b.innerText}`);
  for (const t of main.querySelectorAll('[data-testid="stDataFrame"]')) {
    const s = t.querySelector('.dvn-scroller');
    if (!s) out.push('a table without its scroller: cannot measure it');
    else if (s.scrollWidth > s.clientWidth + 1)
      out.push(`table wider than its column: ${s.scrollWidth} > ${s.clientWidth} px`);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def default_install(tmp_path_factory, browser_module, minispoof_dir_module):
    """the app as installed (weights/, its calibration) on a seeded temp store"""
    tmp = tmp_path_factory.mktemp("layout")
    db = tmp / "store" / "analyses.db"
    if os.environ.get("DASHBOARD_SCREENSHOT_STORE"):
        shutil.copytree(os.environ["DASHBOARD_SCREENSHOT_STORE"], db.parent)
    db.parent.mkdir(exist_ok=True)
    real = bool(os.environ.get("DASHBOARD_SCREENSHOT_EXPLAIN"))
    methods = ("gradcam",) if real else SEED_METHODS
    env = {**os.environ, "DEEPFAKE_DB": str(db)}
    for name in ("DEEPFAKE_WEIGHTS_DIR", "DEEPFAKE_PASSWORD", "DEEPFAKE_ALLOWED_NETWORKS"):
        env.pop(name, None)
    saved = os.environ.pop("DEEPFAKE_WEIGHTS_DIR", None)
    try:
        sha = seed_analysis(db, minispoof_dir_module / CLIP, methods=methods, real=real)
        seed_batch(db)
    finally:
        if saved is not None:
            os.environ["DEEPFAKE_WEIGHTS_DIR"] = saved
    port = free_port()
    log = tmp / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.port", str(port), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield {"url": url, "sha": sha, "browser": browser_module, "methods": methods}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def minispoof_dir_module():
    from conftest import MINISPOOF, require_shared

    return require_shared(MINISPOOF)


@pytest.fixture(scope="module")
def browser_module():
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} not found")
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def pages(sha: str, method: str) -> dict[str, tuple[str, str]]:
    """name -> (path, text that says the page has drawn its body)"""
    return {
        "analyze": (f"/?sha={sha}&model=tssd2d&method={method}", "Evidence per segment"),
        "compare": (f"/compare?sha={sha}", "Agreement"),
        "history": ("/history", "Open, share or delete"),
        "corpus": ("/corpus", "Where the evidence sits, per attack"),
        "models": ("/models", "Calibration of the combined verdict"),
    }


def settle(page) -> None:
    """the app has finished its run: no 'Running...' status widget"""
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
    )


def png_height(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">I", head[20:24])[0]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_fits_and_draws_its_charts(default_install, viewport, tmp_path):
    width, height = VIEWPORTS[viewport]
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path) if viewport == "1400x1000" else tmp_path
    context = default_install["browser"].new_context(viewport={"width": width, "height": height})
    errors: list[str] = []
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and errors.append(
        f"console: {m.text} at {m.location.get('url', '')}"))  # fmt: skip
    seen: dict[str, list] = {}
    methods = default_install["methods"]
    for name, (path, ready) in pages(default_install["sha"], methods[-1]).items():
        page.goto(default_install["url"] + path)
        page.get_by_text(ready).first.wait_for()
        settle(page)
        page.wait_for_function(CHARTS_DRAWN)
        page.wait_for_timeout(1500)  # charts lay out to their container's width
        charts = page.evaluate(MEASURE_CHARTS)
        seen[name] = charts
        for c in charts:
            assert c["element"] >= MIN_CHART_PX, (viewport, name, c)
            assert c["plot"] is None or c["plot"] >= MIN_CHART_PX, (viewport, name, c)
            # and wide enough to draw in: a legend or labels once left bars 0 px wide
            assert c["plot_width"] is None or c["plot_width"] >= MIN_PLOT_WIDTH_PX, (
                viewport, name, c)
        assert page.evaluate(OVERFLOWS) == [], (viewport, name)
        shot = shoot(page, shots if name in README_SHOTS else tmp_path, name, width, height)
        main = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        assert abs(png_height(shot) - min(max(main, height), 8000)) <= 4, (name, main)
        assert png_height(shot) >= sum(c["element"] for c in charts), name
    # every page that has charts drew them
    assert len(seen["analyze"]) == 5 and len(seen["models"]) == 1 and len(seen["corpus"]) == 1
    assert len(seen["compare"]) >= 1 + 3 * len(methods)  # the timeline, 3 models x methods
    # Streamlit's own frontend probes /<page>/_stcore/health and host-config on a deep
    # link (404, not ours); anything else is an error of this app
    ours = [e for e in errors if "/_stcore/" not in e]
    assert ours == [], ours
    context.close()


def shoot(page, folder: Path, name: str, width: int, height: int) -> Path:
    """the whole page: the viewport grown to the main block's height, then restored"""
    main = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": width, "height": min(max(main, height), 8000)})
    page.wait_for_timeout(1500)
    page.wait_for_function(CHARTS_DRAWN)
    path = Path(folder) / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": height})
    return path
