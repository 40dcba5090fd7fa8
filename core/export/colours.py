"""The dashboard's one evidence colour scale, without any drawing library.

Red is evidence that the audio is spoofed, blue that it is bona fide, white neither
(ColorBrewer RdBu end points). Charts (core.export.charts), the HTML report (core.export.report) and
the pages' verdict cards all take their colours from here.
"""

from __future__ import annotations

import math

SPOOF_RED = "#b2182b"
BONAFIDE_BLUE = "#2166ac"
NEUTRAL = "#f7f7f7"


def evidence_colour(x: float) -> str:
    """
    hex colour of x in [-1, 1] on the evidence scale (NaN = neutral), interpolated in
    RGB from NEUTRAL at 0 to SPOOF_RED at +1 and BONAFIDE_BLUE at -1. For a
    probability p of spoof, pass 2 * p - 1.
    """
    x = 0.0 if not math.isfinite(x) else max(-1.0, min(1.0, float(x)))
    end = SPOOF_RED if x >= 0 else BONAFIDE_BLUE
    a, b = _rgb(NEUTRAL), _rgb(end)
    t = abs(x)
    return "#" + "".join(f"{round(ai + (bi - ai) * t):02x}" for ai, bi in zip(a, b))


def _rgb(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)
