"""Evidence charts: an explanation over the waveform, over the CQT, and per feature.

The colour channel of every one is the evidence scale (``evidence_channel``): red is
evidence for spoof, blue for bona fide, white neither (core.export.colours), symmetric around
zero. Where the evidence lies (signs, spans, pooling, ranking) comes from
core.explain.geometry; this module turns it into data frames and marks.
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from core.audio.decode import SAMPLE_RATE
from core.audio.features import CQT_HOP
from core.explain.geometry import (
    Cells,
    cqt_bin_edges,
    features,
    grid_cells,
    pool_edges,
    strongest,
    time_bands,
    time_frequency_cells,
)
from core.export.colours import BONAFIDE_BLUE, NEUTRAL, SPOOF_RED

EVIDENCE_LEGEND = "evidence: + spoof / − bona fide"

WAVEFORM_POINTS = 1200  # envelope bins drawn for a waveform: enough for 1 px each
CQT_MAX_FRAMES = 120  # heatmap cells across time; more makes the browser sluggish
CQT_MAX_BINS = 72  # heatmap cells across frequency (432 bins / 6)
DENSE_TIME_CELLS = 160  # a dense waveform attribution is pooled to this many bands
DENSE_TF_CELLS = (36, 80)  # a dense CQT attribution: (frequency, time) cells
TOP_PATCHES = 24  # the bar chart shows at most this many time-frequency patches
PATCH_ROW_PX = 20  # height of one patch's row (patches are drawn as horizontal bars)
MIN_PLOT_PX = 120  # no chart's plot area is drawn shorter than this


# ---------------------------------------------------------------------------- size


def sized(chart, height: int):
    """
    The chart at ``height`` px of plot area and the width of its container. Streamlit
    otherwise sizes the whole chart (axes, titles, legends) to the height, so long
    labels or a legend squeeze the plot to a few pixels (autosize "fit").
    """
    return chart.properties(
        height=max(int(height), MIN_PLOT_PX),
        width="container",
        autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
    )


# ---------------------------------------------------------------------------- colour


def evidence_scale(limit: float) -> alt.Scale:
    """the one diverging scale, symmetric around 0 over [-limit, limit]"""
    limit = float(limit) if limit and math.isfinite(limit) and limit > 0 else 1.0
    return alt.Scale(
        domain=[-limit, 0.0, limit], range=[BONAFIDE_BLUE, NEUTRAL, SPOOF_RED], clamp=True
    )


LEGEND_GRADIENT_PX = 160  # a horizontal gradient under the plot


def evidence_channel(field: str, limit: float, *, legend: bool = True) -> alt.Color:
    """
    the colour channel of every evidence chart (``legend=False`` for small multiples);
    its legend lies under the plot, so a narrow column keeps its width for the plot
    """
    return alt.Color(
        field,
        scale=evidence_scale(limit),
        title=EVIDENCE_LEGEND,
        legend=(
            alt.Legend(orient="bottom", direction="horizontal", titleLimit=320,
                       gradientLength=LEGEND_GRADIENT_PX, format="+.2g")  # fmt: skip
            if legend else None
        ),
    )


def evidence_limit(values) -> float:
    """largest finite |value|, the half-width of the scale; 1.0 when there is none"""
    v = np.abs(np.asarray(list(values), dtype=np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size and v.max() > 0 else 1.0


# -------------------------------------------------------------------- chart data


def cells_frame(cells: Cells, value: str = "evidence") -> pd.DataFrame:
    """geometry cells as rows t0, t1, f0, f1 and the value column ``value``"""
    return pd.DataFrame(
        {"t0": cells.t0, "t1": cells.t1, "f0": cells.f0, "f1": cells.f1, value: cells.value}
    )


def cqt_frame(
    cqt_db: np.ndarray,
    freqs: np.ndarray,
    *,
    offset: float = 0.0,
    hop: int = CQT_HOP,
    max_frames: int = CQT_MAX_FRAMES,
    max_bins: int = CQT_MAX_BINS,
) -> pd.DataFrame:
    """
    A (bins, frames) CQT in dB pooled into at most max_bins x max_frames cells:
    rows t0, t1 (s), f0, f1 (Hz, bin edges half a bin either side), db.
    """
    cells = grid_cells(
        cqt_db, cqt_bin_edges(freqs), start=offset, hop=hop, max_rows=max_bins,
        max_cols=max_frames,
    )  # fmt: skip
    return cells_frame(cells, "db")


def _inline(df: pd.DataFrame) -> alt.InlineData:
    """
    rows as inline JSON: heatmaps exceed Altair's 5000-row guard for DataFrames (every
    encoding here states its type); rounding the geometry and levels keeps the spec
    small, attribution values are kept whole (they can be tiny)
    """
    return alt.InlineData(
        values=df.round({"t0": 4, "t1": 4, "f0": 2, "f1": 2, "db": 2}).to_dict("records")
    )


def _evidence_rects(
    df: pd.DataFrame,
    *,
    opacity: tuple[float, float],
    tooltip: list[alt.Tooltip],
    inline: bool = False,
    **position,
) -> alt.Chart:
    """
    rectangles of df (t0, t1, ... and evidence) on the evidence scale, the more opaque
    the stronger their evidence (opacity: at 0 and at the largest |evidence|)
    """
    lim = evidence_limit(df["evidence"])
    df = df.assign(strength=df["evidence"].abs())
    return (
        alt.Chart(_inline(df) if inline else df)
        .mark_rect(stroke=None)
        .encode(
            **position,
            color=evidence_channel("evidence:Q", lim),
            opacity=alt.Opacity(
                "strength:Q", scale=alt.Scale(domain=[0, lim], range=list(opacity)), legend=None
            ),
            tooltip=[
                *tooltip,
                alt.Tooltip("evidence:Q", title="evidence for spoof", format="+.4f"),
            ],
        )
    )


# ------------------------------------------------------------------------- charts


def waveform_chart(
    samples: np.ndarray,
    *,
    offset: float = 0.0,
    expl=None,
    sample_rate: int = SAMPLE_RATE,
    points: int = WAVEFORM_POINTS,
    height: int = 200,
) -> alt.LayerChart:
    """
    Min/max envelope of ``samples`` (which start at ``offset`` seconds in the file),
    with the explanation's evidence over time drawn behind it on the evidence scale.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if not len(x):
        x = np.zeros(1, np.float32)
    edges = pool_edges(len(x), points)
    env = pd.DataFrame(
        {
            "time": offset + edges[:-1] / sample_rate,
            "low": np.minimum.reduceat(x, edges[:-1]).astype(np.float64),
            "high": np.maximum.reduceat(x, edges[:-1]).astype(np.float64),
        }
    )
    wave = (
        alt.Chart(env)
        .mark_area(color="#444444", opacity=0.85, interpolate="step-after")
        .encode(
            x=alt.X("time:Q", title="time (s)", scale=alt.Scale(nice=False),
                    axis=alt.Axis(tickCount=10)),
            y=alt.Y("low:Q", title="amplitude", scale=alt.Scale(domain=[-1, 1])),
            y2="high:Q",
            tooltip=[
                alt.Tooltip("time:Q", title="time (s)", format=".3f"),
                alt.Tooltip("high:Q", title="peak", format=".3f"),
            ],
        )
    )
    height = max(int(height), MIN_PLOT_PX)
    if expl is None:
        return sized(alt.layer(wave), height)
    bands = cells_frame(time_bands(expl, cells=DENSE_TIME_CELLS)).drop(columns=["f0", "f1"])
    overlay = _evidence_rects(
        bands,
        opacity=(0.05, 0.8),
        tooltip=[
            alt.Tooltip("t0:Q", title="from (s)", format=".3f"),
            alt.Tooltip("t1:Q", title="to (s)", format=".3f"),
        ],
        x=alt.X("t0:Q"), x2="t1:Q", y=alt.value(0), y2=alt.value(height),
    )  # fmt: skip
    return sized(alt.layer(overlay, wave), height)


def cqt_chart(
    cqt_db: np.ndarray,
    freqs: np.ndarray,
    *,
    offset: float = 0.0,
    expl=None,
    height: int = 280,
) -> alt.LayerChart:
    """
    CQT log power as a grey heatmap (time x frequency, log-Hz axis) with the
    explanation on the evidence scale over it; opacity follows |evidence|, so cells
    that carry no evidence leave the spectrogram visible.
    """
    base_df = cqt_frame(cqt_db, freqs, offset=offset)
    x = alt.X("t0:Q", title="time (s)", scale=alt.Scale(nice=False), axis=alt.Axis(tickCount=10))
    y = alt.Y(
        "f0:Q",
        title="frequency (Hz)",
        scale=alt.Scale(type="log", nice=False, domain=[base_df.f0.min(), base_df.f1.max()]),
        axis=alt.Axis(values=[20, 50, 100, 200, 500, 1000, 2000, 4000, 8000]),
    )
    base = (
        alt.Chart(_inline(base_df))
        .mark_rect()
        .encode(
            x=x,
            x2="t1:Q",
            y=y,
            y2="f1:Q",
            color=alt.Color(
                "db:Q", scale=alt.Scale(scheme="greys"), title="level (dB)",
                # under the plot, beside the evidence legend
                legend=alt.Legend(orient="bottom", direction="horizontal",
                                  gradientLength=LEGEND_GRADIENT_PX),
            ),
            tooltip=[
                alt.Tooltip("t0:Q", title="time (s)", format=".2f"),
                alt.Tooltip("f0:Q", title="from (Hz)", format=".0f"),
                alt.Tooltip("f1:Q", title="to (Hz)", format=".0f"),
                alt.Tooltip("db:Q", title="level (dB)", format=".1f"),
            ],
        )
    )
    if expl is None:
        return sized(alt.layer(base), height)
    ov = cells_frame(time_frequency_cells(expl, freqs, max_cells=DENSE_TF_CELLS))
    overlay = _evidence_rects(
        ov,
        inline=True,
        opacity=(0.0, 0.75),
        tooltip=[
            alt.Tooltip("t0:Q", title="from (s)", format=".2f"),
            alt.Tooltip("t1:Q", title="to (s)", format=".2f"),
            alt.Tooltip("f0:Q", title="from (Hz)", format=".0f"),
            alt.Tooltip("f1:Q", title="to (Hz)", format=".0f"),
        ],
        x=x, x2="t1:Q", y=y, y2="f1:Q",
    )  # fmt: skip
    layered = alt.layer(base, overlay).resolve_scale(color="independent", opacity="independent")
    return sized(layered, height)


def segment_chart(
    expl, *, top: int = TOP_PATCHES, height: int = 220, compact: bool = False
) -> alt.Chart | alt.LayerChart:
    """
    Bar per interpretable feature, on the evidence scale. Time segments: upright bars
    in time order. Time-frequency patches: the ``top`` strongest as horizontal bars,
    strongest first, their long labels ("1.00-1.40 s, 250 Hz-1.0 kHz") on the y axis,
    one PATCH_ROW_PX row each. ``compact``: upright bars without legend, labels or
    titles, for small multiples (the tooltips keep every value). Where the explanation
    measured a standard error per feature (SHAP), each bar gets an error bar of +/- 2
    standard errors (about a 95 % interval).
    """
    cells = features(expl)
    se = getattr(expl, "uncertainty", None)
    if not len(cells):
        cells, se = time_bands(expl, cells=DENSE_TIME_CELLS), None
    seg = cells_frame(cells)
    seg["label"] = cells.labels()
    with_errors = se is not None and bool(np.any(np.asarray(se) > 0))
    if with_errors:
        seg["se"] = np.asarray(se, dtype=np.float64)[cells.index]
        seg["lo"], seg["hi"] = seg["evidence"] - 2 * seg["se"], seg["evidence"] + 2 * seg["se"]
    patches = cells.has_frequency
    if patches:
        seg = seg.iloc[strongest(seg["evidence"], top)]
    order = list(seg["label"])
    lim = evidence_limit(seg["evidence"])
    tooltip = [
        alt.Tooltip("t0:Q", title="from (s)", format=".3f"),
        alt.Tooltip("t1:Q", title="to (s)", format=".3f"),
    ]
    if patches:
        tooltip += [
            alt.Tooltip("f0:Q", title="from (Hz)", format=".0f"),
            alt.Tooltip("f1:Q", title="to (Hz)", format=".0f"),
        ]
    tooltip.append(alt.Tooltip("evidence:Q", title="evidence for spoof", format="+.4f"))
    if with_errors:
        tooltip.append(alt.Tooltip("se:Q", title="standard error", format=".2g"))
    colour = evidence_channel("evidence:Q", lim, legend=not compact)
    value_title = "evidence for spoof (+) / bona fide (−)"
    if compact:
        feature = alt.X("label:N", sort=order, axis=alt.Axis(labels=False, ticks=False),
                        # short: a title wider than the plot narrows the plot
                        title="patches →" if patches else "time →")
        value = alt.Y("evidence:Q", title=None, axis=alt.Axis(format="+.2g", tickCount=4))
        span = {"y": "lo:Q", "y2": "hi:Q", "x": alt.X("label:N", sort=order)}
    elif patches:
        feature = alt.Y("label:N", sort=order, title="time-frequency patch (strongest first)",
                        # every patch keeps its label: one row is taller than the text
                        axis=alt.Axis(labelLimit=260, labelOverlap=False))
        value = alt.X("evidence:Q", title=value_title)
        span = {"x": "lo:Q", "x2": "hi:Q", "y": alt.Y("label:N", sort=order)}
        height = max(height, PATCH_ROW_PX * len(seg))
    else:
        feature = alt.X("label:N", sort=order, title="time segment",
                        axis=alt.Axis(labelAngle=-45, labelLimit=160))
        value = alt.Y("evidence:Q", title=value_title)
        span = {"y": "lo:Q", "y2": "hi:Q", "x": alt.X("label:N", sort=order)}
    position = {"x": feature, "y": value} if isinstance(feature, alt.X) else {"x": value, "y": feature}
    bars = alt.Chart(seg).mark_bar().encode(**position, color=colour, tooltip=tooltip)
    if not with_errors:
        return sized(bars, height)
    rules = alt.Chart(seg).mark_rule(color="#333").encode(**span, tooltip=tooltip)
    return sized(alt.layer(bars, rules), height)
