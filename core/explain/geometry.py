"""Where an explanation's evidence lies: pure NumPy geometry for charts, report, agreement.

Every reader of an ``Explanation`` (core.explain.base) that needs to know *where* its
values sit, in seconds of the file and Hz, asks here:

- sign: ``spoof_evidence`` / ``spoof_dense`` turn values signed for the explained class
  into evidence for spoof (positive = spoof, negative = bona fide, on every model);
- features: ``features`` (one row per interpretable feature over the real audio: a file
  shorter than the window is tiled up to it, and the repeat is not drawn), ``is_tiled``,
  ``strongest`` (ranking by strength), ``feature_label``;
- grids: ``pool_edges`` and ``block_means`` (at most N equal cells), ``cqt_bin_edges``
  (CQT bin centre -> edges in Hz), ``frame_spans`` (CQT frames -> seconds);
- collapsing: ``time_bands`` (evidence over time), ``time_frequency_cells`` (over time x
  frequency), ``spread`` / ``time_profile`` (onto any grid, conserving the total).

No Altair, no pandas: charts.py draws what these return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.audio.decode import SAMPLE_RATE
from core.audio.features import CQT_BINS_PER_OCTAVE, CQT_HOP

EPS_SECONDS = 1e-9  # a feature starting this close to the window's end is past it


@dataclass(frozen=True)
class Cells:
    """
    Rectangles of the time x frequency plane with one value each; arrays of one length.
    f0 and f1 are NaN where a cell spans every frequency (a time band).
    """

    t0: np.ndarray  # seconds in the file
    t1: np.ndarray
    f0: np.ndarray  # Hz
    f1: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.t0)

    @property
    def has_frequency(self) -> bool:
        return bool(np.isfinite(self.f0).any())

    def labels(self) -> list[str]:
        """feature_label of every cell"""
        return [feature_label(*r) for r in zip(self.t0, self.t1, self.f0, self.f1)]


@dataclass(frozen=True)
class Features(Cells):
    """``Cells`` of an explanation's features; ``value`` is the spoof evidence."""

    index: np.ndarray  # (n,) int: feature id in the explanation
    raw: np.ndarray  # (n,) the values as the method returned them


def _cells(t0, t1, f0=None, f1=None, value=()) -> Cells:
    t0 = np.asarray(t0, dtype=np.float64).reshape(-1)
    nan = np.full(len(t0), np.nan)
    return Cells(
        t0=t0,
        t1=np.asarray(t1, dtype=np.float64).reshape(-1),
        f0=nan if f0 is None else np.asarray(f0, dtype=np.float64).reshape(-1),
        f1=nan if f1 is None else np.asarray(f1, dtype=np.float64).reshape(-1),
        value=np.asarray(value, dtype=np.float64).reshape(-1),
    )


# ---------------------------------------------------------------------------- sign


def spoof_sign(expl) -> float:
    """+1 when the explanation's target is spoof, -1 when it is bona fide"""
    return 1.0 if str(expl.target_label) == "spoof" else -1.0


def spoof_evidence(expl) -> np.ndarray:
    """feature values signed so that positive = evidence for spoof, shape = (F,)"""
    return spoof_sign(expl) * np.asarray(expl.values, dtype=np.float64).reshape(-1)


def spoof_dense(expl) -> np.ndarray | None:
    """the dense map signed so that positive = evidence for spoof, or None"""
    if expl.dense is None:
        return None
    return spoof_sign(expl) * np.asarray(expl.dense, dtype=np.float64)


# ------------------------------------------------------------------------ features


def feature_bounds(expl) -> np.ndarray:
    """the features' bounds, shape = (F, 2) [t0, t1] s or (F, 4) [t0, t1, f0, f1] s, Hz"""
    b = np.asarray(expl.feature_bounds, dtype=np.float64)
    if b.ndim == 2 and b.shape[1] in (2, 4):
        return b
    cols = 4 if expl.feature_kind == "time-frequency" else 2
    return b.reshape(-1, cols)


def has_features(expl) -> bool:
    """False for a dense-only method (Grad-CAM): no interpretable features, F = 0"""
    return np.asarray(expl.values).size > 0


def is_tiled(expl) -> bool:
    """True when the explanation has features past the file's end (a tiled window)"""
    b = feature_bounds(expl)
    return bool(len(b)) and float(b[:, 1].max()) > float(expl.window_end) + 1e-6


def features(expl) -> Features:
    """
    One row per interpretable feature that starts before the window's end (the real
    audio), t1 capped there; value = spoof evidence, raw = the method's own values.
    """
    b = feature_bounds(expl)
    ev = spoof_evidence(expl)
    raw = np.asarray(expl.values, dtype=np.float64).reshape(-1)
    n = min(len(b), len(ev))
    end = float(expl.window_end)
    keep = np.flatnonzero(b[:n, 0] < end - EPS_SECONDS)
    freq = b.shape[1] >= 4
    return Features(
        t0=b[keep, 0],
        t1=np.minimum(b[keep, 1], end),
        f0=b[keep, 2] if freq else np.full(len(keep), np.nan),
        f1=b[keep, 3] if freq else np.full(len(keep), np.nan),
        value=ev[keep],
        index=keep,
        raw=raw[keep],
    )


def strongest(values, top: int | None = None) -> np.ndarray:
    """indices by decreasing |value| (ties keep position order), at most ``top``"""
    order = np.argsort(-np.abs(np.asarray(values, dtype=np.float64)), kind="stable")
    return order if top is None else order[:top]


def hz_label(f: float) -> str:
    return f"{f / 1000:.1f} kHz" if f >= 1000 else f"{f:.0f} Hz"


def feature_label(t0: float, t1: float, f0: float = math.nan, f1: float = math.nan) -> str:
    """'1.00-1.25 s' for a time segment, '1.00-1.25 s · 100 Hz-1.0 kHz' for a patch"""
    t = f"{t0:.2f}-{t1:.2f} s"
    if math.isfinite(f0):
        return f"{t} · {hz_label(f0)}-{hz_label(f1)}"
    return t


# --------------------------------------------------------------------------- grids


def pool_edges(n: int, cells: int) -> np.ndarray:
    """
    edges of min(cells, n) near-equal cells over n items, shape = (k + 1,), int; with
    k <= n the step is >= 1, so every cell holds at least one item
    """
    return np.linspace(0, n, min(cells, n) + 1).astype(int)


def block_means(
    grid: np.ndarray, row_edges: np.ndarray, col_edges: np.ndarray
) -> np.ndarray:
    """mean of a (rows, cols) grid over each block of the edges -> (len-1, len-1)"""
    g = np.asarray(grid, dtype=np.float64)
    rows = np.add.reduceat(g, row_edges[:-1], axis=0)
    sums = np.add.reduceat(rows, col_edges[:-1], axis=1)
    return sums / np.outer(np.diff(row_edges), np.diff(col_edges))


def cqt_bin_edges(freqs: np.ndarray) -> np.ndarray:
    """n + 1 geometric edges, half a bin either side of n log-spaced centres (Hz)"""
    freqs = np.asarray(freqs, dtype=np.float64)
    half = 2.0 ** (0.5 / CQT_BINS_PER_OCTAVE)
    return np.concatenate([freqs / half, freqs[-1:] * half])


def frame_spans(
    edges: np.ndarray, *, start: float, hop: int = CQT_HOP
) -> tuple[np.ndarray, np.ndarray]:
    """
    seconds spanned by blocks of CQT frames [edges[k], edges[k + 1]): frame j is centred
    on start + j * hop / 16 kHz, so a block reaches half a hop either side; the first
    block is clipped at ``start``
    """
    t = start + (np.asarray(edges, dtype=np.float64) - 0.5) * hop / SAMPLE_RATE
    return np.maximum(t[:-1], start), t[1:]


def grid_cells(
    grid: np.ndarray,
    f_edges: np.ndarray,
    *,
    start: float,
    hop: int = CQT_HOP,
    max_rows: int,
    max_cols: int,
) -> Cells:
    """
    A (bins, frames) map pooled into at most max_rows x max_cols block means, each with
    its time span (frame_spans) and frequency span (f_edges: bins + 1 edges, Hz)
    """
    g = np.asarray(grid, dtype=np.float64)
    b_edges = pool_edges(g.shape[0], max_rows)
    j_edges = pool_edges(g.shape[1], max_cols)
    means = block_means(g, b_edges, j_edges)  # (rows, cols)
    t0, t1 = frame_spans(j_edges, start=start, hop=hop)
    rows, cols = means.shape
    return _cells(
        t0=np.tile(t0, rows),
        t1=np.tile(t1, rows),
        f0=np.repeat(f_edges[b_edges[:-1]], cols),
        f1=np.repeat(f_edges[b_edges[1:]], cols),
        value=means.reshape(-1),
    )


# ---------------------------------------------------------------------- collapsing


def time_bands(expl, *, cells: int = 160) -> Cells:
    """
    The explanation's spoof evidence collapsed onto time, in time order: time segments
    as they are, time-frequency patches summed over frequency, a dense-only map pooled
    into at most ``cells`` bands (a CQT map summed over frequency first).
    """
    if has_features(expl):
        f = features(expl)
        spans, inverse = np.unique(
            np.stack([f.t0, f.t1], axis=1), axis=0, return_inverse=True
        )
        sums = np.bincount(inverse.reshape(-1), weights=f.value, minlength=len(spans))
        return _cells(spans[:, 0], spans[:, 1], value=sums)
    dense = spoof_dense(expl)
    if dense is None:
        return _cells([], [])
    if dense.ndim == 2:  # (bins, frames) of the CQT model
        line, step = dense.sum(axis=0), CQT_HOP / SAMPLE_RATE
    else:
        line, step = dense.reshape(-1), 1.0 / SAMPLE_RATE
    start = float(expl.window_start)
    t_end = min(start + len(line) * step, float(expl.window_end))
    n = max(1, int(round((t_end - start) / step)))
    edges = pool_edges(min(n, len(line)), cells)
    means = block_means(line[None, : edges[-1]], np.array([0, 1]), edges)[0]
    return _cells(start + edges[:-1] * step, start + edges[1:] * step, value=means)


def time_frequency_cells(
    expl, freqs: np.ndarray, *, hop: int = CQT_HOP, max_cells: tuple[int, int] = (36, 80)
) -> Cells:
    """
    The explanation as time-frequency rectangles within the CQT's range (freqs: bin
    centres, Hz): patches as they are, time segments spanning every frequency, a dense
    (bins, frames) map pooled to at most max_cells = (frequency, time) cells.
    """
    fe = cqt_bin_edges(freqs)
    fmin, fmax = float(fe[0]), float(fe[-1])
    dense = spoof_dense(expl)
    if has_features(expl) or dense is None or dense.ndim == 1:
        c = features(expl) if has_features(expl) else time_bands(expl)
        full = not c.has_frequency
        return _cells(
            c.t0,
            c.t1,
            np.full(len(c), fmin) if full else np.maximum(c.f0, fmin),
            np.full(len(c), fmax) if full else np.minimum(c.f1, fmax),
            c.value,
        )
    start = float(expl.window_start)
    n_t = round((float(expl.window_end) - start) * SAMPLE_RATE / hop) + 1
    dense = dense[:, : max(min(dense.shape[1], n_t), 1)]
    nb = dense.shape[0]
    fe = fe if len(fe) == nb + 1 else np.geomspace(fmin, fmax, nb + 1)
    rows, cols = max_cells
    return grid_cells(dense, fe, start=start, hop=hop, max_rows=rows, max_cols=cols)


def spread(lo, hi, values, edges) -> np.ndarray:
    """
    Each value spread over the bins of ``edges`` in proportion to how much of its
    extent [lo, hi] falls in each bin, shape = (len(edges) - 1,). A value wholly inside
    the grid is conserved; an empty extent contributes nothing.
    """
    edges = np.asarray(edges, dtype=np.float64)
    out = np.zeros(len(edges) - 1)
    for a, b, v in zip(np.ravel(lo), np.ravel(hi), np.ravel(values)):
        if b <= a:
            continue
        overlap = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0, None)
        out += v * overlap / (b - a)
    return out


def time_profile(expl, edges: np.ndarray) -> np.ndarray:
    """spoof evidence per bin of a time grid (s), shape = (len(edges) - 1,)"""
    bands = time_bands(expl)
    return spread(bands.t0, bands.t1, bands.value, edges)
