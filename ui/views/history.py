"""The History page: every analysis stored on this server; search, filter, reopen,
share, delete (with a confirmation).

History items are the store's rows (core.store.list_history): one per audio, with its
newest verdict per model under ``predictions``.
"""

from __future__ import annotations

import streamlit as st

from core.judgement.combined import BAND_LABELS
from core.store import StoreError
from ui import PAGES, engine, widgets
from ui.links import share_box, share_url
from ui.markup import without_paths
from ui.verdict import band_badge

PREFIX = "history"
PAGE_SIZE = 25
HISTORY_SORTS = {
    "last_seen": "last seen",
    "first_seen": "first seen",
    "filename": "file name",
    "duration": "duration",
    "size": "file size",
    "p_spoof": "highest P(spoof)",
}
LABELS = {"any": "any", "spoof": "spoof", "bonafide": "bona fide"}
BANDS = {"any": "any", **BAND_LABELS}


def render() -> None:
    p = PREFIX
    c1, c0, c2, c3 = st.columns([3, 2, 2, 3])
    search = c1.text_input(
        "Search file names", key=f"{p}_search", placeholder="e.g. call_0412"
    )
    band = c0.selectbox(
        "Combined verdict", list(BANDS), key=f"{p}_band", format_func=BANDS.get
    )
    label = c2.selectbox(
        "Some model said", list(LABELS), key=f"{p}_label", format_func=LABELS.get
    )
    model = c3.selectbox(
        "By model",
        ["any", *engine.registered_models()],
        key=f"{p}_model",
        format_func=lambda k: "any model" if k == "any" else engine.model_name(k),
    )
    c4, c5, c6, c7 = st.columns([2, 2, 3, 2])
    since = c4.date_input("Seen since", value=None, key=f"{p}_since")
    until = c5.date_input("Seen until", value=None, key=f"{p}_until")
    sort = c6.selectbox(
        "Sort by", list(HISTORY_SORTS), key=f"{p}_sort", format_func=HISTORY_SORTS.get
    )
    descending = c7.toggle("Descending", value=True, key=f"{p}_desc")

    page_no = max(1, int(st.session_state.get(f"{p}_page", 1)))
    result = history_page(
        search=search,
        band=band,
        label=label,
        model=model,
        since=since,
        until=until,
        sort=sort,
        descending=descending,
        page=page_no,
        page_size=PAGE_SIZE,
    )
    if result is None:
        st.stop()
    if result.total == 0:
        st.info(
            "No analysis matches. Upload a file on **Analyze** to start the history."
        )
        st.stop()

    pages = max(1, -(-result.total // PAGE_SIZE))
    if page_no > pages:  # the filters changed under a later page: back to the last one
        st.session_state[f"{p}_page"] = pages
        st.rerun()
    st.caption(
        f"{result.total} analys{'is' if result.total == 1 else 'es'} · "
        f"page {page_no} of {pages}"
    )
    frame = history_frame(result.items)
    st.dataframe(
        frame, hide_index=True, width="stretch", column_config=history_columns(frame)
    )
    if pages > 1:
        st.number_input("Page", 1, pages, key=f"{p}_page")

    st.subheader("Open, share or delete")
    items = {item["sha256"]: item for item in result.items}
    chosen = st.selectbox(
        "Analysis",
        list(items),
        key=f"{p}_chosen",
        format_func=lambda s: f"{items[s]['filename'] or '(unnamed)'} · "
        f"{widgets.short(s)}",
    )
    item = items[chosen]
    st.markdown(history_verdict_line(item), unsafe_allow_html=True)
    b1, b2 = st.columns([2, 3])
    if b1.button("Open in Analyze", type="primary", key=f"{p}_open"):
        st.switch_page(PAGES["analyze"].file, query_params={"sha": chosen})
    b2.page_link(
        PAGES["compare"].file,
        label="Compare models and methods on it",
        icon=":material/compare_arrows:",
        query_params={"sha": chosen},
    )
    share_box(share_url(chosen))
    delete_with_confirmation(chosen, item["filename"], prefix=p)


def history_page(
    *, search, band="any", label, model, since, until, sort, descending, page, page_size
):
    """One page of the store's history, or None after showing why it failed."""
    if since and until and since > until:
        st.error("'Seen since' is after 'Seen until': no analysis can match.")
        return None
    try:
        return engine.history(
            filename=search.strip() or None,
            band=None if band == "any" else band,
            label=None if label == "any" else label,
            model=None if model == "any" else model,
            since=since or None,
            until=until or None,
            sort=sort,
            descending=descending,
            limit=page_size,
            offset=(max(int(page), 1) - 1) * page_size,
        )
    except (StoreError, ValueError) as e:
        st.error(f"The history could not be read: {without_paths(e)}")
        return None


def history_frame(items: list[dict]):
    """
    One row per analysis, narrow enough for a 1024-px screen with the sidebar open and
    three models: a link, the file, the combined verdict, P(spoof) per model (headed
    by its short key), when it was last seen. Duration, hash and explanations are in the
    line under the table for the chosen analysis.
    """
    import pandas as pd

    # every model any row has, in the registry's order, so the columns stay put
    known = list(engine.registered_models())
    models = sorted({k for it in items for k in it.get("predictions") or {}},
                    key=lambda k: (known.index(k) if k in known else len(known), k))  # fmt: skip
    rows = []
    for it in items:
        preds = it.get("predictions") or {}
        rows.append({
            "open": share_url(it["sha256"]),
            "file": it.get("filename") or "",
            "combined": _combined_text(it.get("combined")),
            **{k: f"{float(preds[k]['p_spoof']):.2f}" if k in preds else "–" for k in models},
            "last seen": (it.get("last_seen") or "")[:10],
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["open", "file", "combined", *models, "last seen"])


def _combined_text(c: dict | None) -> str:
    if not c:
        return ""
    shown = c["p_spoof"] is not None and c["band"] != "too_short"
    p = f" {c['p_spoof']:.2f}" if shown else ""
    return c["label"] + p + (" · disagree" if c["models_disagree"] else "")


def history_columns(frame) -> dict:
    """column widths (px) that keep the table inside its container; help on each"""
    columns = {
        "open": st.column_config.LinkColumn(
            "link", display_text="↗", width=40, help="opens this analysis (a share link)"
        ),
        "file": st.column_config.TextColumn("file", width=128),
        "combined": st.column_config.TextColumn(
            "combined", width=130, help="the combined verdict and its calibrated P(spoof)"
        ),
        "last seen": st.column_config.TextColumn("seen", width=84, help="last seen (UTC date)"),
    }
    for key in frame.columns:
        if key not in columns:
            columns[key] = st.column_config.TextColumn(
                key, width=56,
                help=f"P(spoof) of {engine.model_name(key)}; 0.5 or more: it says spoof",
            )  # fmt: skip
    return columns


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ") + (" UTC" if iso else "")


def history_verdict_line(item: dict) -> str:
    """
    The chosen analysis' verdicts as badges (the models' muted, as leads, when the
    combined verdict is too short or uncertain), and what is known of the file (HTML).
    """
    from ui.verdict import LEAD_BANDS, MUTED_STYLE

    c = item.get("combined")
    parts = [band_badge(c["band"], None if c["band"] == "too_short" else c["p_spoof"])] if c else []
    lead = bool(c) and c["band"] in LEAD_BANDS
    for key, p in (item.get("predictions") or {}).items():
        word = widgets.verdict_word(p["label"])
        style = widgets.verdict_style(float(p["p_spoof"]))
        if lead:
            word, style = f"leans {word.lower()}", MUTED_STYLE
        parts.append(widgets.badge(
            f"{engine.model_name(key)}: {word} {float(p['p_spoof']):.2f}", style=style
        ))  # fmt: skip
    names = ", ".join(item.get("filenames") or [item.get("filename") or ""])
    return (
        f"<div style='margin:0.3rem 0 0.6rem 0'>{''.join(parts) or 'no verdicts'}</div>"
        f"<div style='font-size:0.85rem;color:#666'>uploaded as {widgets.esc(names)} · "
        f"{float(item.get('duration') or 0):.2f} s · "
        f"{int(item.get('n_explanations') or 0)} explanation(s) stored · first seen "
        f"{_when(item.get('first_seen'))}"
        f"<br>SHA-256 <code style='word-break:break-all'>{widgets.esc(item['sha256'])}</code>"
        "</div>"
    )


def delete_with_confirmation(sha: str, filename: str, *, prefix: str) -> None:
    """A Delete button that asks once more before removing everything about the file."""
    if st.session_state.get(f"{prefix}_confirm") != sha:
        if st.button(
            "Delete this analysis…", icon=":material/delete:", key=f"{prefix}_delete"
        ):
            st.session_state[f"{prefix}_confirm"] = sha
            st.rerun()
        return
    shown = widgets.md(filename) or widgets.short(sha)
    st.warning(
        f"Delete **{shown}** ({widgets.short(sha)})? Its stored audio, verdicts and "
        "explanations are removed for everyone, and its share links stop working."
    )
    c1, c2, _ = st.columns([1, 1, 4])
    if c1.button("Yes, delete", type="primary", key=f"{prefix}_delete_yes"):
        engine.delete(sha)
        st.session_state.pop(f"{prefix}_confirm", None)
        st.session_state.pop(f"{prefix}_chosen", None)
        st.toast(f"Deleted {shown}")
        st.rerun()
    if c2.button("Cancel", key=f"{prefix}_delete_no"):
        st.session_state.pop(f"{prefix}_confirm", None)
        st.rerun()
