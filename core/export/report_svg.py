"""Static SVG charts for the HTML report (core.export.report): no scripts, no Altair.

Each is the printable twin of a dashboard chart and draws plain tuples from the
report's JSON document, on the evidence colours of core.export.colours.
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

from core.export.colours import BONAFIDE_BLUE, SPOOF_RED, evidence_colour

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#72b7b2"]  # per model
Span = tuple[float, float, float]  # (start s, end s, value)


def svg_timeline(
    windows: Mapping[str, Sequence[Span]], *, width: int = 720, height: int = 200
) -> str:
    """
    static twin of charts.timeline_chart

    windows : {model display name: [(start s, end s, P(spoof)), ...]}
    """
    left, right, top, bottom = 44, 12, 10, 40
    w, h = width - left - right, height - top - bottom
    rows = {m: [(float(a), float(b), float(p)) for a, b, p in wins] for m, wins in windows.items()}
    t_max = max([t1 for r in rows.values() for _, t1, _ in r] + [1e-3])

    def sx(t):
        return left + w * t / t_max

    def sy(p):
        return top + h * (1 - p)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="P(spoof) per window">',
        f'<rect x="{left}" y="{sy(1)}" width="{w}" height="{h / 2}" fill="{SPOOF_RED}" '
        'fill-opacity="0.07"/>',
        f'<rect x="{left}" y="{sy(0.5)}" width="{w}" height="{h / 2}" '
        f'fill="{BONAFIDE_BLUE}" fill-opacity="0.07"/>',
        f'<line x1="{left}" x2="{left + w}" y1="{sy(0.5)}" y2="{sy(0.5)}" stroke="#555" '
        'stroke-dasharray="4 4"/>',
    ]
    out += _axes(left, top, w, h, t_max, y_label="P(spoof)")
    for i, (m, r) in enumerate(rows.items()):
        c = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{sx((a + b) / 2):.1f},{sy(p):.1f}" for a, b, p in r)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        for a, b, p in r:
            out.append(
                f'<line x1="{sx(a):.1f}" x2="{sx(b):.1f}" y1="{sy(p):.1f}" y2="{sy(p):.1f}" '
                f'stroke="{c}" stroke-width="4" stroke-opacity="0.8"><title>'
                f"{html.escape(m)}: {a:.2f}-{b:.2f} s, P(spoof) {p:.3f}</title></line>"
            )
        out.append(
            f'<rect x="{left + 300 * i}" y="{height - 14}" width="10" height="10" fill="{c}"/>'
            f'<text x="{left + 300 * i + 14}" y="{height - 5}" font-size="11">'
            f"{html.escape(m[:46])}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def svg_bands(bands: Sequence[Span], *, width: int = 720, height: int = 150) -> str:
    """
    spoof evidence over time as bars on the evidence scale (red up, blue down)

    bands : [(t0 s, t1 s, spoof evidence), ...], at least one
    """
    left, right, top, bottom = 44, 12, 8, 26
    w, h = width - left - right, height - top - bottom
    t_lo = min(b[0] for b in bands)
    t_hi = max(b[1] for b in bands)
    span = max(t_hi - t_lo, 1e-6)
    lim = max(abs(b[2]) for b in bands) or 1.0
    mid = top + h / 2
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="evidence over time">',
        f'<line x1="{left}" x2="{left + w}" y1="{mid}" y2="{mid}" stroke="#999"/>',
    ]
    for t0, t1, v in bands:
        x0 = left + w * (t0 - t_lo) / span
        x1 = left + w * (t1 - t_lo) / span
        bh = (h / 2) * abs(v) / lim
        y = mid - bh if v >= 0 else mid
        out.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
            f'height="{bh:.1f}" fill="{evidence_colour(v / lim)}" stroke="#888" '
            f'stroke-width="0.3"><title>{t0:.2f}-{t1:.2f} s: {v:+.4g}</title></rect>'
        )
    out.append(
        f'<text x="{left}" y="{height - 6}" font-size="11">{t_lo:.2f} s</text>'
        f'<text x="{left + w}" y="{height - 6}" font-size="11" text-anchor="end">'
        f"{t_hi:.2f} s</text>"
        f'<text x="4" y="{top + 10}" font-size="10" fill="{SPOOF_RED}">spoof</text>'
        f'<text x="4" y="{top + h}" font-size="10" fill="{BONAFIDE_BLUE}">bona fide</text>'
        "</svg>"
    )
    return "".join(out)


def _axes(left, top, w, h, t_max, *, y_label: str) -> list[str]:
    out = [
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + h}" stroke="#333"/>',
        f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="#333"/>',
    ]
    for p in (0, 0.5, 1):
        y = top + h * (1 - p)
        out.append(f'<text x="{left - 6}" y="{y + 4}" font-size="10" text-anchor="end">{p:g}</text>')
    for k in range(6):
        t = t_max * k / 5
        x = left + w * k / 5
        out.append(
            f'<text x="{x}" y="{top + h + 13}" font-size="10" text-anchor="middle">{t:.1f}</text>'
        )
    out.append(
        f'<text x="{left + w}" y="{top + h + 26}" font-size="10" text-anchor="end">time (s)</text>'
        f'<text x="10" y="{top + h / 2}" font-size="10" transform="rotate(-90 10 {top + h / 2})"'
        f' text-anchor="middle">{html.escape(y_label)}</text>'
    )
    return out

