"""Altair chart builders for the dashboard: pure functions of arrays and results.

    evidence   the evidence scale; an explanation over the waveform, the CQT, per feature
    scores     P(spoof) per window, deletion curves, agreement between explanations

One diverging colour scale runs through every evidence chart and page (core.export.colours):
red is evidence that the audio is spoofed, blue that it is bona fide, white neither. Models
get a neutral categorical palette, agreement a purple-green scale. Every chart's height is
its plot area's, at least MIN_PLOT_PX (``sized``), whatever its labels and legends take.
No streamlit here: pages call these and hand the result to ``st.altair_chart``.
"""

from core.export.charts.evidence import (
    CQT_MAX_BINS,
    CQT_MAX_FRAMES,
    EVIDENCE_LEGEND,
    MIN_PLOT_PX,
    TOP_PATCHES,
    cells_frame,
    cqt_chart,
    cqt_frame,
    evidence_channel,
    evidence_limit,
    evidence_scale,
    segment_chart,
    sized,
    waveform_chart,
)
from core.export.charts.scores import (
    agreement_chart,
    deletion_chart,
    model_channel,
    reliability_chart,
    timeline_chart,
)

__all__ = [
    "CQT_MAX_BINS",
    "CQT_MAX_FRAMES",
    "EVIDENCE_LEGEND",
    "MIN_PLOT_PX",
    "TOP_PATCHES",
    "agreement_chart",
    "cells_frame",
    "cqt_chart",
    "cqt_frame",
    "deletion_chart",
    "evidence_channel",
    "evidence_limit",
    "evidence_scale",
    "model_channel",
    "segment_chart",
    "sized",
    "reliability_chart",
    "timeline_chart",
    "waveform_chart",
]
