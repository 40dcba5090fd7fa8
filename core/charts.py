"""Altair chart builders for the dashboard: pure functions of arrays and results.

One diverging colour scale runs through every chart and page: red is evidence that the
audio is spoofed, blue is evidence that it is bona fide, white is neither. An
explanation's values are signed with respect to the class it explains (positive =
evidence for its target), so `spoof_evidence` flips them when the target is bona fide
before anything is drawn.

No streamlit here: pages call these and hand the result to ``st.altair_chart``.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from .audio import SAMPLE_RATE
from .features import CQT_BINS_PER_OCTAVE, CQT_HOP

# the evidence scale (ColorBrewer RdBu end points): shared by charts, cards and report
SPOOF_RED = "#b2182b"
BONAFIDE_BLUE = "#2166ac"
NEUTRAL = "#f7f7f7"
EVIDENCE_LEGEND = "evidence: + spoof / − bona fide"

WAVEFORM_POINTS = 1200  # envelope bins drawn for a waveform: enough for 1 px each
CQT_MAX_FRAMES = 120  # heatmap cells across time; more makes the browser sluggish
CQT_MAX_BINS = 72  # heatmap cells across frequency (432 bins / 6)
DENSE_TIME_CELLS = 160  # a dense waveform attribution is pooled to this many bands
DENSE_TF_CELLS = (36, 80)  # a dense CQT attribution: (frequency, time) cells
TOP_PATCHES = 24  # the bar chart shows at most this many time-frequency patches


# ---------------------------------------------------------------------------- colour


def evidence_scale(limit: float) -> alt.Scale:
    """the one diverging scale, symmetric around 0 over [-limit, limit]"""
    limit = float(limit) if limit and math.isfinite(limit) and limit > 0 else 1.0
    return alt.Scale(
        domain=[-limit, 0.0, limit], range=[BONAFIDE_BLUE, NEUTRAL, SPOOF_RED], clamp=True
    )


def evidence_colour(x: float) -> str:
    """
    hex colour of x in [-1, 1] on the evidence scale (cards and the HTML report).
    For a probability p of spoof, pass 2 * p - 1.
    """
    x = 0.0 if not math.isfinite(x) else max(-1.0, min(1.0, float(x)))
    end = SPOOF_RED if x >= 0 else BONAFIDE_BLUE
    a, b = _rgb(NEUTRAL), _rgb(end)
    t = abs(x)
    return "#" + "".join(f"{round(ai + (bi - ai) * t):02x}" for ai, bi in zip(a, b))


def evidence_color(field: str, limit: float) -> alt.Color:
    """the colour channel of every evidence chart"""
    return alt.Color(
        field,
        scale=evidence_scale(limit),
        title=EVIDENCE_LEGEND,
        legend=alt.Legend(titleLimit=320, gradientLength=120, format="+.2g"),
    )


def _rgb(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


# ------------------------------------------------------------- explanation geometry


def spoof_sign(expl) -> float:
    """+1 when the explanation's target is spoof, -1 when it is bona fide"""
    return 1.0 if str(expl.target_label) == "spoof" else -1.0


def spoof_evidence(expl) -> np.ndarray:
    """segment values signed so that positive = evidence for spoof, shape = (F,)"""
    return spoof_sign(expl) * np.asarray(expl.values, dtype=np.float64).reshape(-1)


def spoof_dense(expl) -> np.ndarray | None:
    """the dense map signed so that positive = evidence for spoof, or None"""
    if expl.dense is None:
        return None
    return spoof_sign(expl) * np.asarray(expl.dense, dtype=np.float64)


def segments_frame(expl) -> pd.DataFrame:
    """
    One row per interpretable feature: t0, t1 (s, in the file), f0, f1 (Hz, or NaN for
    time segments), evidence (spoof-signed), value (as the method returned it), label.
    """
    bounds = np.asarray(expl.feature_bounds, dtype=np.float64).reshape(-1, _ncols(expl))
    ev = spoof_evidence(expl)
    n = min(len(bounds), len(ev))
    df = pd.DataFrame(
        {
            "segment": np.arange(n),
            "t0": bounds[:n, 0],
            "t1": bounds[:n, 1],
            "f0": bounds[:n, 2] if bounds.shape[1] >= 4 else np.nan,
            "f1": bounds[:n, 3] if bounds.shape[1] >= 4 else np.nan,
            "evidence": ev[:n],
            "value": np.asarray(expl.values, dtype=np.float64).reshape(-1)[:n],
        }
    )
    # a file shorter than the window is tiled up to it: draw only the real audio
    end = float(expl.window_end)
    df = df[df["t0"] < end - 1e-9].copy()
    df["t1"] = df["t1"].clip(upper=end)
    df["label"] = [_segment_label(r) for r in df.itertuples()]
    return df.reset_index(drop=True)


def is_tiled(expl) -> bool:
    """True when the explanation has features past the file's end (a tiled window)"""
    b = np.asarray(expl.feature_bounds, dtype=np.float64).reshape(-1, _ncols(expl))
    return bool(len(b)) and float(b[:, 1].max()) > float(expl.window_end) + 1e-6


def _ncols(expl) -> int:
    b = np.asarray(expl.feature_bounds)
    if b.ndim == 2 and b.shape[1] in (2, 4):
        return b.shape[1]
    return 4 if expl.feature_kind == "time-frequency" else 2


def _segment_label(r) -> str:
    t = f"{r.t0:.2f}-{r.t1:.2f} s"
    if isinstance(r.f0, float) and math.isfinite(r.f0):
        return f"{t} · {_hz(r.f0)}-{_hz(r.f1)}"
    return t


def _hz(f: float) -> str:
    return f"{f / 1000:.1f} kHz" if f >= 1000 else f"{f:.0f} Hz"


def time_bands(expl, *, cells: int = DENSE_TIME_CELLS) -> pd.DataFrame:
    """
    The explanation collapsed onto time: rows t0, t1, evidence. Time segments as they
    are; time-frequency patches summed over frequency; a dense-only map pooled.
    """
    if len(np.asarray(expl.values).reshape(-1)):
        seg = segments_frame(expl)
        return (
            seg.groupby(["t0", "t1"], as_index=False)["evidence"]
            .sum()
            .sort_values("t0")
            .reset_index(drop=True)
        )
    dense = spoof_dense(expl)
    if dense is None:
        return pd.DataFrame({"t0": [], "t1": [], "evidence": []})
    if dense.ndim == 2:  # (bins, frames) of the CQT model: sum over frequency
        line = dense.sum(axis=0)
        step = CQT_HOP / SAMPLE_RATE
    else:
        line = dense.reshape(-1)
        step = 1.0 / SAMPLE_RATE
    t_end = min(expl.window_start + len(line) * step, expl.window_end)
    n = max(1, int(round((t_end - expl.window_start) / step)))
    line = line[:n]
    edges = np.linspace(0, n, min(cells, n) + 1).astype(int)
    vals = [line[a:b].mean() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])]
    return pd.DataFrame(
        {
            "t0": expl.window_start + edges[:-1] * step,
            "t1": expl.window_start + edges[1:] * step,
            "evidence": vals,
        }
    )


def _inline(df: pd.DataFrame) -> alt.InlineData:
    """
    rows as inline JSON: heatmaps exceed Altair's 5000-row guard for DataFrames (every
    encoding here states its type); rounding the geometry and levels keeps the spec
    small, attribution values are kept whole (they can be tiny)
    """
    return alt.InlineData(
        values=df.round({"t0": 4, "t1": 4, "f0": 2, "f1": 2, "db": 2}).to_dict("records")
    )


def _limit(values) -> float:
    v = np.abs(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size and v.max() > 0 else 1.0


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
    n = max(len(x), 1)
    edges = np.linspace(0, n, min(points, n) + 1).astype(int)
    lo = [float(x[a:b].min()) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])]
    hi = [float(x[a:b].max()) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])]
    env = pd.DataFrame(
        {"time": offset + edges[:-1] / sample_rate, "low": lo, "high": hi}
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
    if expl is None:
        return alt.layer(wave).properties(height=height, width="container")
    bands = time_bands(expl)
    lim = _limit(bands["evidence"])
    bands = bands.assign(strength=bands["evidence"].abs())
    overlay = (
        alt.Chart(bands)
        .mark_rect()
        .encode(
            x=alt.X("t0:Q"),
            x2="t1:Q",
            y=alt.value(0),
            y2=alt.value(height),
            color=evidence_color("evidence:Q", lim),
            opacity=alt.Opacity(
                "strength:Q", scale=alt.Scale(domain=[0, lim], range=[0.05, 0.8]), legend=None
            ),
            tooltip=[
                alt.Tooltip("t0:Q", title="from (s)", format=".3f"),
                alt.Tooltip("t1:Q", title="to (s)", format=".3f"),
                alt.Tooltip("evidence:Q", title="evidence for spoof", format="+.4f"),
            ],
        )
    )
    return alt.layer(overlay, wave).properties(height=height, width="container")


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
    Pool a (bins, frames) CQT in dB into at most max_bins x max_frames cells:
    rows t0, t1 (s), f0, f1 (Hz, bin edges half a bin either side), db.
    """
    spec = np.asarray(cqt_db, dtype=np.float64)
    n_bins, n_frames = spec.shape
    fe = _bin_edges(np.asarray(freqs, dtype=np.float64))
    b_edges = np.linspace(0, n_bins, min(max_bins, n_bins) + 1).astype(int)
    t_edges = np.linspace(0, n_frames, min(max_frames, n_frames) + 1).astype(int)
    rows = []
    for b0, b1 in zip(b_edges[:-1], b_edges[1:]):
        band = spec[b0:b1]
        for j0, j1 in zip(t_edges[:-1], t_edges[1:]):
            rows.append(
                (
                    offset + (j0 - 0.5) * hop / SAMPLE_RATE,
                    offset + (j1 - 0.5) * hop / SAMPLE_RATE,
                    fe[b0],
                    fe[b1],
                    float(band[:, j0:j1].mean()),
                )
            )
    df = pd.DataFrame(rows, columns=["t0", "t1", "f0", "f1", "db"])
    df["t0"] = df["t0"].clip(lower=offset)
    return df


def _bin_edges(freqs: np.ndarray) -> np.ndarray:
    """n + 1 geometric edges around n log-spaced centre frequencies"""
    half = 2.0 ** (0.5 / CQT_BINS_PER_OCTAVE)
    return np.concatenate([freqs / half, freqs[-1:] * half])


def cqt_overlay_frame(expl, freqs: np.ndarray, *, hop: int = CQT_HOP) -> pd.DataFrame:
    """
    The explanation as time-frequency rectangles: patches as they are, time segments
    spanning every frequency, a dense (bins, frames) map pooled to DENSE_TF_CELLS.
    Rows t0, t1, f0, f1, evidence.
    """
    fe = _bin_edges(np.asarray(freqs, dtype=np.float64))
    fmin, fmax = float(fe[0]), float(fe[-1])
    if len(np.asarray(expl.values).reshape(-1)):
        seg = segments_frame(expl)
        if seg["f0"].isna().all():
            seg = seg.assign(f0=fmin, f1=fmax)
        seg["f0"] = seg["f0"].clip(lower=fmin)
        seg["f1"] = seg["f1"].clip(upper=fmax)
        return seg[["t0", "t1", "f0", "f1", "evidence"]]
    dense = spoof_dense(expl)
    if dense is None:
        return pd.DataFrame(columns=["t0", "t1", "f0", "f1", "evidence"])
    if dense.ndim == 1:
        bands = time_bands(expl)
        return bands.assign(f0=fmin, f1=fmax)[["t0", "t1", "f0", "f1", "evidence"]]
    nb, nf = dense.shape
    n_t = min(nf, round((expl.window_end - expl.window_start) * SAMPLE_RATE / hop) + 1)
    dense = dense[:, : max(n_t, 1)]
    nb, nf = dense.shape
    b_edges = np.linspace(0, nb, min(DENSE_TF_CELLS[0], nb) + 1).astype(int)
    t_edges = np.linspace(0, nf, min(DENSE_TF_CELLS[1], nf) + 1).astype(int)
    fe = fe if len(fe) == nb + 1 else np.geomspace(fmin, fmax, nb + 1)
    rows = [
        (
            max(expl.window_start, expl.window_start + (j0 - 0.5) * hop / SAMPLE_RATE),
            expl.window_start + (j1 - 0.5) * hop / SAMPLE_RATE,
            fe[b0],
            fe[b1],
            float(dense[b0:b1, j0:j1].mean()),
        )
        for b0, b1 in zip(b_edges[:-1], b_edges[1:])
        for j0, j1 in zip(t_edges[:-1], t_edges[1:])
    ]
    return pd.DataFrame(rows, columns=["t0", "t1", "f0", "f1", "evidence"])


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
                "db:Q", scale=alt.Scale(scheme="greys"), title="level (dB)"
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
        return alt.layer(base).properties(height=height, width="container")
    ov = cqt_overlay_frame(expl, freqs)
    lim = _limit(ov["evidence"])
    ov = ov.assign(strength=ov["evidence"].abs())
    overlay = (
        alt.Chart(_inline(ov))
        .mark_rect(stroke=None)
        .encode(
            x=x,
            x2="t1:Q",
            y=y,
            y2="f1:Q",
            color=evidence_color("evidence:Q", lim),
            opacity=alt.Opacity(
                "strength:Q", scale=alt.Scale(domain=[0, lim], range=[0.0, 0.75]), legend=None
            ),
            tooltip=[
                alt.Tooltip("t0:Q", title="from (s)", format=".2f"),
                alt.Tooltip("t1:Q", title="to (s)", format=".2f"),
                alt.Tooltip("f0:Q", title="from (Hz)", format=".0f"),
                alt.Tooltip("f1:Q", title="to (Hz)", format=".0f"),
                alt.Tooltip("evidence:Q", title="evidence for spoof", format="+.4f"),
            ],
        )
    )
    return (
        alt.layer(base, overlay)
        .resolve_scale(color="independent", opacity="independent")
        .properties(height=height, width="container")
    )


def segment_chart(
    expl, *, top: int = TOP_PATCHES, height: int = 220, compact: bool = False
) -> alt.Chart:
    """
    Bar per interpretable feature, on the evidence scale. Time segments in time order;
    time-frequency patches: the ``top`` strongest, strongest first. ``compact``: no
    legend, labels or titles, for small multiples (the tooltips keep every value).
    """
    seg = segments_frame(expl)
    if seg.empty:
        seg = time_bands(expl).assign(f0=np.nan, f1=np.nan)
        seg["label"] = [f"{a:.2f}-{b:.2f} s" for a, b in zip(seg.t0, seg.t1)]
    patches = not seg["f0"].isna().all()
    if patches:
        seg = seg.reindex(seg["evidence"].abs().sort_values(ascending=False).index)
        seg = seg.head(top)
    order = list(seg["label"])
    lim = _limit(seg["evidence"])
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
    x_title = "time-frequency patch" if patches else "time segment"
    colour = evidence_color("evidence:Q", lim)
    if compact:
        colour = alt.Color("evidence:Q", scale=evidence_scale(lim), legend=None)
    return (
        alt.Chart(seg)
        .mark_bar()
        .encode(
            x=alt.X(
                "label:N",
                sort=order,
                title=(x_title + " →") if compact else x_title,
                axis=alt.Axis(labels=False, ticks=False) if compact
                else alt.Axis(labelAngle=-45, labelLimit=160),
            ),
            y=alt.Y(
                "evidence:Q",
                title=None if compact else "evidence for spoof (+) / bona fide (-)",
                axis=alt.Axis(format="+.2g", tickCount=4) if compact else alt.Axis(),
            ),
            color=colour,
            tooltip=tooltip,
        )
        .properties(height=height, width="container")
    )


def timeline_chart(
    windows: Mapping[str, Sequence], *, threshold: float = 0.5, height: int = 220
) -> alt.LayerChart:
    """
    P(spoof) of every scored window, one line per model.

    windows : {model display name: [objects or dicts with start, end, p_spoof]}
    Each window is a horizontal stroke from its start to its end at its P(spoof); the
    background is tinted red above the decision threshold and blue below it.
    """
    rows = []
    for model, wins in windows.items():
        for i, w in enumerate(wins):
            get = w.get if isinstance(w, dict) else lambda k, w=w: getattr(w, k)
            start, end, p = float(get("start")), float(get("end")), float(get("p_spoof"))
            rows.append(
                {"model": model, "window": i, "start": start, "end": end,
                 "mid": (start + end) / 2, "p_spoof": p}
            )
    df = pd.DataFrame(rows, columns=["model", "window", "start", "end", "mid", "p_spoof"])
    t_max = float(df["end"].max()) if len(df) else 1.0
    zones = pd.DataFrame(
        {"y0": [threshold, 0.0], "y1": [1.0, threshold],
         "zone": ["spoof", "bona fide"], "colour": [SPOOF_RED, BONAFIDE_BLUE]}
    )
    bg = (
        alt.Chart(zones)
        .mark_rect(opacity=0.07)
        .encode(
            y="y0:Q", y2="y1:Q", x=alt.value(0), x2=alt.value("width"),
            color=alt.Color("colour:N", scale=None),
        )
    )
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
    colour = alt.Color(
        "model:N",
        title="model",
        legend=alt.Legend(
            orient="bottom", labelLimit=400, symbolType="stroke", symbolStrokeWidth=5,
            symbolSize=300, symbolOpacity=1,
        ),
    )
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
    return alt.layer(bg, rule, strokes, line).properties(height=height, width="container")


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
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("removed:Q", title="fraction of features removed", axis=alt.Axis(format="%")),
            y=alt.Y("p:Q", title=f"P({expl.target_label})", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "order:N",
                title=None,
                scale=alt.Scale(range=["#222222", "#aaaaaa"]),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=[
                alt.Tooltip("order:N"),
                alt.Tooltip("removed:Q", format=".0%"),
                alt.Tooltip("p:Q", title=f"P({expl.target_label})", format=".3f"),
            ],
        )
        .properties(height=height, width="container")
    )


def agreement_chart(labels: Sequence[str], matrix: np.ndarray, *, height: int = 220) -> alt.LayerChart:
    """
    Spearman rank correlation between attributions, as a labelled heatmap. Agreement is
    not evidence, so it is drawn in a sequential green, never on the evidence scale.
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
        x=alt.X("a:N", title=None, sort=list(labels), axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("b:N", title=None, sort=list(labels)),
    )
    cells = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            **enc,
            color=alt.Color(
                "rho:Q",
                title="Spearman ρ",
                scale=alt.Scale(scheme="greens", domain=[-1, 1]),
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
            color=alt.condition("datum.rho > 0.5", alt.value("white"), alt.value("black")),
        )
    )
    return alt.layer(cells, text).properties(height=height, width="container")
