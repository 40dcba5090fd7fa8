"""The dashboard's colours, without any drawing library.

One rule everywhere: red and blue mean evidence and verdicts, nothing else.

    evidence     red is evidence that the audio is spoofed, blue that it is bona fide,
                 white neither (ColorBrewer RdBu end points): ``evidence_colour``
    models       a neutral categorical palette (teal, purple, mustard, ...), so a model
                 line at P(spoof) 0.03 is never drawn in the spoof red: ``model_colours``
    agreement    purple (opposite rankings) - white (0) - green (the same ranking),
                 ColorBrewer PRGn end points: a correlation is not evidence either

Charts (core.export.charts), the HTML report (core.export.report) and the pages' verdict
cards all take their colours from here.
"""

from __future__ import annotations

import colorsys
import math
from typing import Sequence

SPOOF_RED = "#b2182b"
BONAFIDE_BLUE = "#2166ac"
NEUTRAL = "#f7f7f7"

# ColorBrewer Dark2 / Set1 hues far from the evidence red and blue, then grey
MODEL_PALETTE = ("#1b9e77", "#984ea3", "#e6ab02", "#66a61e", "#a6761d", "#666666")
COMBINED_COLOUR = "#222222"  # the combined verdict beside the models

AGREE_OPPOSITE = "#762a83"  # rho = -1 (ColorBrewer PRGn)
AGREE_SAME = "#1b7837"  # rho = +1


def evidence_colour(x: float) -> str:
    """
    hex colour of x in [-1, 1] on the evidence scale (NaN = neutral), interpolated in
    RGB from NEUTRAL at 0 to SPOOF_RED at +1 and BONAFIDE_BLUE at -1. For a
    probability p of spoof, pass 2 * p - 1.
    """
    return _diverging(x, BONAFIDE_BLUE, SPOOF_RED)


def agreement_colour(rho: float) -> str:
    """hex colour of a correlation in [-1, 1]: purple below 0, white at 0, green above"""
    return _diverging(rho, AGREE_OPPOSITE, AGREE_SAME)


def model_colours(names: Sequence[str]) -> dict[str, str]:
    """
    {name: colour} from MODEL_PALETTE in the order given (cycling past its end);
    "combined" gets COMBINED_COLOUR
    """
    out, i = {}, 0
    for name in dict.fromkeys(names):
        if name == "combined":
            out[name] = COMBINED_COLOUR
        else:
            out[name] = MODEL_PALETTE[i % len(MODEL_PALETTE)]
            i += 1
    return out


def hue_degrees(colour: str) -> float:
    """the hue of a hex colour, 0-360 degrees (for tests that keep palettes apart)"""
    r, g, b = (c / 255 for c in _rgb(colour))
    return 360.0 * colorsys.rgb_to_hls(r, g, b)[0]


def _diverging(x: float, low: str, high: str) -> str:
    x = 0.0 if not math.isfinite(x) else max(-1.0, min(1.0, float(x)))
    end = high if x >= 0 else low
    a, b = _rgb(NEUTRAL), _rgb(end)
    t = abs(x)
    return "#" + "".join(f"{round(ai + (bi - ai) * t):02x}" for ai, bi in zip(a, b))


def _rgb(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)
