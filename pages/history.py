"""History: every analysis stored on this server; search, filter, reopen, share, delete."""

import streamlit as st

import ui

ui.page_setup("history")
st.title("History")
st.write(
    "Every file analysed on this server, newest first. Opening one restores its view "
    "from the store at once: no model runs again."
)

c1, c2, c3 = st.columns([3, 2, 3])
search = c1.text_input("Search file names", key="history_search", placeholder="e.g. call_0412")
label = c2.selectbox(
    "Verdict", ["any", "spoof", "bonafide"], key="history_label",
    format_func=lambda x: {"any": "any", "spoof": "spoof", "bonafide": "bona fide"}[x],
)
model = c3.selectbox(
    "By model", ["any", *ui.MODELS], key="history_model",
    format_func=lambda k: "any model" if k == "any" else ui.model_name(k),
)
c4, c5, c6, c7 = st.columns([2, 2, 3, 2])
since = c4.date_input("Seen since", value=None, key="history_since")
until = c5.date_input("Seen until", value=None, key="history_until")
sort = c6.selectbox(
    "Sort by", list(ui.HISTORY_SORTS), key="history_sort", format_func=ui.HISTORY_SORTS.get
)
descending = c7.toggle("Descending", value=True, key="history_desc")

page_size = 25
page_no = max(1, int(st.session_state.get("history_page", 1)))
result = ui.history_page(
    search=search, label=label, model=model, since=since, until=until, sort=sort,
    descending=descending, page=page_no, page_size=page_size,
)
if result is None:
    st.stop()
if result.total == 0:
    st.info("No analysis matches. Upload a file on **Analyze** to start the history.")
    st.stop()

pages = max(1, -(-result.total // page_size))
if page_no > pages:  # the filters changed under a later page: back to the last one
    st.session_state["history_page"] = page_no = pages
    st.rerun()
st.caption(f"{result.total} analys{'is' if result.total == 1 else 'es'} · page {page_no} of {pages}")
st.dataframe(
    ui.history_frame(result.items),
    hide_index=True,
    width="stretch",
    column_config=ui.history_columns(),
)
if pages > 1:
    st.number_input("Page", 1, pages, key="history_page")

st.subheader("Open, share or delete")
items = {item["sha256"]: item for item in result.items}
chosen = st.selectbox(
    "Analysis", list(items), key="history_chosen",
    format_func=lambda s: f"{items[s]['filename'] or '(unnamed)'} · {ui.short(s)}",
)
item = items[chosen]
st.markdown(ui.history_verdict_line(item), unsafe_allow_html=True)
b1, b2 = st.columns([1, 4])
if b1.button("Open in Analyze", type="primary", key="history_open"):
    st.switch_page(ui.PAGE_FILES["analyze"], query_params={"sha": chosen})
b2.page_link(ui.PAGE_FILES["compare"], label="Compare models and methods on it",
             icon=":material/compare_arrows:", query_params={"sha": chosen})
ui.share_box(ui.share_url(chosen))

ui.delete_with_confirmation(chosen, item["filename"], key="history")
