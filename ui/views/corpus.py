"""The Corpus page: a batch run over a labelled protocol (python -m core batch): the EER
per attack, where each model's evidence sits per attack, exports, and every file.

The aggregation is core.corpus.summary's (through the engine); this module lays it out.
"""

from __future__ import annotations

import streamlit as st

from core.store import StoreError
from ui import engine
from ui.links import index_in, query_str, share_url
from ui.markup import without_paths

PREFIX = "corpus"


def render() -> None:
    try:
        batches = engine.batches()
    except StoreError as e:
        st.error(without_paths(e))
        st.stop()
    if not batches:
        st.info(
            "No batch in the store yet. Run `python -m core batch ...` against this "
            f"store (`{engine.db_path()}`) and reload."
        )
        st.stop()

    names = [b["name"] for b in batches]
    name = st.selectbox(
        "Batch", names, index=index_in(names, query_str("batch")), key=f"{PREFIX}_batch"
    )
    batch = next(b for b in batches if b["name"] == name)
    st.caption(
        f"{batch['n_files']} files · {batch['n_failed']} failed · models "
        f"{', '.join(batch['models'])} · explanations "
        f"{', '.join(batch['methods']) or 'none'}"
        f" · protocol `{batch['protocol']}` · updated {batch['updated'][:19]}"
    )
    if not batch["n_files"]:
        st.info("This batch has no files recorded yet: it may still be starting.")
        st.stop()
    with st.spinner("Aggregating stored results…"):
        summary = engine.corpus_summary(name, batch["updated"])

    st.subheader("Equal error rate per attack")
    st.caption(
        "Each attack's spoofs against all bona fide files of the batch; `all` pools "
        "every attack. Lower is better; 50 % is chance."
    )
    if summary.eer:
        st.dataframe(eer_frame(summary), hide_index=True, width="stretch")
    else:
        st.warning("EER needs stored scores of both classes.")

    st.subheader("Where the evidence sits, per attack")
    pairs = sorted({(p.model, p.method) for p in summary.profiles})
    if not pairs:
        st.info(
            "No explanation is stored for this batch's files, so there is no map to draw. "
            "Rerun it with `python -m core batch ... --explain shap` (or another method "
            "name): files already scored are not scored again."
        )
    else:
        if not batch["methods"]:
            st.caption(
                "This batch was run without `--explain`; the maps use explanations stored "
                "for its files from elsewhere (the dashboard, `analyze --explain`)."
            )
        left, right = st.columns(2)
        model = left.selectbox(
            "Model",
            sorted({m for m, _ in pairs}),
            format_func=engine.model_name,
            key=f"{PREFIX}_model",
        )
        method = right.selectbox(
            "Method",
            sorted({k for m, k in pairs if m == model}),
            format_func=engine.method_label,
            key=f"{PREFIX}_method",
        )
        attack_maps(summary, model, method)

    st.subheader("Export")
    downloads(summary, name)
    st.subheader("Files")
    files_table(name)


def eer_frame(summary):
    import pandas as pd

    df = pd.DataFrame(summary.eer)
    df["model"] = df["model"].map(engine.model_name)
    return df.rename(
        columns={"eer_percent": "EER %", "n_bonafide": "bona fide", "n_spoof": "spoof"}
    )


def attack_maps(summary, model: str, method: str) -> None:
    from core.export import corpus_charts

    df = corpus_charts.time_profile_frame(summary, model, method)
    st.markdown(
        "**Over time** (relative position in the explained window, the most "
        "suspicious one by default)"
    )
    if df.empty:
        st.info(f"No {engine.method_label(method)} explanation of "
                f"{engine.model_name(model)} is stored for this batch's files.")  # fmt: skip
        return
    st.altair_chart(corpus_charts.time_heatmap(df), width="stretch")
    fdf = corpus_charts.frequency_profile_frame(summary, model, method)
    if not fdf.empty:
        st.markdown("**Over frequency** (CQT patches, summed over time)")
        st.altair_chart(corpus_charts.frequency_heatmap(fdf), width="stretch")
    st.caption(
        "Each file's attributions are turned into evidence for spoof, normalised "
        "to unit total magnitude, then averaged over the attack's files."
    )


def downloads(summary, name: str) -> None:
    from core.corpus.summary import summary_json

    a, b, c = st.columns(3)
    a.download_button(
        "EER table (CSV)", summary.eer_csv(), f"{name}-eer.csv", "text/csv"
    )
    b.download_button(
        "Profiles (CSV)", summary.profiles_csv(), f"{name}-profiles.csv", "text/csv"
    )
    c.download_button(
        "Everything (JSON)",
        summary_json(summary),
        f"{name}-summary.json",
        "application/json",
    )


def files_table(name: str) -> None:
    import pandas as pd

    df = pd.DataFrame(
        [
            {
                "file": r["file_id"],
                "system": r["system"],
                "key": r["key"],
                "status": r["status"],
                "error": r["error"] or "",
                "open": share_url(r["sha256"]) if r["sha256"] else None,
            }
            for r in engine.batch_files(name)
        ],
        columns=["file", "system", "key", "status", "error", "open"],
    )
    status = st.segmented_control(
        "Show", ["all", "done", "failed"], default="all", key=f"{PREFIX}_status"
    )
    if status and status != "all":
        df = df[df["status"] == status]
    st.dataframe(
        df,
        hide_index=True,
        width="stretch",
        column_config={
            "open": st.column_config.LinkColumn("analysis", display_text="open")
        },
    )
