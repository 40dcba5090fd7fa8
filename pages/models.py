"""Models: one card per registered detector: what it is, where its weights come from,
how well it measured, and what it cannot do (ui.views.models)."""

from ui.gate import page_setup

page_setup("models")
from ui.views import models  # noqa: E402 (after the gate: it draws before heavy imports)

models.render()
