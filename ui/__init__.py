"""The dashboard's Streamlit layer: the page table here, the rest in submodules.

    ui.gate       access password, page_setup (first call of every page), sidebar
    ui.access     the gate's rules (no streamlit): settings, networks, rate limiter
    ui.engine     the one core.service.Engine per server and cached adapters over it
    ui.links      share URLs and reading the query string
    ui.widgets    drawing blocks shared by pages: verdict cards, badges, exports, ...
    ui.verdict    the combined verdict, input warnings, calibration (Models page)
    ui.views.*    one page body each (render()); pages/*.py only call them

Only ui.engine talks to the engine; the views draw what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    file: str  # script, relative to the entry point
    title: str
    icon: str
    url_path: str  # "" = the root (the default page)


# the app's pages, in menu order; streamlit_app.py routes exactly these. To add a page:
# one script in pages/ that calls ui.gate.page_setup(KEY) then its view's render(),
# one module in ui/views/, and one entry here.
PAGES: dict[str, PageSpec] = {
    "analyze": PageSpec("pages/analyze.py", "Analyze", ":material/graphic_eq:", ""),
    "compare": PageSpec(
        "pages/compare.py", "Compare", ":material/compare_arrows:", "compare"
    ),
    "history": PageSpec("pages/history.py", "History", ":material/history:", "history"),
    "corpus": PageSpec(
        "pages/corpus.py", "Corpus", ":material/library_music:", "corpus"
    ),
    "models": PageSpec(
        "pages/models.py", "Models", ":material/model_training:", "models"
    ),
}
