"""The dashboard's Streamlit layer: the page table here, the rest in submodules.

    ui.gate       access password, page_setup (first call of every page), sidebar
    ui.access     the gate's rules (no streamlit): settings, networks, rate limiter
    ui.engine     the one core.engine.service.Engine per server and cached adapters over it
    ui.links      share URLs and reading the query string
    ui.widgets    drawing blocks shared by pages: verdict cards, badges, exports, ...
    ui.verdict    the combined verdict, input warnings, calibration (Models page)
    ui.views.*    one page body each (render()); pages/*.py only call them

Only ui.engine talks to the engine; the views draw what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

# the browser tab's icon: an emoji is drawn by the browser itself, while a :material/...:
# favicon would be fetched from fonts.gstatic.com (unreachable on an offline LAN)
FAVICON = "🎙️"


@dataclass(frozen=True)
class PageSpec:
    file: str  # script, relative to the entry point
    title: str
    icon: str
    url_path: str  # "" = the root (the default page)
    heading: str = ""  # the page's title, drawn by ui.gate.page_setup before heavy imports
    intro: str = ""  # one paragraph under it


# the app's pages, in menu order; streamlit_app.py routes exactly these. To add a page:
# one script in pages/ that calls ui.gate.page_setup(KEY), then imports its view and
# calls its render(),
# one module in ui/views/, and one entry here.
PAGES: dict[str, PageSpec] = {
    "analyze": PageSpec(
        "pages/analyze.py", "Analyze", ":material/graphic_eq:", "",
        heading="Analyze a recording",
        intro="Upload speech to check whether it is synthetic. Every installed detector "
        "scores it window by window; then pick a model and an explanation method to see "
        "which parts of the audio drove the verdict.",
    ),
    "compare": PageSpec(
        "pages/compare.py", "Compare", ":material/compare_arrows:", "compare",
        heading="Compare models and methods",
        intro="One recording, every installed model and every explanation method side by "
        "side. If the methods point at the same moments, the explanation is more "
        "trustworthy; if the models agree, the verdict is.",
    ),
    "history": PageSpec(
        "pages/history.py", "History", ":material/history:", "history",
        heading="History",
        intro="Every file analysed on this server, newest first. Opening one restores its "
        "view from the store at once: no model runs again.",
    ),
    "corpus": PageSpec(
        "pages/corpus.py", "Corpus", ":material/library_music:", "corpus",
        heading="Corpus",
        intro="Screen a labelled collection: run `python -m core batch --protocol P "
        "--audio-dir D [--explain shap,gradcam,lime]` (locally or on a Ray cluster), then "
        "read here how well each model separates each attack from bona fide speech and "
        "**where** its evidence sits on average for that attack.",
    ),
    "models": PageSpec(
        "pages/models.py", "Models", ":material/model_training:", "models",
        heading="Models",
        intro="Every detector the dashboard knows. A model scores uploads only when its "
        "weights file is installed and matches the registered SHA-256; nothing else is "
        "ever loaded.",
    ),
}  # fmt: skip
