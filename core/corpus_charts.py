"""Altair charts of a corpus summary (core.corpus): per-attack attribution maps.

The colour channel is the dashboard's one diverging evidence scale (core.charts): red is
evidence for spoof, blue for bona fide, whatever class each explanation targeted.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .charts import evidence_color
from .corpus import CorpusSummary


def _limit(values) -> float:
    v = np.abs(np.asarray(list(values), dtype=float))
    return float(v.max()) if v.size and v.max() > 0 else 1.0


def time_profile_frame(summary: CorpusSummary, model: str, method: str) -> pd.DataFrame:
    edges = np.linspace(0.0, 1.0, summary.time_bins + 1)
    rows = []
    for p in summary.profiles:
        if p.model == model and p.method == method:
            for i, v in enumerate(p.time):
                rows.append({"system": p.system, "files": p.n_files, "from": edges[i],
                             "to": edges[i + 1], "evidence": float(v)})
    return pd.DataFrame(rows)


def frequency_profile_frame(summary: CorpusSummary, model: str, method: str) -> pd.DataFrame:
    edges = summary.freq_edges_hz
    rows = []
    for p in summary.profiles:
        if p.model == model and p.method == method and p.frequency is not None:
            for i, v in enumerate(p.frequency):
                rows.append({"system": p.system, "files": p.n_files, "f_lo": edges[i],
                             "f_hi": edges[i + 1], "evidence": float(v)})
    return pd.DataFrame(rows)


def time_heatmap(df: pd.DataFrame, *, height_per_row: int = 26) -> alt.Chart:
    """rows = attack systems, x = relative time in the explained window"""
    n = max(df["system"].nunique(), 1)
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("from:Q", title="relative time in the explained window",
                    scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            x2="to:Q",
            y=alt.Y("system:N", title="attack system (- = bona fide)"),
            color=evidence_color("evidence:Q", _limit(df["evidence"])),
            tooltip=[alt.Tooltip("system:N"), alt.Tooltip("files:Q"),
                     alt.Tooltip("from:Q", format=".0%", title="from"),
                     alt.Tooltip("to:Q", format=".0%", title="to"),
                     alt.Tooltip("evidence:Q", format="+.3f", title="mean evidence")],
        )
        .properties(height=height_per_row * n)
    )


def frequency_heatmap(df: pd.DataFrame, *, height_per_row: int = 26) -> alt.Chart:
    """rows = attack systems, x = frequency (Hz, log axis)"""
    n = max(df["system"].nunique(), 1)
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("f_lo:Q", title="frequency (Hz)", scale=alt.Scale(type="log")),
            x2="f_hi:Q",
            y=alt.Y("system:N", title="attack system (- = bona fide)"),
            color=evidence_color("evidence:Q", _limit(df["evidence"])),
            tooltip=[alt.Tooltip("system:N"), alt.Tooltip("files:Q"),
                     alt.Tooltip("f_lo:Q", format=".0f", title="from Hz"),
                     alt.Tooltip("f_hi:Q", format=".0f", title="to Hz"),
                     alt.Tooltip("evidence:Q", format="+.3f", title="mean evidence")],
        )
        .properties(height=height_per_row * n)
    )
