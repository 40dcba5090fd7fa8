"""History: every analysis stored on this server; search, filter, reopen, share, delete
(ui.views.history)."""

from ui.gate import page_setup
from ui.views import history

page_setup("history")
history.render()
