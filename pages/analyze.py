"""Analyze: upload a recording, get every model's verdict, then ask why
(ui.views.analyze)."""

from ui.gate import page_setup

page_setup("analyze")
from ui.views import analyze  # noqa: E402 (after the gate: it draws before heavy imports)

analyze.render()
