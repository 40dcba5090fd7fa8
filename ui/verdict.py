"""The combined verdict as the pages show it: the band card first, the "models
disagree" flag, the input warnings with their measured values, and (Models page) how
well the calibration measured on a held-out protocol, with its reliability diagram.

Reads core.judgement.combined.Combined and core.audio.quality.InputQuality from an Analysis, and the
calibration metrics file written by `python -m core calibrate --eval-protocol`.
"""

from __future__ import annotations

import json

import streamlit as st

from core.engine.results import Analysis
from core.export.colours import BONAFIDE_BLUE, SPOOF_RED
from core.judgement.combined import BAND_LABELS, Combined
from ui import engine
from ui.widgets import badge, esc

BAND_STYLE = {
    "likely_spoof": f"background:{SPOOF_RED};color:#fff",
    "likely_bonafide": f"background:{BONAFIDE_BLUE};color:#fff",
    "uncertain": "background:#e9e4d4;color:#222",
    "too_short": "background:#ddd;color:#222",
    "uncalibrated": "background:#ddd;color:#222",
}
BAND_HELP = {
    "likely_spoof": "the calibrated combination of the models is above the 'likely "
    "spoof' threshold, where it made at most 5 % wrong calls on dev",
    "likely_bonafide": "the calibrated combination is below the 'likely bona fide' "
    "threshold, where it made at most 5 % wrong calls on dev",
    "uncertain": "between the two thresholds the models are not reliable enough to "
    "call it either way: treat the per-model scores as leads only",
    "too_short": "there is too little speech for any detector to judge; the models "
    "still scored it, but no confident verdict is given",
    "uncalibrated": "no calibration covers these models, so their scores cannot be "
    "combined into a probability",
}


def band_badge(band: str, p_spoof: float | None = None) -> str:
    text = BAND_LABELS.get(band, band).upper()
    if p_spoof is not None:
        text += f" · P(spoof) {p_spoof:.2f}"
    return badge(text, style=BAND_STYLE.get(band, "background:#ddd"), pill=True)


def combined_card(analysis: Analysis) -> None:
    """The verdict that leads the page: band, calibrated P(spoof), disagreement, notes."""
    c: Combined | None = analysis.combined
    if c is None:
        return
    if c.p_spoof is None:
        p = ""
    elif c.band == "too_short":
        p = f"calibrated P(spoof) {c.p_spoof:.3f}, not used: too little speech"
    else:
        p = f"calibrated P(spoof) {c.p_spoof:.3f}"
    fused = ", ".join(engine.model_name(k) for k in c.models) or "no model"
    st.markdown(
        "<div data-testid='combined-verdict' style='border:1px solid #ccc;"
        "border-radius:0.6rem;padding:0.8rem 1rem;margin-bottom:0.6rem'>"
        "<div style='font-size:0.85rem;opacity:0.8'>Combined verdict</div>"
        f"<div style='font-size:1.7rem;font-weight:700;margin:0.2rem 0'>"
        f"<span style='{BAND_STYLE.get(c.band, '')};padding:0.1rem 0.6rem;"
        f"border-radius:0.4rem'>{esc(c.label.upper())}</span></div>"
        f"<div>{esc(p)}{' · ' if p else ''}from {esc(fused)}</div>"
        f"<div style='font-size:0.85rem;color:#555;margin-top:0.3rem'>"
        f"{esc(BAND_HELP.get(c.band, ''))}</div></div>",
        unsafe_allow_html=True,
    )
    if c.models_disagree:
        st.warning(
            "**The models disagree**: at least one leans spoof and another bona fide. "
            "Look at the explanations before trusting either.",
            icon=":material/call_split:",
        )
    if c.reasons:
        st.caption(" · ".join(c.reasons))


def warnings_block(analysis: Analysis) -> None:
    """Every input warning with its measured value and threshold (or 'none')."""
    ws = analysis.warnings
    if not ws:
        if analysis.quality is not None:
            st.caption(
                f"Input checks: no warning (bandwidth "
                f"{analysis.quality.effective_bandwidth_hz / 1000:.1f} kHz, "
                f"{analysis.quality.speech_seconds:.1f} s of speech, SNR "
                f"{analysis.quality.snr_db:.0f} dB)."
            )
        return
    lines = [
        f"- **{esc(w.code)}**: {esc(w.message)} (measured {w.value:g}, threshold "
        f"{w.threshold:g})"
        for w in ws
    ]
    st.warning("**Input warnings**\n\n" + "\n".join(lines), icon=":material/warning:")


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
        st.caption("Warnings that widen the band (log-odds, measured on degraded dev): "
                   + ", ".join(f"{k} +{v:.2f}" for k, v in sorted(cal.widen.items())))  # fmt: skip
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

    curves = {k: v["reliability"] for k, v in m["models"].items()}
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
