"""Analyze: upload a recording, get every model's verdict, then ask why
(ui.views.analyze)."""

from ui.gate import page_setup
from ui.views import analyze

page_setup("analyze")
analyze.render()
