"""Export an analysis for case files, and compare explanations with each other.

- ``analysis_doc``: one JSON-able dict with the audio's identity and hashes, every
  model's verdict and weights version, and a summary of every explanation.
- ``html_report``: the same as one self-contained HTML page (inline CSS and SVG, no
  scripts or links to fetch), printable, with the JSON embedded for machines.
- ``agreement``: Spearman rank correlation between explanations' attributions, on their
  own segments when they share them, else on a common time grid.

Pure functions: no streamlit, no model calls.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr

from .charts import (
    BONAFIDE_BLUE,
    SPOOF_RED,
    evidence_colour,
    segments_frame,
    spoof_evidence,
    time_bands,
)
from .registry import MODELS

REPORT_VERSION = 1
TOOL_NAME = "deepfake-audio analyst dashboard"
AGREEMENT_BINS = 16  # common time grid for explanations that share no segments
MIN_OVERLAP_SECONDS = 0.25  # below this, two explanations cover different audio


# ------------------------------------------------------------------ field access


def filenames(analysis) -> list[str]:
    names = getattr(analysis, "filenames", None)
    if names:
        return [str(n) for n in names]
    name = getattr(analysis, "filename", None)
    return [str(name)] if name else []


def verdict_dict(v) -> dict:
    """a Verdict (or its JSON) as a plain dict"""
    if isinstance(v, Mapping):
        return dict(v)
    if hasattr(v, "to_json"):
        return v.to_json()
    return dict(vars(v))


def model_info(key: str) -> dict:
    spec = MODELS.get(key)
    if spec is None:
        return {"key": key, "display_name": key}
    return {
        "key": key,
        "display_name": spec.display_name,
        "architecture": spec.arch,
        "weights_file": spec.weights,
        "weights_sha256": spec.sha256,
        "provenance": spec.provenance,
    }


def display_name(key: str) -> str:
    spec = MODELS.get(key)
    return spec.display_name if spec else key


# ------------------------------------------------------------------ explanations


def explanation_summary(expl, *, top: int = 3) -> dict:
    """what a case file needs of one explanation: identity, result, quality, top features"""
    seg = segments_frame(expl)
    strongest = seg.reindex(seg["evidence"].abs().sort_values(ascending=False).index)
    return {
        "model": expl.model,
        "weights_sha256": expl.weights_sha256,
        "method": expl.method,
        "method_version": expl.method_version,
        "params": _jsonable(expl.params),
        "target": int(expl.target),
        "target_label": expl.target_label,
        "window": int(expl.window),
        "window_start": float(expl.window_start),
        "window_end": float(expl.window_end),
        "p_target": float(expl.p_target),
        "feature_kind": expl.feature_kind,
        "feature_bounds": _jsonable(np.asarray(expl.feature_bounds)),
        "values": _jsonable(np.asarray(expl.values)),
        # the same values signed so that positive = evidence for spoof, on every model
        "spoof_evidence": _jsonable(spoof_evidence(expl)),
        "top_features": [
            {"label": r.label, "t0": r.t0, "t1": r.t1,
             "f0": None if math.isnan(r.f0) else r.f0,
             "f1": None if math.isnan(r.f1) else r.f1,
             "spoof_evidence": r.evidence}
            for r in strongest.head(top).itertuples()
        ],
        "dense_shape": None if expl.dense is None else list(np.shape(expl.dense)),
        "deletion_curve": _jsonable(np.asarray(expl.deletion_curve)),
        "deletion_random": _jsonable(np.asarray(expl.deletion_random)),
        "quality": _jsonable(dict(expl.quality or {})),
        "seconds": float(expl.seconds),
    }


# ----------------------------------------------------------------- the document


def analysis_doc(
    analysis,
    explanations: Iterable = (),
    *,
    generated: dt.datetime | None = None,
    share_url: str | None = None,
) -> dict:
    """The whole analysis as one JSON-able dict (the JSON export and the report's data)."""
    verdicts = {k: verdict_dict(v) for k, v in dict(analysis.verdicts).items()}
    expls = list(explanations)
    keys = list(dict.fromkeys([*verdicts, *(e.model for e in expls)]))
    generated = generated or dt.datetime.now(dt.timezone.utc)
    return {
        "report_version": REPORT_VERSION,
        "tool": TOOL_NAME,
        "generated": generated.isoformat(timespec="seconds"),
        "share_url": share_url,
        "audio": {
            "sha256": analysis.sha256,
            "filenames": filenames(analysis),
            "duration_seconds": float(getattr(analysis, "duration", 0.0) or 0.0),
            "orig_sample_rate": _first_attr(analysis, "orig_sample_rate", "orig_rate"),
            "orig_channels": _first_attr(analysis, "orig_channels", "channels"),
            "near_silent": bool(getattr(analysis, "near_silent", False)),
        },
        "verdicts": [
            {**verdicts[k], "display_name": display_name(k)} for k in verdicts
        ],
        "models": [model_info(k) for k in keys],
        "explanations": [explanation_summary(e) for e in expls],
    }


def json_bytes(doc: dict) -> bytes:
    return json.dumps(_jsonable(doc), indent=2, ensure_ascii=False).encode("utf-8")


def _first_attr(obj, *names):
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return _jsonable(v)
    return None


def _jsonable(x):
    """numpy scalars and arrays to plain Python; NaN and inf to None (valid JSON)"""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "to_json"):
        return _jsonable(x.to_json())
    if hasattr(x, "__dataclass_fields__"):
        return _jsonable(vars(x))
    return x


# ---------------------------------------------------------------------- agreement


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """rank correlation of two attribution vectors; NaN when undefined (constant, < 3)"""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def time_profile(expl, edges: np.ndarray) -> np.ndarray:
    """
    Spoof evidence per bin of a time grid (shape = (len(edges) - 1,)): each band's
    evidence is spread over the bins it overlaps in proportion to the overlap.
    """
    edges = np.asarray(edges, dtype=np.float64)
    out = np.zeros(len(edges) - 1)
    for t0, t1, e in time_bands(expl)[["t0", "t1", "evidence"]].itertuples(index=False):
        width = max(t1 - t0, 1e-9)
        overlap = np.clip(np.minimum(edges[1:], t1) - np.maximum(edges[:-1], t0), 0, None)
        out += e * overlap / width
    return out


def common_edges(expls: Sequence, *, bins: int = AGREEMENT_BINS) -> np.ndarray | None:
    """a grid over the time every explanation covers, or None when that is too short"""
    lo = max(float(e.window_start) for e in expls)
    hi = min(float(e.window_end) for e in expls)
    if hi - lo < MIN_OVERLAP_SECONDS:
        return None
    return np.linspace(lo, hi, bins + 1)


def _same_features(expls: Sequence) -> bool:
    first = np.asarray(expls[0].feature_bounds)
    return first.size > 0 and all(
        np.asarray(e.feature_bounds).shape == first.shape
        and np.allclose(np.asarray(e.feature_bounds), first)
        for e in expls[1:]
    )


def agreement(
    expls: Mapping[str, object], *, bins: int = AGREEMENT_BINS
) -> tuple[list[str], np.ndarray, str]:
    """
    Pairwise Spearman ρ between explanations (signed as spoof evidence).

    expls : {label: Explanation}
    Returns (labels, matrix (n, n), basis): basis says what was ranked: the shared
    segments, or a time grid over the audio all of them cover. Pairs covering no
    common audio get NaN.
    """
    labels = list(expls)
    items = [expls[k] for k in labels]
    n = len(items)
    m = np.full((n, n), np.nan)
    if n == 0:
        return labels, m, "nothing to compare"
    if _same_features(items):
        vecs = [spoof_evidence(e) for e in items]
        basis = f"their {len(vecs[0])} shared segments"
    else:
        vecs = [None] * n
        basis = f"{bins} time bins over the audio each pair has in common"
    for i in range(n):
        for j in range(n):
            if vecs[i] is not None:
                m[i, j] = spearman(vecs[i], vecs[j])
                continue
            edges = common_edges([items[i], items[j]], bins=bins)
            if edges is not None:
                m[i, j] = spearman(time_profile(items[i], edges), time_profile(items[j], edges))
    return labels, m, basis


def mean_offdiagonal(m: np.ndarray) -> float:
    m = np.asarray(m, dtype=np.float64)
    if m.shape[0] < 2:
        return float("nan")
    v = m[~np.eye(m.shape[0], dtype=bool)]
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


# ------------------------------------------------------------------------- HTML


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:60rem;color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1rem;margin-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}code{font-size:.85rem;word-break:break-all}
.verdict{font-weight:600;padding:.15rem .5rem;border-radius:.3rem}
.muted{color:#666;font-size:.85rem}.legend span{display:inline-block;width:1rem;
height:.8rem;vertical-align:middle;margin:0 .3rem 0 .8rem}
.card{border:1px solid #ddd;border-radius:.4rem;padding:.6rem 1rem;margin:1rem 0}
@media print{body{margin:0}.card{page-break-inside:avoid}}
"""


def html_report(doc: dict, *, title: str | None = None) -> str:
    """A self-contained HTML page for a case file: verdicts, charts, explanations, hashes."""
    e = html.escape
    audio = doc["audio"]
    name = ", ".join(audio["filenames"]) or "(unnamed upload)"
    title = title or f"Analysis of {name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="muted">{e(doc["tool"])} · report v{doc["report_version"]} · '
        f"generated {e(doc['generated'])}</p>",
        '<p class="legend muted">Colour scale on every chart:'
        f'<span style="background:{SPOOF_RED}"></span>evidence for spoof'
        f'<span style="background:{BONAFIDE_BLUE}"></span>evidence for bona fide</p>',
        "<h2>Audio</h2><table>",
        _row("File name(s)", e(name)),
        _row("SHA-256", f"<code>{e(audio['sha256'])}</code>"),
        _row("Duration", f"{audio['duration_seconds']:.2f} s"),
        _row("Original format", e(f"{audio['orig_sample_rate']} Hz, "
                                  f"{audio['orig_channels']} channel(s)")),
    ]
    if audio.get("near_silent"):
        parts.append(_row("Warning", "near-silent file: verdicts are unreliable"))
    if doc.get("share_url"):
        url = e(doc["share_url"])
        parts.append(_row("Share link", f'<a href="{url}">{url}</a>'))
    parts.append("</table>")

    parts.append("<h2>Verdicts</h2>")
    if doc["verdicts"]:
        parts.append(
            "<table><tr><th>Model</th><th>Verdict</th><th>P(spoof) (mean of windows)"
            "</th><th>Most suspicious window</th><th>Windows</th></tr>"
        )
        for v in doc["verdicts"]:
            p = float(v["p_spoof"])
            colour = evidence_colour(2 * p - 1)
            ink = "#fff" if abs(2 * p - 1) > 0.55 else "#222"
            label = "SPOOF" if v["label"] == "spoof" else "BONA FIDE"
            parts.append(
                f"<tr><td>{e(v['display_name'])}<br><span class='muted'>{e(v['model'])}"
                f"</span></td><td><span class='verdict' style='background:{colour};"
                f"color:{ink}'>{label}</span></td><td>{p:.3f}</td>"
                f"<td>{float(v.get('max_p_spoof', p)):.3f} (#{v.get('max_window', 0)})</td>"
                f"<td>{len(v.get('windows', []))}</td></tr>"
            )
        parts.append("</table>")
        parts.append("<h3>P(spoof) per window</h3>")
        parts.append(svg_timeline({v["display_name"]: v.get("windows", []) for v in doc["verdicts"]}))
        parts.append(
            '<p class="muted">Each stroke is one analysis window; above the dashed '
            "line (0.5) the model leans spoof.</p>"
        )
    else:
        parts.append("<p>No model verdicts.</p>")

    parts.append("<h2>Explanations</h2>")
    if not doc["explanations"]:
        parts.append("<p>No explanation was computed for this analysis.</p>")
    for x in doc["explanations"]:
        parts.append(_explanation_html(x))

    parts.append("<h2>Models and weights</h2><table><tr><th>Model</th><th>Architecture"
                 "</th><th>Weights SHA-256</th><th>Provenance</th></tr>")
    for m in doc["models"]:
        parts.append(
            f"<tr><td>{e(m.get('display_name', m['key']))}<br><span class='muted'>"
            f"{e(m['key'])}</span></td><td>{e(str(m.get('architecture', '')))}</td>"
            f"<td><code>{e(str(m.get('weights_sha256', '')))}</code></td>"
            f"<td>{e(str(m.get('provenance', '')))}</td></tr>"
        )
    parts.append("</table>")
    data = json.dumps(_jsonable(doc), ensure_ascii=True).replace("</", "<\\/")
    parts.append(f'<script type="application/json" id="analysis-data">{data}</script>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _row(k: str, v: str) -> str:
    return f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>"


def _explanation_html(x: dict) -> str:
    e = html.escape
    # scalars only: per-band profiles and the like stay in the JSON
    q = ", ".join(
        f"{e(k)} = {v:.3g}"
        for k, v in (x.get("quality") or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    top = "; ".join(
        f"{e(t['label'])} ({t['spoof_evidence']:+.3g})" for t in x["top_features"]
    )
    bands = _bands_from_summary(x)
    return (
        f"<div class='card'><h3>{e(display_name(x['model']))} · {e(x['method'])} "
        f"<span class='muted'>v{e(str(x['method_version']))}</span></h3>"
        f"<p>Explains <b>{e(x['target_label'])}</b> (P = {x['p_target']:.3f}) on window "
        f"#{x['window']}, {x['window_start']:.2f}-{x['window_end']:.2f} s; "
        f"{len(x['values'] or [])} features ({e(x['feature_kind'])}); "
        f"{x['seconds']:.1f} s to compute.</p>"
        f"{svg_bands(bands) if bands else ''}"
        f"<p class='muted'>Strongest features: {top or 'none'}</p>"
        f"<p class='muted'>Quality: {q or 'not reported'}</p></div>"
    )


def _bands_from_summary(x: dict) -> list[tuple[float, float, float]]:
    """(t0, t1, evidence) collapsed over frequency, from an explanation summary"""
    b = np.asarray(x["feature_bounds"] or [], dtype=np.float64)
    ev = np.asarray(x["spoof_evidence"] or [], dtype=np.float64)
    if b.size == 0 or ev.size == 0:
        return []
    b = b.reshape(len(ev), -1)
    end = float(x["window_end"])  # a tiled window: only the real audio is drawn
    acc: dict[tuple[float, float], float] = {}
    for row, v in zip(b, ev):
        if row[0] >= end - 1e-9:
            continue
        key = (round(float(row[0]), 4), round(min(float(row[1]), end), 4))
        acc[key] = acc.get(key, 0.0) + float(v)
    return sorted((t0, t1, v) for (t0, t1), v in acc.items())


# --------------------------------------------------------------------------- SVG


def svg_timeline(windows: Mapping[str, Sequence], *, width: int = 720, height: int = 200) -> str:
    """static twin of charts.timeline_chart"""
    palette = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#72b7b2"]
    left, right, top, bottom = 44, 12, 10, 40
    w, h = width - left - right, height - top - bottom
    rows = {
        m: [(float(_g(x, "start")), float(_g(x, "end")), float(_g(x, "p_spoof"))) for x in wins]
        for m, wins in windows.items()
    }
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
        c = palette[i % len(palette)]
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


def svg_bands(
    bands: Sequence[tuple[float, float, float]], *, width: int = 720, height: int = 150
) -> str:
    """spoof evidence over time as bars on the evidence scale (red up, blue down)"""
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


def _g(x, k):
    return x[k] if isinstance(x, Mapping) else getattr(x, k)
