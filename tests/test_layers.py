"""The layers contract: every import in core/, ui/ and pages/ points down (or sideways), none up,
and no two modules import each other, directly or round a loop.

Top to bottom (README, Architecture):

    6  ui/, pages/, streamlit_app.py, core/cli/, core/__main__.py   draw and parse only
    5  core/corpus/, core/export/      drive the Engine over corpora; reports and charts
    4  core/engine/                    the one Engine: scheduling of jobs, keys, results
    3  core/explain/, core/judgement/, core/training/
    2  core/detectors/, core/store/
    1  core/audio/
    0  core/__init__.py, core/jsonsafe.py   shared, import nothing of the project

Every import counts: module level, inside functions, and under ``if TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "ui": 6,
    "pages": 6,
    "streamlit_app": 6,
    "core.cli": 6,
    "core.__main__": 6,
    "core.corpus": 5,
    "core.export": 5,
    "core.engine": 4,
    "core.explain": 3,
    "core.judgement": 3,
    "core.training": 3,
    "core.detectors": 2,
    "core.store": 2,
    "core.audio": 1,
    "core.jsonsafe": 0,
    "core": 0,
}
SOURCES = ("core", "ui", "pages", "streamlit_app.py")


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.imported}"


def layer_of(module: str) -> tuple[str, int] | None:
    """the longest LAYERS prefix of a dotted module name, with its layer number"""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    return None


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules(root: Path) -> dict[str, Path]:
    out = {}
    for src in SOURCES:
        base = root / src
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for p in files:
            if "__pycache__" not in p.parts:
                out[module_name(p, root)] = p
    return out


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, importer: str, known: set[str]) -> list[tuple[str, int]]:
    """(imported project module, line) for every import in the file, at any depth"""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node, importer, is_package)
            # "from pkg import sub" imports the submodule when there is one
            names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for name in names:
            # the deepest project module the dotted name starts with
            parts = name.split(".")
            for n in range(len(parts), 0, -1):
                cand = ".".join(parts[:n])
                if cand in known:
                    if cand != importer:
                        found.append((cand, node.lineno))
                    break
    return found


def edges(root: Path) -> list[Edge]:
    mods = project_modules(root)
    known = set(mods)
    out = []
    for name, path in mods.items():
        for imported, line in imports_of(path, name, known):
            out.append(Edge(name, imported, f"{path.relative_to(root)}:{line}"))
    return out


def upward_imports(root: Path) -> list[str]:
    """every import from a lower layer into a higher one, named, with its layer numbers"""
    bad = []
    for e in edges(root):
        src, dst = layer_of(e.importer), layer_of(e.imported)
        if src is None:
            bad.append(f"{e}: {e.importer} is in no layer (add it to LAYERS)")
        elif dst is not None and dst[1] > src[1]:
            bad.append(f"{e} ({dst[0]}, layer {dst[1]}, is above {src[0]}, layer {src[1]})")
    return bad


def import_cycles(root: Path) -> list[list[str]]:
    """strongly connected groups of more than one module (Tarjan), each sorted"""
    graph: dict[str, set[str]] = {}
    for e in edges(root):
        # a package importing its own submodules is how packages work, not a cycle
        if e.imported.startswith(e.importer + "."):
            continue
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_every_import_points_down():
    bad = upward_imports(ROOT)
    assert not bad, "imports against the layers (README, Architecture):\n" + "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles(ROOT)
    assert not cycles, "modules that import each other:\n" + "\n".join(map(str, cycles))


def test_core_root_holds_only_packages_and_the_shared_module():
    loose = sorted(p.name for p in (ROOT / "core").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "jsonsafe.py"]
    for pkg in (ROOT / "core").iterdir():
        if pkg.is_dir() and pkg.name != "__pycache__":
            assert f"core.{pkg.name}" in LAYERS, f"core/{pkg.name}/ is in no layer"
            doc = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text()))
            assert doc and "import" in doc, f"core/{pkg.name}/__init__.py must say what it may import"


def _scratch(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for src in SOURCES:
        if not (tmp_path / src).exists() and not src.endswith(".py"):
            (tmp_path / src).mkdir()
    return tmp_path


def test_a_deliberately_wrong_import_is_caught_and_named(tmp_path):
    root = _scratch(tmp_path, {
        "core/__init__.py": "",
        "core/audio/__init__.py": "",
        "core/audio/decode.py": "def f():\n    from core.engine.service import Engine\n",
        "core/engine/__init__.py": "",
        "core/engine/service.py": "from core.audio.decode import f\nclass Engine: ...\n",
    })
    bad = upward_imports(root)
    assert len(bad) == 1
    assert bad[0].startswith("core/audio/decode.py:2: core.audio.decode imports core.engine.service")
    assert "core.engine, layer 4, is above core.audio, layer 1" in bad[0]
    # the same two modules import each other: a cycle
    assert import_cycles(root) == [["core.audio.decode", "core.engine.service"]]


def test_relative_and_type_checking_imports_count(tmp_path):
    root = _scratch(tmp_path, {
        "core/__init__.py": "",
        "core/store/__init__.py": "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..judgement import fusion\n",
        "core/judgement/__init__.py": "",
        "core/judgement/fusion.py": "from ..store import x\n",
    })
    bad = upward_imports(root)
    assert [b.split(" (")[0] for b in bad] == [
        "core/store/__init__.py:3: core.store imports core.judgement.fusion"
    ]


def test_downward_and_sideways_imports_pass(tmp_path):
    root = _scratch(tmp_path, {
        "core/__init__.py": "",
        "core/jsonsafe.py": "",
        "core/judgement/__init__.py": "from core import jsonsafe\n",
        "core/training/__init__.py": "from core.judgement import metrics\n",
        "core/judgement/metrics.py": "",
        "ui/page.py": "import core.training\n",
    })
    assert upward_imports(root) == []
    assert import_cycles(root) == []


@pytest.mark.parametrize("module,layer", [
    ("core.audio.decode", 1), ("core.store.keys", 2), ("core.engine", 4), ("ui.views.analyze", 6),
    ("core.jsonsafe", 0), ("core", 0),
])
def test_layer_of(module, layer):
    assert layer_of(module)[1] == layer
