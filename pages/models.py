"""Models: one card per registered detector: what it is, where its weights come from,
how well it measured, and what it cannot do (ui.views.models)."""

from ui.gate import page_setup
from ui.views import models

page_setup("models")
models.render()
