"""Corpus: a batch run over a labelled protocol: per-attack EER and attribution maps,
and a way into every file's analysis (ui.views.corpus)."""

from ui.gate import page_setup

page_setup("corpus")
from ui.views import corpus  # noqa: E402 (after the gate: it draws before heavy imports)

corpus.render()
