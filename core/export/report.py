"""Export an analysis for case files: one JSON document and one self-contained HTML page.

- ``analysis_doc``: the audio's identity and hashes, every model's verdict and weights
  version, and a summary of every explanation, as one JSON-able dict. It is built from
  typed results (core.engine.results.Analysis, core.explain.base.Explanation) and is the only
  dict shape here: the HTML page is drawn from it, so the two never disagree.
- ``html_report``: that document as one page (inline CSS and SVG from
  core.export.report_svg, no scripts or links to fetch), printable, with the JSON embedded for
  machines.

Pure functions: no streamlit, no Altair, no model calls.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Iterable

from core.detectors.registry import MODELS
from core.engine.results import Analysis, explanation_json
from core.explain.base import Explanation
from core.explain.geometry import features, spoof_evidence, strongest, time_bands
from core.export.colours import BONAFIDE_BLUE, SPOOF_RED, evidence_colour
from core.export.report_svg import svg_bands, svg_timeline
from core.jsonsafe import finite

REPORT_VERSION = 1
TOOL_NAME = "deepfake-audio analyst dashboard"
TOP_FEATURES = 3  # strongest features listed per explanation
REPORT_BANDS = 64  # a dense map is drawn as at most this many bands over time


# ------------------------------------------------------------------ identities


def filenames(analysis: Analysis) -> list[str]:
    """every name the audio was seen under, else the name of this call"""
    names = list(analysis.filenames) or [analysis.filename]
    return [str(n) for n in names if n]


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
    """the model's display name; a key no longer registered is marked as removed"""
    spec = MODELS.get(key)
    return spec.display_name if spec else f"{key} (removed model)"


# ------------------------------------------------------------------ explanations


def explanation_summary(expl: Explanation, *, top: int = TOP_FEATURES) -> dict:
    """what a case file needs of one explanation: identity, result, quality, top features"""
    feats = features(expl)
    labels = feats.labels()
    bands = time_bands(expl, cells=REPORT_BANDS)
    doc = explanation_json(expl, cached=True, seconds=expl.seconds)
    # a case file records what the result cost, not how this export came by it
    del doc["cached"], doc["compute_seconds"]
    return finite(
        {
            **doc,
            "weights_sha256": expl.weights_sha256,
            # the values signed so that positive = evidence for spoof, on every model
            "spoof_evidence": spoof_evidence(expl),
            "top_features": [
                {
                    "label": labels[i],
                    "t0": feats.t0[i],
                    "t1": feats.t1[i],
                    "f0": feats.f0[i],  # NaN (JSON null) for a time segment
                    "f1": feats.f1[i],
                    "spoof_evidence": feats.value[i],
                    "standard_error": (
                        None
                        if expl.uncertainty is None
                        else float(expl.uncertainty[feats.index[i]])
                    ),
                }
                for i in strongest(feats.value, top)
            ],
            # spoof evidence over the real audio, summed over frequency: [t0, t1, value]
            "time_bands": [list(r) for r in zip(bands.t0, bands.t1, bands.value)],
            "dense_shape": None if expl.dense is None else list(expl.dense.shape),
            "deletion_curve": expl.deletion_curve,
            "deletion_random": expl.deletion_random,
        }
    )


# ----------------------------------------------------------------- the document


def analysis_doc(
    analysis: Analysis,
    explanations: Iterable[Explanation] = (),
    *,
    generated: dt.datetime | None = None,
    share_url: str | None = None,
) -> dict:
    """The whole analysis as one JSON-able dict (the JSON export and the report's data)."""
    expls = list(explanations)
    keys = list(dict.fromkeys([*analysis.verdicts, *(e.model for e in expls)]))
    generated = generated or dt.datetime.now(dt.timezone.utc)
    return finite(
        {
            "report_version": REPORT_VERSION,
            "tool": TOOL_NAME,
            "generated": generated.isoformat(timespec="seconds"),
            "share_url": share_url,
            "audio": {
                "sha256": analysis.sha256,
                "filenames": filenames(analysis),
                "duration_seconds": analysis.duration,
                "orig_sample_rate": analysis.orig_sample_rate,
                "orig_channels": analysis.orig_channels,
                "near_silent": analysis.near_silent,
            },
            "combined": analysis.combined.to_json() if analysis.combined else None,
            "warnings": [w.to_json() for w in analysis.warnings],
            "notes": list(analysis.quality.notes) if analysis.quality is not None else [],
            "verdicts": [
                {**v.to_json(), "display_name": display_name(k)}
                for k, v in analysis.verdicts.items()
            ],
            "models": [model_info(k) for k in keys],
            "explanations": [explanation_summary(e) for e in expls],
        }
    )


def json_bytes(doc: dict) -> bytes:
    return json.dumps(finite(doc), indent=2, ensure_ascii=False).encode("utf-8")


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
.muted{color:#666;font-size:.85rem}.warn{color:#a05a00}.legend span{display:inline-block;width:1rem;
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
    ]  # fmt: skip
    if audio["near_silent"]:
        parts.append(_row("Warning", "near-silent file: verdicts are unreliable"))
    if doc["share_url"]:
        url = e(doc["share_url"])
        parts.append(_row("Share link", f'<a href="{url}">{url}</a>'))
    parts.append("</table>")
    parts += _combined_html(doc.get("combined"), doc.get("warnings") or [], doc.get("notes") or [])
    parts += _verdicts_html(doc["verdicts"])

    parts.append("<h2>Explanations</h2>")
    if not doc["explanations"]:
        parts.append("<p>No explanation was computed for this analysis.</p>")
    parts += [_explanation_html(x) for x in doc["explanations"]]

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
    data = json.dumps(finite(doc), ensure_ascii=True).replace("</", "<\\/")
    parts.append(f'<script type="application/json" id="analysis-data">{data}</script>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _row(k: str, v: str) -> str:
    return f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>"


BAND_INK = {"likely_spoof": SPOOF_RED, "likely_bonafide": BONAFIDE_BLUE}


def _combined_html(combined: dict | None, warnings: list[dict], notes: list[str]) -> list[str]:
    """
    the combined verdict first (band, calibrated P, the models it left out, its own
    warnings), then the input warnings in units and the notes
    """
    e = html.escape
    parts = ["<h2>Combined verdict</h2>"]
    if combined is None:
        parts.append("<p>No combined verdict for this analysis.</p>")
    else:
        colour = BAND_INK.get(combined["band"], "#777")
        p = combined["p_spoof"]
        shown = "" if p is None else f" &nbsp; calibrated P(spoof) {p:.3f}"
        parts.append(
            f"<p><span class='verdict' style='background:{colour};color:#fff'>"
            f"{e(combined['label'].upper())}</span>{shown}</p>"
        )
        judged = combined.get("warnings") or []
        if combined["models_disagree"] and not any(
            w.get("code") == "models_disagree" for w in judged
        ):
            parts.append("<p><b>The models disagree</b>: at least one leans spoof and "
                         "another bona fide.</p>")  # fmt: skip
        left = combined.get("left_out") or {}
        parts += [f"<p class='muted'>{e(display_name(k))}: {e(why)}</p>" for k, why in left.items()]
        parts += [f"<p class='muted'>{e(r)}</p>" for r in combined["reasons"]
                  if not any(r.startswith(f"{k}:") for k in left)]  # fmt: skip
        parts += [f"<p><b>{e(w.get('code', ''))}</b>: {e(w.get('message', ''))}</p>"
                  for w in judged]  # fmt: skip
    if warnings:
        parts.append("<h3>Input warnings</h3><table><tr><th>Warning</th><th>Measured</th>"
                     "</tr>")  # fmt: skip
        for w in warnings:
            # "bandwidth 3.5 kHz (below 4.5 kHz)"; documents from before units: the numbers
            measured = w.get("measured")
            if measured is None:
                value = "n/a" if w["value"] is None else f"{w['value']:g}"
                measured = f"{value} (threshold {w['threshold']:g})"
            parts.append(f"<tr><td><b>{e(w['code'])}</b>: {e(w['message'])}</td>"
                         f"<td>{e(measured or 'n/a')}</td></tr>")  # fmt: skip
        parts.append("</table>")
    parts += [f"<p class='muted'>Note: {e(n)}</p>" for n in notes]
    return parts


def _verdicts_html(verdicts: list[dict]) -> list[str]:
    """the verdict table and the P(spoof) timeline, from the document's verdicts"""
    e = html.escape
    if not verdicts:
        return ["<h2>Verdicts</h2>", "<p>No model verdicts.</p>"]
    parts = [
        "<h2>Verdicts</h2>",
        "<table><tr><th>Model</th><th>Verdict</th><th>P(spoof) (mean of windows)"
        "</th><th>Most suspicious window</th><th>Windows</th></tr>",
    ]
    for v in verdicts:
        p = float(v["p_spoof"])
        ink = "#fff" if abs(2 * p - 1) > 0.55 else "#222"
        label = "SPOOF" if v["label"] == "spoof" else "BONA FIDE"
        parts.append(
            f"<tr><td>{e(v['display_name'])}<br><span class='muted'>{e(v['model'])}"
            f"</span></td><td><span class='verdict' style='background:"
            f"{evidence_colour(2 * p - 1)};color:{ink}'>{label}</span></td><td>{p:.3f}</td>"
            f"<td>{float(v['max_p_spoof']):.3f} (#{v['max_window']})</td>"
            f"<td>{windows_cell(v)}</td></tr>"
        )
    windows = {
        v["display_name"]: [(w["start"], w["end"], w["p_spoof"]) for w in v["windows"]]
        for v in verdicts
    }
    parts += [
        "</table>",
        "<h3>P(spoof) per window</h3>",
        svg_timeline(windows),
        '<p class="muted">Each stroke is one analysis window; above the dashed '
        "line (0.5) the model leans spoof.</p>",
    ]
    return parts


def _explanation_html(x: dict) -> str:
    e = html.escape
    # scalars only: per-band profiles and the like stay in the JSON
    q = ", ".join(
        f"{e(k)} = {v:.3g}"
        for k, v in (x["quality"] or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    top = "; ".join(
        f"{e(t['label'])} ({t['spoof_evidence']:+.3g}"
        + (f" ± {t['standard_error']:.2g}" if t.get("standard_error") else "")
        + ")"
        for t in x["top_features"]
    )
    unstable = (x["quality"] or {}).get("top3_stable") is False
    bands = [tuple(b) for b in x["time_bands"] if b[2] is not None]
    return (
        f"<div class='card'><h3>{e(display_name(x['model']))} · {e(x['method'])} "
        f"<span class='muted'>v{e(str(x['method_version']))}</span></h3>"
        f"<p>Explains <b>{e(x['target_label'])}</b> (P = {x['p_target']:.3f}) on window "
        f"#{x['window']}, {x['window_start']:.2f}-{x['window_end']:.2f} s; "
        f"{len(x['values'])} features ({e(x['feature_kind'])}); "
        f"{x['seconds']:.1f} s to compute.</p>"
        f"{svg_bands(bands) if bands else ''}"
        f"<p class='muted'>Strongest features: {top or 'none'}</p>"
        + (
            "<p class='warn'>Rankings unstable: two independent halves of the "
            "samples disagree on the top three features.</p>"
            if unstable
            else ""
        )
        + f"<p class='muted'>Quality: {q or 'not reported'}</p></div>"
    )


def windows_cell(v: dict) -> str:
    """scored windows, and of how many when the dashboard's cap left some out"""
    n, total = len(v["windows"]), int(v.get("n_windows") or len(v["windows"]))
    return f"{n} of {total} ({100 * n / total:.0f} % of the file)" if n < total else str(n)
