"""Compare: one file, every model x every method, and how much they agree."""

import streamlit as st

import ui

ui.page_setup("compare")
st.title("Compare models and methods")
st.write(
    "One recording, every installed model and every explanation method side by side. "
    "If the methods point at the same moments, the explanation is more trustworthy; "
    "if the models agree, the verdict is."
)

sha = ui.pick_analysis(key="compare")
if sha is None:
    st.stop()
analysis = ui.analysis_or_stop(sha)

ui.audio_header(analysis)
st.header("Verdicts")
st.dataframe(ui.verdict_rows(analysis), hide_index=True, width="stretch")
ui.timeline(analysis)

st.header("Explanations grid")
plan = ui.compare_plan(analysis, key="compare")
grid = ui.compare_grid(analysis, plan, key="compare")

st.header("Agreement")
st.write(
    "Spearman rank correlation (ρ) of the segment attributions, signed as evidence for "
    "spoof: +1 = the same ranking of moments, 0 = unrelated, −1 = opposite."
)
ui.agreement_section(grid, plan)
st.divider()
ui.share_box(ui.share_url(sha, page="compare"), label="Link to this comparison")
