"""Entry point of the analyst dashboard: `streamlit run streamlit_app.py`.

Two roles, told apart by ``__name__``:

- Server (imported as the module ``streamlit_app``): `streamlit run` finds ``app`` below
  (Streamlit's st.App for this same file) and serves it; ui.guard's options put the
  server-side half of the access gate in place before the first request: uploads, cache
  clearing and every other message a browser sends are refused until its session passed
  the gate.
- Page router (every script run; Streamlit runs the entry as ``__main__``, and so does
  AppTest): st.navigation registers the pages of ui.PAGES under stable URLs (Analyze is
  the root, so a share link is /?sha=...). Every page script starts with
  ui.gate.page_setup(), which asks for the access password when one is configured and
  draws the shared sidebar: the gate lives in the pages, not here, because Streamlit
  runs a script in pages/ directly (its legacy folder routing) on the first run of a
  server process, before any st.navigation call. For the same reason the sidebar menu
  is drawn by ui.gate.sidebar() (client.showSidebarNavigation is off), so each page is
  listed exactly once.
"""

import streamlit as st

import ui

if __name__ == "__main__":
    pages = [
        # the tab icon is ui.FAVICON: a :material/...: one is fetched from the internet
        st.Page(p.file, title=p.title, icon=ui.FAVICON, url_path=p.url_path or None,
                default=not p.url_path)
        for p in ui.PAGES.values()
    ]  # fmt: skip
    st.navigation(pages, position="hidden").run()
else:
    from ui import guard

    app = st.App(__file__, **guard.app_options())  # `streamlit run` looks for st.App
