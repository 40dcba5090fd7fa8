"""Analyze: upload a recording, get every model's verdict, then ask why."""

import streamlit as st

import ui

ui.page_setup("analyze")
st.title("Analyze a recording")
st.write(
    "Upload speech to check whether it is synthetic. Every installed detector scores "
    "it window by window; then pick a model and an explanation method to see which "
    "parts of the audio drove the verdict."
)
models_ready = ui.model_keys()
if not models_ready:
    ui.no_models_message()

upload = st.file_uploader(
    "Audio file",
    type=ui.UPLOAD_TYPES,
    key="analyze_upload",
    disabled=not models_ready,
    help=f"wav, flac, mp3 or ogg, up to {ui.max_upload_mb()} MB. The file is kept on "
    "this server under its SHA-256 so the analysis can be reopened and shared.",
)
sha = ui.analyze_from_upload(upload) if upload is not None else None
sha = sha or st.query_params.get("sha")
if not sha:
    st.info(
        "Upload a file to start, or open a past analysis from **History**. "
        "Results are stored, so a file analysed before opens instantly."
    )
    st.stop()

analysis = ui.analysis_or_stop(sha)

ui.audio_header(analysis)
st.header("1 · Verdicts")
ui.verdict_cards(analysis)
st.markdown("##### P(spoof) over time")
ui.timeline(analysis)

st.header("2 · Why: explanations")
view = ui.explanation_controls(analysis, key="analyze")
expl = ui.explanation_on_demand(analysis.sha256, view, key="analyze")
if expl is not None:
    ui.explanation_view(analysis.sha256, expl, key="analyze")

st.header("3 · Share and export")
share = ui.share_url(analysis.sha256, **view.share_params())
ui.share_box(share)
ui.export_buttons(analysis, ui.stored_explanations(analysis.sha256), share=share, key="analyze")
