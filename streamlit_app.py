"""Entry point of the analyst dashboard: `streamlit run streamlit_app.py`.

A router only. st.navigation registers the pages of ui.PAGES under stable URLs (Analyze
is the root, so a share link is /?sha=...). Every page script starts with
ui.gate.page_setup(), which asks for the access password when one is configured and draws
the shared sidebar: the gate lives in the pages, not here, because Streamlit runs a
script in pages/ directly (its legacy folder routing) on the first run of a server
process, before any st.navigation call. For the same reason the sidebar menu is drawn by
ui.gate.sidebar() (client.showSidebarNavigation is off), so each page is listed exactly once.
"""

import streamlit as st

import ui

pages = [
    # the tab icon is ui.FAVICON: a :material/...: one is fetched from the internet
    st.Page(p.file, title=p.title, icon=ui.FAVICON, url_path=p.url_path or None,
            default=not p.url_path)
    for p in ui.PAGES.values()
]
st.navigation(pages, position="hidden").run()
