"""Compare: one file, every model x every method, and how much they agree
(ui.views.compare)."""

from ui.gate import page_setup
from ui.views import compare

page_setup("compare")
compare.render()
