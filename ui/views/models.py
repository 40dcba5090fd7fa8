"""The Models page: one card per registered detector: what it is, where its weights
come from, how well it measured and what it cannot do. The cards' content (EER figures,
limits, model card text) is core.engine.cards'; this module only lays it out.
"""

from __future__ import annotations

import streamlit as st

from core.detectors.registry import user_registry_problems as registry_problems
from core.detectors.registry import weights_dir
from ui import engine, verdict, widgets
from ui.markup import without_paths


NOT_READY = {
    "missing": "Not installed.",
    "checksum mismatch": "The installed file does not match its SHA-256: refused.",
    "not registered": "No weights are registered for it yet.",
}


def render() -> None:
    # ready models first, then the rest in registry order
    cards = sorted(engine.model_cards(), key=lambda c: c["status"] != "ok")
    ready = [c for c in cards if c["status"] == "ok"]
    st.caption(
        f"{len(ready)} of {len(cards)} models ready on this server · weights "
        f"directory `{weights_dir()}`"
    )
    if not ready:
        st.error(
            "No model is ready, so uploads cannot be analysed yet. Install weights as "
            "each card below says."
        )
    for problem in registry_problems():
        st.error(f"User model registry: {without_paths(problem)}")
    for card in cards:
        model_card(card)
    verdict.calibration_section()


def model_card(card: dict) -> None:
    """One bordered card; ``card`` is one entry of core.engine.cards.model_cards()."""
    with st.container(border=True):
        head, badge = st.columns([5, 2])
        head.subheader(card["display_name"])
        head.caption(
            f"key `{card['key']}` · architecture `{card['arch']}` · "
            f"{card['frontend']} front end · scores in {card['arithmetic']} on this server"
        )
        badge.markdown(widgets.status_badge(card["status"]), unsafe_allow_html=True)
        if card["status"] != "ok":
            # beside the badge: what makes this model usable (e.g. the published AASIST
            # checkpoints load unchanged only once `weights fetch` has installed them)
            why = NOT_READY.get(card["status"], "Not usable.")
            head.markdown(
                f":orange[**{why}**] Install it with `{card['how_to_get']}`; the file is "
                "checked against the SHA-256 below before it is ever loaded."
            )
        if card.get("origin") == "user":
            badge.markdown(
                widgets.badge("user-added", style="background:#6a4c93;color:#fff", pill=True),
                unsafe_allow_html=True,
            )

        left, right = st.columns(2)
        with left:
            st.markdown("**Architecture**")
            st.write(card["paper"])
            # the card's "n_samples" is the spec's input_length (its JSON name)
            st.write(
                f"Reads {card['window_seconds']:.2f} s windows "
                f"({card['n_samples']:,} samples at 16 kHz) every "
                f"{card['hop_seconds']:.2f} s; the file score is the mean window "
                "P(spoof)."
            )
            st.markdown("**Measured error rates**")
            st.markdown(
                widgets.bullets(card["eers"])
                or "No measurement recorded for these weights yet."
            )
        with right:
            st.markdown("**Weights and provenance**")
            st.write(card["provenance"])
            st.markdown(f"File `{card['weights']}`, SHA-256:")
            st.code(card["sha256"] or "(none registered yet)", language=None)
            st.markdown("**Limits**")
            st.markdown(widgets.bullets(card["limits"]))
        if card["model_card"]:
            with st.expander("Model card (weights/MODEL_CARD.md)"):
                st.markdown(card["model_card"])
        with st.expander("Registry entry (JSON)"):
            st.json(card["spec"], expanded=False)
