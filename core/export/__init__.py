"""What an analyst takes away or looks at: reports, SVG, charts, the colour rule (layer 5).

    report, report_svg   JSON / HTML export of an analysis (no Altair)
    charts/              Altair chart builders for the pages
    corpus_charts        the Corpus page's charts
    colours              the one diverging evidence scale (red spoof, blue bona fide)

May import: core.engine and everything below, and core.corpus; never core.cli or the ui.
"""
