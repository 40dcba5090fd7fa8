"""Page bodies, one module per page; each has ``render()``, which pages/*.py call after
ui.gate.page_setup(). Widget keys start with the page's name (``PREFIX``)."""
