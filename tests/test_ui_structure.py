"""How the ui package is built: thin pages, layering, a new explanation method without ui
edits, closed gate on unreadable secrets, one colour helper, no streamlit in core, server
config."""

from __future__ import annotations

import ast
import re
import tomllib

from app_helpers import (  # noqa: F401 (fixture: app_env)
    ROOT,
    analyse,
    app_env,
    assert_clean,
    new_app,
    texts,
    wav_bytes,
)

import ui
import ui.gate
from core.explain import EXPLAINERS, explain_params
from core.explain.base import Explainer

# ------------------------------------------------------------------ structure


def test_pages_are_thin():
    for key, spec in ui.PAGES.items():
        src = (ROOT / spec.file).read_text()
        assert "import torch" not in src and "import core" not in src, spec.file
        body = [ln for ln in src.split('"""')[-1].splitlines() if ln.strip()]
        assert body == [
            "from ui.gate import page_setup",
            f'page_setup("{key}")',
            f"from ui.views import {key}  # noqa: E402 (after the gate: it draws before "
            "heavy imports)",
            f"{key}.render()",
        ], f"{spec.file} must start behind the access gate and only call its view"
        assert spec.heading and spec.intro, f"{key}: page_setup draws its title and intro"


def test_the_gate_and_sidebar_draw_without_heavy_imports():
    """cold start: everything page_setup draws before the view comes without torch"""
    import subprocess
    import sys

    code = (
        "import sys, ui.gate, ui.markup, ui.access\n"
        "heavy = [m for m in ('torch', 'captum', 'sklearn', 'altair', 'core.engine.service', "
        "'ui.engine') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported before the page's title shows: {out.stdout}"


UI_MODULES = sorted((ROOT / "ui").rglob("*.py"))


def imports(src: str) -> set[tuple[str, str]]:
    """(module, name) of every import in a module's source ("" name for `import x`)"""
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            out |= {(a.name, "") for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {(node.module, a.name) for a in node.names}
    return out


def test_ui_package_layers():
    """only ui/engine.py talks to the engine; nothing imports the store or core.analyze"""
    assert not (ROOT / "ui.py").exists()
    assert len(UI_MODULES) >= 8
    for mod in UI_MODULES:
        src = mod.read_text()
        name = mod.relative_to(ROOT).as_posix()
        assert ast.get_docstring(ast.parse(src)), f"{name} needs a docstring"
        assert len(src.splitlines()) <= 400, f"{name} is over 400 lines"
        imported = imports(src)
        modules = {m for m, _ in imported}
        assert not {m for m in modules if m.startswith("core.analyze")}, name
        store = {n for m, n in imported if m == "core.store" or m.startswith("core.store.")}
        assert store <= {"StoreError", "NotStoredError"}, (name, store)
        assert ("core", "store") not in imported, name
        if name != "ui/engine.py":
            assert "core.engine.service" not in modules and ("core", "service") not in imported, name
        assert not re.search(r"\bdb\s*=", src), f"{name} threads a store path by hand"
        assert not re.search(r"\*,[^)]*\bkey: str", src), (
            f"{name}: widget key prefixes are prefix=, key means a model key"
        )


def test_a_new_explanation_method_needs_no_ui_edit(app_env, monkeypatch):
    """the method picker, its description and its cost come from the registry"""
    extra = Explainer(
        name="occlusion", version="1", fn=lambda *a, **k: None,
        description="zeroes one segment at a time", label="Occlusion sweep",
        cost="One forward pass per segment: a few seconds.",
    )  # fmt: skip
    backend = app_env["explain"]
    monkeypatch.setattr(backend, "EXPLAINERS", {**EXPLAINERS, "occlusion": extra})
    monkeypatch.setattr(backend, "explain_params", lambda method, **kw: explain_params(
        "gradcam" if method == "occlusion" else method, **kw))  # fmt: skip
    a = analyse(wav_bytes(seed=11), "new_method.wav", app_env["db"])
    at = new_app(sha=a.sha256, method="occlusion")
    at.run()
    assert_clean(at)
    picker = at.selectbox(key="analyze_method")
    assert picker.value == "occlusion"
    assert "Occlusion sweep" in picker.options
    shown = texts(at)
    assert "**Occlusion sweep**: zeroes one segment at a time" in shown
    # its cost: measured on this server (core.engine.explaining.Estimate), not a fixed text
    assert "on this server" in shown and "One forward pass per segment" not in shown
    assert at.button(key="analyze_compute").proto.label == "Compute Occlusion sweep"


def test_one_colour_helper_for_verdicts_and_badges():
    from core.export.colours import BONAFIDE_BLUE, NEUTRAL, SPOOF_RED
    from ui import widgets

    assert widgets.verdict_style(1.0) == f"background:{SPOOF_RED};color:#ffffff"
    assert widgets.verdict_style(0.0) == f"background:{BONAFIDE_BLUE};color:#ffffff"
    assert widgets.verdict_style(0.5) == f"background:{NEUTRAL};color:#222222"
    html = widgets.badge("<b>x</b>", style="background:#000")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>" not in html
    assert "background:#000" in html


def test_core_never_imports_streamlit():
    for mod in (ROOT / "core").rglob("*.py"):
        assert "import streamlit" not in mod.read_text(), mod


def test_server_config():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] and isinstance(cfg["server"]["port"], int)
    assert cfg["server"]["maxUploadSize"] > 0
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["browser"]["gatherUsageStats"] is False
