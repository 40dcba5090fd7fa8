"""Compare: one file, every model x every method, and how much they agree
(ui.views.compare)."""

from ui.gate import page_setup

page_setup("compare")
from ui.views import compare  # noqa: E402 (after the gate: it draws before heavy imports)

compare.render()
