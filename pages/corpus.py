"""Corpus: a batch run over a labelled protocol (python -m core batch): per-attack EER
and per-attack attribution maps, and a way into every file's analysis."""

import streamlit as st

import ui

ui.page_setup("corpus")
st.title("Corpus")
st.write(
    "Screen a labelled collection: run `python -m core batch --protocol P --audio-dir D "
    "[--explain shap,gradcam,lime]` (locally or on a Ray cluster), then read here how well "
    "each model separates each attack from bona fide speech and **where** its evidence "
    "sits on average for that attack."
)

batches = ui.corpus_batches()
if not batches:
    st.info("No batch in the store yet. Run `python -m core batch ...` against this "
            f"store (`{ui.db_path() or 'cache/analyses.db'}`) and reload.")
    st.stop()

names = [b["name"] for b in batches]
name = st.selectbox("Batch", names, index=ui.index_of(names, st.query_params.get("batch")),
                    key="corpus_batch")
batch = next(b for b in batches if b["name"] == name)
st.caption(
    f"{batch['n_files']} files · {batch['n_failed']} failed · models "
    f"{', '.join(batch['models'])} · explanations {', '.join(batch['methods']) or 'none'} · "
    f"protocol `{batch['protocol']}` · updated {batch['updated'][:19]}"
)

with st.spinner("Aggregating stored results…"):
    summary = ui.corpus_summary(name, batch["updated"])

st.subheader("Equal error rate per attack")
st.caption("Each attack's spoofs against all bona fide files of the batch; `all` pools "
           "every attack. Lower is better; 50 % is chance.")
if summary.eer:
    st.dataframe(ui.corpus_eer_frame(summary), hide_index=True, use_container_width=True)
else:
    st.warning("EER needs stored scores of both classes.")

st.subheader("Where the evidence sits, per attack")
pairs = sorted({(p.model, p.method) for p in summary.profiles})
if not pairs:
    st.info("This batch has no stored explanations: rerun it with `--explain`.")
else:
    left, right = st.columns(2)
    model = left.selectbox("Model", sorted({m for m, _ in pairs}), format_func=ui.model_name,
                           key="corpus_model")
    method = right.selectbox("Method", sorted({k for m, k in pairs if m == model}),
                             key="corpus_method")
    ui.corpus_maps(summary, model, method)

st.subheader("Export")
ui.corpus_downloads(summary, name)

st.subheader("Files")
ui.corpus_files(name)
