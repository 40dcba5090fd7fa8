"""Score charts: P(spoof) per window, deletion curves, agreement between explanations,
reliability.

None of these draws evidence, so models get the neutral categorical palette and agreement
its own purple-green scale (core.export.colours); only the timeline's faint background
borrows the verdict colours to say which side of the threshold a window is on.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.detectors.detect import THRESHOLD, WindowScore
from core.export.charts.evidence import sized
from core.export.colours import (
    AGREE_OPPOSITE,
    AGREE_SAME,
    BONAFIDE_BLUE,
    NEUTRAL,
    SPOOF_RED,
    model_colours,
)


def model_channel(field: str, names, *, title: str | None = "model") -> alt.Color:
    """
    the colour channel of a chart with one line per model: the neutral palette in the
    order given, and a legend stacked below the plot with solid swatches (it never
    runs off a narrow column)
    """
    colours = model_colours(list(names))
    return alt.Color(
        field,
        title=title,
        scale=alt.Scale(domain=list(colours), range=list(colours.values())),
        legend=alt.Legend(
            orient="bottom", direction="vertical", labelLimit=400, symbolType="circle",
            symbolSize=120, symbolOpacity=1, symbolStrokeWidth=3,
        ),
    )


def timeline_chart(
    windows: Mapping[str, Sequence[WindowScore]], *, threshold: float = THRESHOLD, height: int = 220
) -> alt.LayerChart:
    """
    P(spoof) of every scored window, one line per model.

    windows : {model display name: Verdict.windows}
    Each window is a horizontal stroke from its start to its end at its P(spoof); the
    background is tinted red above the decision threshold and blue below it.
    """
    rows = [
        {"model": model, "window": i, "start": w.start, "end": w.end,
         "mid": (w.start + w.end) / 2, "p_spoof": w.p_spoof}
        for model, wins in windows.items()
        for i, w in enumerate(wins)
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=["model", "window", "start", "end", "mid", "p_spoof"])
    t_max = float(df["end"].max()) if len(df) else 1.0
    # the verdict zones in fixed colours (no colour channel, so no legend entry)
    bg = [
        alt.Chart(pd.DataFrame({"y0": [y0], "y1": [y1]}))
        .mark_rect(opacity=0.07, color=colour)
        .encode(y="y0:Q", y2="y1:Q", x=alt.value(0), x2=alt.value("width"))
        for y0, y1, colour in ((threshold, 1.0, SPOOF_RED), (0.0, threshold, BONAFIDE_BLUE))
    ]
    rule = (
        alt.Chart(pd.DataFrame({"y": [threshold]}))
        .mark_rule(strokeDash=[4, 4], color="#555555")
        .encode(y="y:Q")
    )
    x = alt.X(
        "start:Q",
        title="time (s)",
        scale=alt.Scale(domain=[0, t_max], nice=False),
        axis=alt.Axis(tickCount=10),
    )
    y = alt.Y("p_spoof:Q", title="P(spoof)", scale=alt.Scale(domain=[0, 1]))
    tooltip = [
        alt.Tooltip("model:N"),
        alt.Tooltip("window:Q", title="window #"),
        alt.Tooltip("start:Q", title="from (s)", format=".2f"),
        alt.Tooltip("end:Q", title="to (s)", format=".2f"),
        alt.Tooltip("p_spoof:Q", title="P(spoof)", format=".3f"),
    ]
    colour = model_channel("model:N", windows)
    strokes = (
        alt.Chart(df)
        .mark_rule(strokeWidth=4, opacity=0.8)
        .encode(x=x, x2="end:Q", y=y, color=colour, tooltip=tooltip)
    )
    line = (
        alt.Chart(df)
        .mark_line(point=True, strokeWidth=1.5)
        .encode(x=alt.X("mid:Q"), y=y, color=colour, tooltip=tooltip)
    )
    return sized(alt.layer(*bg, rule, strokes, line), height)


def deletion_chart(expl, *, height: int = 180) -> alt.Chart:
    """
    Faithfulness: P(target) as features are removed, most important first, against
    the mean of random orders. A faithful explanation falls faster than random.
    """
    rows = []
    for name, curve in (
        ("attribution order", expl.deletion_curve),
        ("random order (mean)", expl.deletion_random),
    ):
        c = np.asarray(curve if curve is not None else [], dtype=np.float64).reshape(-1)
        n = max(len(c) - 1, 1)
        rows += [{"order": name, "removed": i / n, "p": float(v)} for i, v in enumerate(c)]
    df = pd.DataFrame(rows, columns=["order", "removed", "p"])
    chart = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("removed:Q", title="features removed", axis=alt.Axis(format="%", tickCount=5)),
            y=alt.Y("p:Q", title=f"P({expl.target_label})", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "order:N",
                title=None,
                scale=alt.Scale(range=["#222222", "#aaaaaa"]),
                legend=alt.Legend(orient="bottom", direction="vertical"),
            ),
            tooltip=[
                alt.Tooltip("order:N"),
                alt.Tooltip("removed:Q", format=".0%"),
                alt.Tooltip("p:Q", title=f"P({expl.target_label})", format=".3f"),
            ],
        )
    )
    return sized(chart, height)


def agreement_chart(labels: Sequence[str], matrix: np.ndarray, *, height: int = 220) -> alt.LayerChart:
    """
    Spearman rank correlation between attributions, as a labelled heatmap on a diverging
    scale centred at 0: purple for opposite rankings, white for none, green for the same
    (core.export.colours). Agreement is not evidence, so never red or blue.
    """
    m = np.asarray(matrix, dtype=np.float64)
    rows = [
        {"a": labels[i], "b": labels[j], "rho": (None if not math.isfinite(m[i, j]) else m[i, j]),
         "text": "n/a" if not math.isfinite(m[i, j]) else f"{m[i, j]:+.2f}"}
        for i in range(len(labels))
        for j in range(len(labels))
    ]
    df = pd.DataFrame(rows, columns=["a", "b", "rho", "text"])
    enc = dict(
        x=alt.X("a:N", title=None, sort=list(labels), axis=alt.Axis(labelAngle=-30, labelLimit=200)),
        y=alt.Y("b:N", title=None, sort=list(labels), axis=alt.Axis(labelLimit=200)),
    )
    cells = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            **enc,
            color=alt.Color(
                "rho:Q",
                title="Spearman ρ",
                scale=alt.Scale(
                    domain=[-1.0, 0.0, 1.0], range=[AGREE_OPPOSITE, NEUTRAL, AGREE_SAME]
                ),
                legend=alt.Legend(values=[-1, -0.5, 0, 0.5, 1], format="+.1f"),
            ),
            tooltip=[alt.Tooltip("a:N"), alt.Tooltip("b:N"), alt.Tooltip("text:N", title="ρ")],
        )
    )
    text = (
        alt.Chart(df)
        .mark_text(fontSize=13)
        .encode(
            **enc,
            text="text:N",
            # strong colour either way: white ink
            color=alt.condition("abs(datum.rho) > 0.5", alt.value("white"), alt.value("black")),
        )
    )
    return sized(alt.layer(cells, text), height)


def reliability_chart(curves: Mapping[str, dict], *, height: int = 260) -> alt.LayerChart:
    """
    Reliability diagram: per bin, mean predicted P(spoof) against the observed spoof
    share, one line per model, with the diagonal (perfect calibration).

    curves : {name: Reliability.to_json()} (mean_predicted, observed, count per bin)
    """
    rows = [
        {"model": name, "predicted": p, "observed": o, "files": int(n)}
        for name, c in curves.items()
        for p, o, n in zip(c["mean_predicted"], c["observed"], c["count"])
        if n and p is not None and o is not None
    ]
    df = pd.DataFrame(rows, columns=["model", "predicted", "observed", "files"])
    axis = alt.Scale(domain=[0, 1])
    diagonal = (
        alt.Chart(pd.DataFrame({"predicted": [0.0, 1.0], "observed": [0.0, 1.0]}))
        .mark_line(strokeDash=[4, 4], color="#888")
        .encode(x=alt.X("predicted:Q", scale=axis), y=alt.Y("observed:Q", scale=axis))
    )
    lines = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("predicted:Q", scale=axis, title="mean calibrated P(spoof) in bin"),
            y=alt.Y("observed:Q", scale=axis, title="observed share of spoofs"),
            color=model_channel("model:N", curves, title=None),
            tooltip=["model", alt.Tooltip("predicted:Q", format=".2f"),
                     alt.Tooltip("observed:Q", format=".2f"), "files"],
        )  # fmt: skip
    )
    return sized(diagonal + lines, height)
