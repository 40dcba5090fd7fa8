"""Drawing blocks shared by the pages: verdict cards and badges, the audio header, the
P(spoof) timeline, captions, the progress callback, the listen block and the exports.

Every block reads typed results (core.engine.results.Analysis, core.detectors.detect.Verdict,
core.explain.base.Explanation). Widget keys are built from a ``prefix=`` (the page's
name), so each page keeps its own keys: ``{prefix}_json``, ``{prefix}_target``, ...
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import streamlit as st

from core.audio.decode import SAMPLE_RATE
from core.detectors.detect import Verdict
from core.engine.results import Analysis
from core.explain.base import Explanation
from core.export import charts, report
from core.export.colours import evidence_colour
from ui import engine
from ui.markup import badge, esc, md  # noqa: F401 (the pages' text helpers)

# "Explain the class" options: widget value -> the engine's target (None = predicted)
TARGET_CHOICES = {"predicted": None, "spoof": "spoof", "bonafide": "bonafide"}
TARGET_WORDS = {"predicted": "predicted", "spoof": "spoof", "bonafide": "bona fide"}


# -------------------------------------------------------------------------- text


def short(sha: str) -> str:
    return sha[:12]


def bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


# ---------------------------------------------------------------- badges, colour


def verdict_style(p_spoof: float) -> str:
    """CSS background and ink of a verdict on the evidence scale (red = spoof)."""
    x = 2 * float(p_spoof) - 1
    ink = "#ffffff" if abs(x) > 0.55 else "#222222"
    return f"background:{evidence_colour(x)};color:{ink}"


def verdict_word(label: str) -> str:
    return "SPOOF" if label == "spoof" else "BONA FIDE"


_STATUS = {
    "ok": ("ready", "#1a7f37"),
    "missing": ("weights missing", "#9a6700"),
    "not registered": ("not registered yet", "#6e7781"),
    "checksum mismatch": ("checksum mismatch: refused", "#cf222e"),
}


def status_badge(status: str) -> str:
    """A model's weights status as a right-aligned pill (Models page)."""
    text, colour = _STATUS.get(status, (status, "#6e7781"))
    pill = badge(
        text, style=f"background:{colour};color:white;font-size:0.85rem", pill=True
    )
    return f"<div style='text-align:right'>{pill}</div>"


# ------------------------------------------------------------------------ verdicts


def windows_text(verdict: Verdict) -> str:
    """'12 windows', or '120 of 400 windows (30 % of the file)' when capped"""
    n, total = len(verdict.windows), verdict.total_windows
    if n < total:
        return f"{n} of {total} windows ({100 * verdict.coverage:.0f} % of the file)"
    return f"{n} window{'s' if n != 1 else ''}"


def verdict_rows(analysis: Analysis, *, lead: bool = False) -> list[dict]:
    """
    One row per model, narrow enough for a 1024-px screen (the weights' hashes are in
    the exports and on the Models page). ``lead``: the combined verdict calls nothing,
    so each model only "leans".
    """
    return [
        {
            "model": engine.model_name(key),
            "verdict": ("leans " if lead else "") + ("spoof" if v.label == "spoof" else "bona fide"),
            "P(spoof)": round(v.p_spoof, 3),
            "max window": round(v.max_p_spoof, 3),
            "windows": windows_text(v),
        }
        for key, v in analysis.verdicts.items()
    ]


VERDICT_COLUMNS = {  # px: the table's columns fit 540 px
    "model": st.column_config.TextColumn("model", width=190),
    "verdict": st.column_config.TextColumn("verdict", width=110),
    "P(spoof)": st.column_config.NumberColumn("P(spoof)", width=70, format="%.3f"),
    "max window": st.column_config.NumberColumn(
        "max window", width=80, format="%.3f", help="P(spoof) of the most suspicious window"),
    "windows": st.column_config.TextColumn("windows", width=90),
}  # fmt: skip


def timeline(analysis: Analysis) -> None:
    wins = {engine.model_name(k): v.windows for k, v in analysis.verdicts.items()}
    st.altair_chart(charts.timeline_chart(wins), width="stretch")
    st.caption(
        "Each stroke is one analysis window (models read fixed-length windows with "
        "50 % overlap); its height is that window's P(spoof). Above the dashed line a "
        "model leans spoof. A partly synthetic file shows up as a local peak."
    )


def window_label(verdict: Verdict, i: int) -> str:
    """the picker's label of window i (its index among all the file's windows)"""
    w = verdict.window_at(i)
    if w is None:
        return f"#{i}"
    return f"#{i}: {w.start:.2f}-{w.end:.2f} s, P(spoof) {w.p_spoof:.3f}"


def target_select(container, *, prefix: str, default: str = "predicted") -> str | None:
    """The "Explain the class" picker; returns the engine's target (None: predicted)."""
    options = list(TARGET_CHOICES)
    chosen = container.selectbox(
        "Explain the class",
        options,
        index=options.index(default),
        format_func=TARGET_WORDS.get,
        key=f"{prefix}_target",
    )
    return TARGET_CHOICES[chosen]


# -------------------------------------------------------------------- the audio


def audio_header(analysis: Analysis) -> None:
    names = list(analysis.filenames) or [analysis.filename]
    st.subheader(f":material/audio_file: {md(names[0]) if names[0] else 'Recording'}")
    # three short metrics fit a 1024-px screen; the hash is text, whole, below them
    cols = st.columns(3)
    cols[0].metric("Duration", f"{analysis.duration:.2f} s")
    cols[1].metric("Original rate", f"{analysis.orig_sample_rate / 1000:g} kHz")
    cols[2].metric("Channels", analysis.orig_channels)
    st.caption(f"SHA-256 {analysis.sha256}")
    if len(names) > 1:
        st.caption("Also uploaded as: " + ", ".join(md(n) for n in names[1:]))
    if analysis.near_silent:
        st.warning(
            "This file is near-silent (RMS below -60 dBFS). It was analysed, but the "
            "verdicts say little about speech that is barely there."
        )


def analysis_or_stop(sha: str) -> Analysis:
    """The stored analysis, or a clear message and st.stop() for an unknown hash."""
    found = engine.analysis(sha)
    if found is None:
        unknown_hash(sha)
        st.stop()
    return found


def unknown_hash(sha: str) -> None:
    shown = re.sub(r"[^0-9A-Za-z]", "", sha)[:64] or "(empty)"
    st.error(
        f"No analysis with hash `{shown}` is stored on this server. The link may be "
        "mistyped, the analysis may have been deleted, or it was made on another "
        "server. "
        "Upload the file again to analyse it."
    )


def no_models_message() -> None:
    st.error(
        "No detector is available, so new files cannot be analysed: no model has "
        "verified weights in the server's weights directory (named on the **Models** "
        "page). Install the published AASIST weights "
        "with `python -m core weights fetch aasist-official` (see the **Models** "
        "page). "
        "Stored analyses can still be opened from History."
    )


def mime_type(data: bytes) -> str:
    """The player's MIME type from the file's magic bytes, not its uploaded name."""
    head = data[:12]
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return "audio/wav"


def listen_block(sha: str, expl: Explanation, samples: np.ndarray | None) -> None:
    """The original, and the window with only / without the top three features."""
    st.markdown("##### Listen")
    data = engine.audio_bytes(sha)
    cols = st.columns(3)
    with cols[0]:
        st.caption("Original file")
        if data is not None:
            st.audio(data, format=mime_type(data))
        else:
            st.info("The original audio is no longer stored.")
    if samples is None:
        return
    from core.explain import listenable

    seg = samples[
        int(expl.window_start * SAMPLE_RATE) : int(expl.window_end * SAMPLE_RATE)
    ]
    try:
        kept, complement = listenable(seg, expl, k=3)
    except ValueError as e:  # an explanation without time features cannot be rendered
        with cols[1]:
            st.info(f"No listenable rendering for this explanation: {e}")
        return
    with cols[1]:
        st.caption(f"Only the top 3 features for {expl.target_label} (rest attenuated)")
        st.audio(np.asarray(kept, dtype=np.float32), sample_rate=SAMPLE_RATE)
    with cols[2]:
        st.caption("Everything except those features")
        st.audio(np.asarray(complement, dtype=np.float32), sample_rate=SAMPLE_RATE)


# ------------------------------------------------------------- explanations


def explanation_caption(
    expl: Explanation, cached: bool | None, seconds: float | None
) -> str:
    src = ""
    if cached is True:
        src = " · served from the store"
    elif cached is False:
        src = f" · computed in {seconds:.1f} s and stored"
    return (
        f"Explains **{expl.target_label}** (P = {expl.p_target:.3f}) in window "
        f"#{expl.window}, {expl.window_start:.2f}-{expl.window_end:.2f} s · "
        f"{expl.values.size} features ({expl.feature_kind}){src}"
    )


QUALITY_TEXT = {
    "r2": "surrogate fit R² {:.2f}",
    "r2_heldout": "held-out R² {:.2f}",
    "stability": "rank agreement of two halves {:.2f}",
    "completeness_gap": "completeness gap {:.3g}",
    "deletion_auc": "deletion area {:.3f}",
    "deletion_auc_random": "random-order area {:.3f}",
}


def quality_line(expl: Explanation) -> str:
    """The few quality measures an analyst needs, in words."""
    q = expl.quality or {}
    parts = [
        t.format(q[k])
        for k, t in QUALITY_TEXT.items()
        if isinstance(q.get(k), (int, float))
    ]
    if not parts:
        return "No quality measures were recorded."
    line = (
        "Quality: "
        + " · ".join(parts)
        + " (a smaller deletion area than random = faithful)."
    )
    if q.get("estimator") == "exact":
        line += " Exact Shapley values (every coalition evaluated): no sampling error."
    if q.get("top3_stable") is False:
        line += (
            " **Rankings unstable**: two independent halves of the samples disagree on "
            "the top three features; raise the sample count or use fewer segments."
        )
    return line


def progress_callback(status, *, label: str = ""):
    """A progress(fraction, message) callback drawing into an st.status box."""
    bar = status.progress(0.0, text=label or "starting…")

    def progress(fraction: float, message: str = "") -> None:
        text = f"{label} {message}".strip()
        bar.progress(float(min(max(fraction, 0.0), 1.0)), text=text)

    return progress


# ------------------------------------------------------------------------ export


def export_buttons(
    analysis: Analysis,
    explanations: list[Explanation],
    *,
    share: str | None,
    prefix: str,
) -> None:
    """JSON and HTML downloads of the analysis with every stored explanation."""
    doc = report.analysis_doc(analysis, explanations, share_url=share)
    stem = Path((list(analysis.filenames) or [analysis.filename])[0]).stem or "analysis"
    name = f"{stem}-{short(analysis.sha256)}"
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download JSON",
        report.json_bytes(doc),
        file_name=f"{name}.json",
        icon=":material/download:",
        mime="application/json",
        key=f"{prefix}_json",
        width="stretch",
    )
    c2.download_button(
        "Download HTML report",
        report.html_report(doc).encode("utf-8"),
        file_name=f"{name}.html",
        icon=":material/download:",
        mime="text/html",
        key=f"{prefix}_html",
        width="stretch",
    )
    st.caption(
        "Both hold the file's SHA-256, every verdict with its model's weights hash, "
        "and "
        f"{len(explanations)} stored explanation(s). The HTML report is a single file "
        "that opens offline and prints well for case files."
    )
