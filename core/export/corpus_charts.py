"""Altair charts of a corpus summary (core.corpus.summary): per-attack attribution maps.

The colour channel is the dashboard's one diverging evidence scale (core.export.charts): red is
evidence for spoof, blue for bona fide, whatever class each explanation targeted.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.corpus.summary import CorpusSummary
from core.export.charts import evidence_channel, evidence_limit, sized


def time_profile_frame(summary: CorpusSummary, model: str, method: str) -> pd.DataFrame:
    """rows system, files, from, to (relative time in the window, 0..1), evidence"""
    edges = np.linspace(0.0, 1.0, summary.time_bins + 1)
    rows = [
        {"system": p.system, "files": p.n_files, "from": edges[i], "to": edges[i + 1],
         "evidence": float(v)}
        for p in summary.profiles
        if p.model == model and p.method == method
        for i, v in enumerate(p.time)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["system", "files", "from", "to", "evidence"])


def frequency_profile_frame(summary: CorpusSummary, model: str, method: str) -> pd.DataFrame:
    """rows system, files, f_lo, f_hi (Hz), evidence; time-frequency explanations only"""
    edges = summary.freq_edges_hz
    rows = [
        {"system": p.system, "files": p.n_files, "f_lo": edges[i], "f_hi": edges[i + 1],
         "evidence": float(v)}
        for p in summary.profiles
        if p.model == model and p.method == method and p.frequency is not None
        for i, v in enumerate(p.frequency)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["system", "files", "f_lo", "f_hi", "evidence"])


def _system_heatmap(
    df: pd.DataFrame, x: alt.X, x2: str, span: list[alt.Tooltip], height_per_row: int
) -> alt.Chart:
    """
    one row per attack system, cells from x to x2 on the evidence scale; a batch with
    one or two systems still gets a readable plot (sized() keeps it >= MIN_PLOT_PX)
    """
    n = max(df["system"].nunique(), 1)
    chart = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=x,
            x2=x2,
            y=alt.Y("system:N", title="attack system (- = bona fide)"),
            color=evidence_channel("evidence:Q", evidence_limit(df["evidence"])),
            tooltip=[alt.Tooltip("system:N"), alt.Tooltip("files:Q"), *span,
                     alt.Tooltip("evidence:Q", format="+.3f", title="mean evidence")],
        )
    )
    return sized(chart, height_per_row * n)


def time_heatmap(df: pd.DataFrame, *, height_per_row: int = 26) -> alt.Chart:
    """rows = attack systems, x = relative time in the explained window"""
    x = alt.X("from:Q", title="relative time in the explained window",
              scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    span = [alt.Tooltip("from:Q", format=".0%", title="from"),
            alt.Tooltip("to:Q", format=".0%", title="to")]
    return _system_heatmap(df, x, "to:Q", span, height_per_row)


def frequency_heatmap(df: pd.DataFrame, *, height_per_row: int = 26) -> alt.Chart:
    """rows = attack systems, x = frequency (Hz, log axis)"""
    x = alt.X("f_lo:Q", title="frequency (Hz)", scale=alt.Scale(type="log"))
    span = [alt.Tooltip("f_lo:Q", format=".0f", title="from Hz"),
            alt.Tooltip("f_hi:Q", format=".0f", title="to Hz")]
    return _system_heatmap(df, x, "f_hi:Q", span, height_per_row)
