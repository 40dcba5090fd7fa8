"""The combined verdict as the pages show it: the band card first (which models it fused,
which it left out and why), its own warnings, the input warnings with their measured
values in units, the per-model cards (muted, as leads, when the combined verdict calls
nothing), and (Models page) how well the calibration measured on a held-out protocol,
with its reliability diagram.

Reads core.judgement.combined.Combined and core.audio.quality.InputQuality from an
Analysis, and the calibration metrics file written by `python -m core calibrate
--eval-protocol`. Fields the combined verdict gains are read through its to_json(), so a
new judgement warning is shown without a change here.
"""

from __future__ import annotations

import json

import streamlit as st

from core.detectors.detect import Verdict
from core.engine.results import Analysis
from core.export.colours import BONAFIDE_BLUE, SPOOF_RED, evidence_colour
from core.judgement.combined import BAND_LABELS, Combined
from ui import engine
from ui.widgets import badge, esc, verdict_style, verdict_word, windows_text

BAND_STYLE = {
    "likely_spoof": f"background:{SPOOF_RED};color:#fff",
    "likely_bonafide": f"background:{BONAFIDE_BLUE};color:#fff",
    "uncertain": "background:#e9e4d4;color:#222",
    "too_short": "background:#ddd;color:#222",
    "uncalibrated": "background:#ddd;color:#222",
}
BAND_HELP = {
    "likely_spoof": "The calibrated combination of the models is above the 'likely "
    "spoof' threshold, where it made at most 5 % wrong calls on dev.",
    "likely_bonafide": "The calibrated combination is below the 'likely bona fide' "
    "threshold, where it made at most 5 % wrong calls on dev.",
    "uncertain": "Between the two thresholds the models are not reliable enough to "
    "call it either way: treat the per-model scores as leads only.",
    "too_short": "There is too little speech for any detector to judge; the models "
    "still scored it, but no confident verdict is given.",
    "uncalibrated": "No calibration covers these models, so their scores cannot be "
    "combined into a probability.",
}
# a warning's name on the page (others: the code in words)
WARNING_TITLES = {
    "narrow_band": "Narrow band",
    "low_sample_rate": "Low original rate",
    "lossy_codec": "Lossy codec",
    "low_snr": "Noisy",
    "little_speech": "Little speech",
    "too_short": "Too short",
    "clipping": "Clipping",
    "partial_coverage": "Part of the file",
    "models_disagree": "The models disagree",
    "unfamiliar_audio": "Unfamiliar audio",
}


def warning_title(code: str) -> str:
    return WARNING_TITLES.get(code) or code.replace("_", " ").capitalize()


def band_badge(band: str, p_spoof: float | None = None) -> str:
    text = BAND_LABELS.get(band, band).upper()
    if p_spoof is not None:
        text += f" · P(spoof) {p_spoof:.2f}"
    return badge(text, style=BAND_STYLE.get(band, "background:#ddd"), pill=True)


def combined_card(analysis: Analysis) -> None:
    """
    The verdict that leads the page: band, calibrated P(spoof), the models it fused and
    those it left out (and why), its reasons in plain words, then its own warnings.
    """
    c: Combined | None = analysis.combined
    if c is None:
        return
    if c.p_spoof is None:
        p = ""
    elif c.band == "too_short":
        p = f"calibrated P(spoof) {c.p_spoof:.3f}, not used: too little speech"
    else:
        p = f"calibrated P(spoof) {c.p_spoof:.3f}"
    out = left_out(analysis)
    fused = ", ".join(engine.model_name(k) for k in c.models) or "no model"
    lines = [f"{esc(p)}{' · ' if p else ''}from {esc(fused)}"]
    lines += [f"{esc(engine.model_name(k))}: {esc(why)}" for k, why in out.items()]
    # reasons not already said per model (the lead's plain sentences)
    lines += [esc(r) for r in c.reasons if not any(r.startswith(f"{k}:") for k in out)
              and r not in out.values()]  # fmt: skip
    st.markdown(
        "<div data-testid='combined-verdict' style='border:1px solid #ccc;"
        "border-radius:0.6rem;padding:0.8rem 1rem;margin-bottom:0.6rem'>"
        "<div style='font-size:0.85rem;opacity:0.8'>Combined verdict</div>"
        f"<div style='font-size:1.7rem;font-weight:700;margin:0.2rem 0'>"
        f"<span style='{BAND_STYLE.get(c.band, '')};padding:0.1rem 0.6rem;"
        f"border-radius:0.4rem'>{esc(c.label.upper())}</span></div>"
        + "".join(f"<div>{line}</div>" for line in lines)
        + f"<div style='font-size:0.85rem;color:#555;margin-top:0.3rem'>"
        f"{esc(BAND_HELP.get(c.band, ''))}</div></div>",
        unsafe_allow_html=True,
    )
    judged = c.to_json().get("warnings") or []
    for w in judged:
        st.warning(f"**{warning_title(w.get('code', ''))}**: {w.get('message', '')}",
                   icon=":material/call_split:" if w.get("code") == "models_disagree"
                   else ":material/help:")  # fmt: skip
    if c.models_disagree and not any(w.get("code") == "models_disagree" for w in judged):
        st.warning(
            "**The models disagree**: at least one leans spoof and another bona fide. "
            "Look at the explanations before trusting either.",
            icon=":material/call_split:",
        )


def warnings_block(analysis: Analysis) -> None:
    """Every input warning with its measured value in its unit, then the notes."""
    q = analysis.quality
    ws = analysis.warnings
    if ws:
        lines = [
            f"- **{warning_title(w.code)}**: {esc(w.message)}"
            + (f" ({esc(w.measured)})" if w.measured else "")
            for w in ws
        ]
        st.warning("**Input warnings**\n\n" + "\n".join(lines), icon=":material/warning:")
    elif q is not None:
        st.caption(
            f"Input checks: no warning (bandwidth {q.effective_bandwidth_hz / 1000:.1f} kHz, "
            f"{q.speech_seconds:.1f} s of speech, SNR {q.snr_db:.0f} dB)."
        )
    for note in getattr(q, "notes", ()) or ():
        st.caption(f"Note: {esc(note)}")


# combined-verdict bands that call nothing: the per-model scores are then leads only
LEAD_BANDS = ("too_short", "uncertain")
NOT_IN_CALIBRATION = "not in the combined verdict: run python -m core calibrate"
MUTED_STYLE = "background:#f4f4f4;color:#444444"


def leads_only(analysis: Analysis) -> bool:
    """the combined verdict is too short or uncertain: per-model scores are leads"""
    return analysis.combined is not None and analysis.combined.band in LEAD_BANDS


def left_out(analysis: Analysis) -> dict[str, str]:
    """{model: why the combined verdict left it out}; the fused models are not in it"""
    c = analysis.combined
    if c is None:
        return {}
    given = c.to_json().get("left_out") or {}
    # no model fused and no reason per model: the calibration itself is missing
    fallback = c.reasons[0] if not c.models and c.reasons else NOT_IN_CALIBRATION
    out = {}
    for key in analysis.verdicts:
        if key in c.models:
            continue
        said = [r.split(":", 1)[1].strip() for r in c.reasons if r.startswith(f"{key}:")]
        out[key] = given.get(key) or (said[0] if said else fallback)
    return out


def verdict_card(key: str, verdict: Verdict, *, lead: bool = False, note: str = "") -> None:
    """
    One model's verdict. ``lead``: drawn muted, "leans spoof" rather than SPOOF, for
    when the combined verdict calls nothing; ``note``: its place in the combined verdict.
    """
    p = verdict.p_spoof
    if lead:
        # a faint edge in the evidence colour, no full-strength verdict
        style = f"{MUTED_STYLE};border:1px dashed #bbb;border-left:6px solid {evidence_colour(p - 0.5)}"
        word = f"leans {'spoof' if verdict.label == 'spoof' else 'bona fide'}"
        word_style = "font-size:1.15rem;font-weight:600"
    else:
        style, word = f"{verdict_style(p)};border:1px solid #ccc", verdict_word(verdict.label)
        word_style = "font-size:1.5rem;font-weight:700"
    st.markdown(
        f"<div class='verdict-card{' lead' * lead}' data-testid='verdict-card' "
        f"style='{style};border-radius:0.6rem;padding:0.8rem 1rem;margin-bottom:0.5rem'>"
        f"<div style='font-size:0.85rem;opacity:0.9'>{esc(engine.model_name(key))}</div>"
        f"<div style='{word_style}'>{word}</div>"
        f"<div>P(spoof) {p:.3f} · max window {verdict.max_p_spoof:.3f} · "
        f"{windows_text(verdict)}</div>"
        + (f"<div style='font-size:0.8rem;opacity:0.85;margin-top:0.2rem'>{esc(note)}</div>"
           if note else "")
        + "</div>",
        unsafe_allow_html=True,
    )


def verdict_cards(analysis: Analysis) -> None:
    items = list(analysis.verdicts.items())
    if not items:
        st.warning("No model produced a verdict for this file.")
        return
    lead, out = leads_only(analysis), left_out(analysis)
    fused = analysis.combined.models if analysis.combined is not None else ()
    cols = st.columns(min(len(items), 3))
    for i, (key, v) in enumerate(items):
        note = "in the combined verdict" if key in fused else out.get(key, "")
        with cols[i % len(cols)]:
            verdict_card(key, v, lead=lead, note=note)
    if lead:
        st.caption(
            f"The combined verdict is **{analysis.combined.label}**, so these per-model "
            "scores are leads, not verdicts: none of them is reliable enough on its own."
        )
        return
    st.caption(
        "P(spoof) is the mean over the model's analysis windows; the verdict is spoof "
        "at 0.5 or above. The threshold is not calibrated to an operating point: "
        "treat a verdict as a lead, not proof."
    )



def calibration_section() -> None:
    """Calibration as measured on eval: metrics table and a reliability diagram."""
    st.header("Calibration of the combined verdict")
    cal, problem = engine.engine().calibration_pair()
    if cal is None:
        st.info(f"{problem}.")
        return
    fusion = cal.fusion.select(tuple(cal.models)) if cal.fusion else None
    if fusion is not None and fusion.bands is not None:
        st.markdown(
            f"Bands chosen on dev ({cal.fitted_on.get('n_bonafide')} bona fide, "
            f"{cal.fitted_on.get('n_spoof')} spoof): "
            + band_badge("likely_bonafide") + f" below {fusion.bands.lo:.3f} · "
            + band_badge("likely_spoof") + f" above {fusion.bands.hi:.3f}; in between "
            + band_badge("uncertain"),
            unsafe_allow_html=True,
        )
    if cal.widen:
        st.caption("These warnings make the verdict need stronger evidence to be confident, "
                   "as measured on dev audio degraded that way (how far each moves the band "
                   "edges, in log-odds): "
                   + ", ".join(f"{warning_title(k).lower()} +{v:.2f}"
                               for k, v in sorted(cal.widen.items())))  # fmt: skip
    path = engine.calibration_metrics_path()
    if not path.exists():
        st.caption("No held-out measurement yet: run `python -m core calibrate ... "
                   "--eval-protocol EVAL`.")  # fmt: skip
        return
    m = json.loads(path.read_text())
    rows = [{"model": engine.model_name(k), **_metric_row(v)} for k, v in m["models"].items()]
    if m.get("combined"):
        rows.append({"model": "combined", **_metric_row(m["combined"])})
    st.caption(f"Measured on {m.get('protocol', 'a held-out protocol')} "
               f"({m['n_bonafide']} bona fide, {m['n_spoof']} spoof).")  # fmt: skip
    st.dataframe(rows, hide_index=True, width="stretch")
    if m.get("combined"):
        c = m["combined"]
        err = c["error_rate_outside"]
        st.write(f"{100 * c['uncertain_share']:.1f} % of files fall in the uncertain band; "
                 f"outside it the error rate is "
                 f"{'n/a' if err is None else f'{100 * err:.1f} %'}.")  # fmt: skip
    from core.export import charts

    curves = {engine.model_name(k): v["reliability"] for k, v in m["models"].items()}
    if m.get("combined"):
        curves["combined"] = m["combined"]["reliability"]
    st.altair_chart(charts.reliability_chart(curves), width="stretch")
    st.caption("Reliability: mean calibrated P(spoof) per bin against the share of spoofs "
               "in it (classes weighed equally); on the diagonal = calibrated.")  # fmt: skip


def _metric_row(v: dict) -> dict:
    return {
        "EER %": round(100 * v["eer"], 2),
        "Cllr": round(v["cllr"], 3),
        "min Cllr": round(v["min_cllr"], 3),
        "ECE": round(v["ece"], 3),
    }
