"""Corpus: a batch run over a labelled protocol: per-attack EER and attribution maps,
and a way into every file's analysis (ui.views.corpus)."""

from ui.gate import page_setup
from ui.views import corpus

page_setup("corpus")
corpus.render()
