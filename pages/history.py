"""History: every analysis stored on this server; search, filter, reopen, share, delete
(ui.views.history)."""

from ui.gate import page_setup

page_setup("history")
from ui.views import history  # noqa: E402 (after the gate: it draws before heavy imports)

history.render()
