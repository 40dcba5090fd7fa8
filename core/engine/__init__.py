"""The one Engine every caller uses: decode, score, explain, store, in fair turns (layer 4).

    service      Engine: verdicts and explanations, computed once and stored
    explaining   the explanation half of the Engine
    keys         which parameters make a verdict or an explanation (and "current")
    results      typed results (Analysis, ExplainResult)
    cards        model cards for the Models page and ``python -m core models``
    trace        per-phase timings of new analyses ($DEEPFAKE_TRACE)

May import: core.explain, core.judgement, core.training, core.detectors, core.store,
core.audio, core.jsonsafe. Never core.corpus, core.export, core.cli or the ui.
"""
