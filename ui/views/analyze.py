"""The Analyze page: upload (or open by ?sha=), every model's verdict, then why.

An upload is analysed once per session (rerunning with the same upload reuses it), and
the address bar becomes the analysis' share link.
"""

from __future__ import annotations

import streamlit as st

from core.audio.decode import AudioError
from core.detectors.registry import WeightsError
from core.engine.compute import ComputeUnavailable
from core.store import StoreError
from ui import engine, verdict, widgets
from ui.links import share_box, share_url
from ui.markup import without_paths
from ui.views.explanation import (
    explanation_controls,
    explanation_on_demand,
    explanation_view,
)

UPLOAD_TYPES = ["wav", "flac", "mp3", "ogg"]
PREFIX = "analyze"


def render() -> None:
    models_ready = engine.model_keys()
    if not models_ready:
        widgets.no_models_message()

    upload = st.file_uploader(
        "Audio file",
        type=UPLOAD_TYPES,
        key=f"{PREFIX}_upload",
        disabled=not models_ready,
        help=f"wav, flac, mp3 or ogg, up to {engine.max_upload_mb()} MB. The file is "
        "kept on this server under its SHA-256 so the analysis can be reopened and "
        "shared.",
    )
    sha = analyze_from_upload(upload) if upload is not None else None
    sha = sha or st.query_params.get("sha")
    if not sha:
        st.info(
            "Upload a file to start, or open a past analysis from **History**. "
            "Results are stored, so a file analysed before opens instantly."
        )
        st.stop()

    analysis = widgets.analysis_or_stop(sha)
    widgets.audio_header(analysis)
    st.header("1 · Verdicts")
    verdict.combined_card(analysis)
    verdict.warnings_block(analysis)
    st.markdown("##### Per model")
    verdict.verdict_cards(analysis)
    st.markdown("##### P(spoof) over time")
    widgets.timeline(analysis)

    st.header("2 · Why: explanations")
    view = explanation_controls(analysis, prefix=PREFIX)
    expl = explanation_on_demand(view, prefix=PREFIX)
    if expl is not None:
        explanation_view(analysis.sha256, expl)

    st.header("3 · Share and export")
    share = share_url(analysis.sha256, **view.share_params())
    share_box(share)
    widgets.export_buttons(
        analysis, engine.explanations(analysis.sha256), share=share, prefix=PREFIX
    )


def analyze_from_upload(upload) -> str | None:
    """
    Analyse a newly uploaded file once (verdicts with progress in an st.status box),
    point the URL at it, and return its SHA-256; None when it could not be analysed
    (the reason is shown). Reruns with the same upload reuse the result.
    """
    done = st.session_state.setdefault(f"{PREFIX}_done", {})
    if upload.file_id in done:
        return done[upload.file_id]
    sha = analyze_and_report(upload.getvalue(), upload.name)
    if sha is None:
        return None
    done[upload.file_id] = sha
    # the URL becomes this analysis' share link; an old view's parameters go
    st.query_params.clear()
    st.query_params["sha"] = sha
    return sha


def analyze_and_report(data: bytes, filename: str) -> str | None:
    """The upload flow without the widget: (bytes, name) -> sha256, or None + why."""
    n_models = len(engine.model_keys())
    name = widgets.md(filename)
    with st.status(
        f"Scoring {name} with {n_models} model(s)…", expanded=True
    ) as status:
        progress = widgets.progress_callback(status)
        try:
            analysis = engine.analyze_upload(data, filename, progress=progress)
        except AudioError as e:
            status.update(
                label=f"Could not analyse {name}", state="error", expanded=True
            )
            st.error(f"**{name}** could not be analysed: {without_paths(e)}.")
            return None
        except (WeightsError, StoreError, ComputeUnavailable) as e:
            status.update(
                label=f"Could not analyse {name}", state="error", expanded=True
            )
            st.error(f"The server could not analyse **{name}**: {without_paths(e)}")
            if isinstance(e, ComputeUnavailable):
                st.button("Try again", key="analyze_retry", icon=":material/refresh:")
            return None
        how = "served from the store" if all(analysis.cached.values()) else "scored"
        status.update(
            label=f"Verdicts ready for {name} ({how})", state="complete", expanded=False
        )
    return analysis.sha256
