"""One explanation on screen: the pickers that pin it down (kept in the URL, so the
address bar is always its share link), computing it on demand, and its charts.

Used by Analyze (the whole view) and Compare (``compute_explanation``). Method names,
descriptions and costs come from the explainer registry, so a new method needs no edit.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.audio.decode import SAMPLE_RATE
from core.engine.explaining import default_view
from core.engine.results import Analysis
from core.explain.base import Explanation
from core.explain.geometry import is_tiled
from core.explain.notes import reference_line
from core.export import charts
from ui import engine
from ui.links import index_in, query_int, query_str
from ui.markup import without_paths
from ui.widgets import (
    TARGET_CHOICES,
    explanation_caption,
    listen_block,
    md,
    progress_callback,
    quality_line,
    target_select,
    window_label,
)


@dataclass(frozen=True)
class View:
    """What a share link pins down: audio, model, method, window, target."""

    sha: str
    model: str
    method: str
    window: int
    target: str | None  # None = the class the model predicts on that window

    def share_params(self) -> dict:
        return {
            "model": self.model,
            "method": self.method,
            "window": self.window,
            "target": self.target,
        }


def explanation_controls(analysis: Analysis, *, prefix: str) -> View:
    """Model, method, window and target pickers, seeded from and kept in the URL."""
    verdicts = analysis.verdicts
    models = list(verdicts)
    registry = engine.methods()
    method_keys = list(registry)
    link_problems(analysis, models, method_keys)
    # SHAP on the model that agrees best with the combined verdict, unless the URL asks
    default_model, default_method = default_view(analysis, method_keys)
    # two rows of two: the pickers' long values stay whole on a 1024-px screen
    c1, c2 = st.columns([3, 2])
    c3, c4 = st.columns([3, 2])
    model = c1.selectbox(
        "Model",
        models,
        index=index_in(models, query_str("model"), index_in(models, default_model)),
        format_func=engine.model_name,
        key=f"{prefix}_model",
    )
    method = c2.selectbox(
        "Method",
        method_keys,
        index=index_in(
            method_keys, query_str("method"), index_in(method_keys, default_method)
        ),
        format_func=engine.method_label,
        key=f"{prefix}_method",
    )
    verdict = verdicts[model]
    n_windows = len(verdict.windows)
    asked = query_int("window")
    # the scored windows, by their index among all the file's windows (a long file in
    # the dashboard has an evenly spread subset)
    options = [w.index for w in verdict.windows] or [0]
    window = c3.selectbox(
        "Window (default: most suspicious)",
        options,
        index=index_in(
            options,
            asked if asked is not None else verdict.max_window,
            verdict.max_window,
        ),
        format_func=lambda i: window_label(verdict, i) if n_windows else "#0",
        key=f"{prefix}_window_{model}",
    )
    asked_target = query_str("target")
    target = target_select(
        c4,
        prefix=prefix,
        default=asked_target if asked_target in TARGET_CHOICES else "predicted",
    )
    explainer = registry[method]
    st.caption(f"**{explainer.title}**: {explainer.description}")
    caveat = engine.method_caveat(method, model)
    if caveat:
        st.caption(f":orange[{caveat}]")
    view = View(analysis.sha256, model, method, int(window), target)
    # keep the address bar a share link of exactly this view
    st.query_params.update(
        {
            "sha": view.sha,
            **{k: str(v) for k, v in view.share_params().items() if v is not None},
        }
    )
    if view.target is None and "target" in st.query_params:
        del st.query_params["target"]
    return view


def link_problems(
    analysis: Analysis, models: list[str], method_keys: list[str]
) -> None:
    """Say so when a share link asks for a view this analysis does not have."""
    model, method, target = query_str("model"), query_str("method"), query_str("target")
    window = st.query_params.get("window", "")
    problems = []
    if model and model not in models:
        problems.append(f"model {md(model)} did not score this file")
    if method and method not in method_keys:
        problems.append(f"there is no method {md(method)}")
    shown = model if model in models else (models[0] if models else None)
    if shown and window != "":
        v = analysis.verdicts[shown]
        asked = query_int("window")
        if asked is None or v.window_at(asked) is None:
            problems.append(
                f"window {md(window)} does not exist (this model scored "
                f"{len(v.windows)} of {v.total_windows})"
            )
    if target and target not in TARGET_CHOICES:
        problems.append(f"target {md(target)} is not spoof or bonafide")
    if problems:
        st.warning(
            "This link asks for a view that does not exist: "
            + "; ".join(problems)
            + ". Showing the nearest one instead."
        )


def explanation_on_demand(view: View, *, prefix: str) -> Explanation | None:
    """The stored explanation at once, or a button that computes it with progress."""
    cancelled = st.session_state.pop(cancel_flag(view), False)
    expl = engine.find_explanation(
        view.sha, view.model, view.method, window=view.window, target=view.target
    )
    if expl is not None:
        st.success(explanation_caption(expl, True, None), icon=":material/bolt:")
        return expl
    explainer = engine.methods()[view.method]
    # the offer in one slot, emptied once it is taken: nothing says "not computed yet"
    # above the progress and the finished explanation
    slot = st.empty()
    with slot.container():
        if cancelled:
            st.warning(
                f"{explainer.title} was cancelled: nothing was stored, and anyone can "
                "compute it again.",
                icon=":material/cancel:",
            )
        st.info(
            f"{explainer.title} for {engine.model_name(view.model)} on window "
            f"#{view.window} "
            f"has not been computed yet. {estimate_sentence(view)} Once computed it is "
            "stored and "
            "opens instantly for everyone."
        )
        clicked = st.button(
            f"Compute {explainer.title}", type="primary", key=f"{prefix}_compute"
        )
    if not clicked:
        return None
    slot.empty()
    return compute_explanation(view)


def estimate_sentence(view: View) -> str:
    """how long it will take here, from costs measured on this server"""
    a = engine.analysis(view.sha)
    verdict = a.verdicts.get(view.model) if a is not None else None
    estimate = engine.engine().explanation_estimate(view.model, view.method, verdict=verdict)
    return estimate.sentence()


def cancel_flag(view: View) -> str:
    """session-state key set when this view's computation was cancelled"""
    return f"cancelled_{view.sha[:16]}_{view.model}_{view.method}_{view.window}_{view.target}"


def compute_explanation(view: View) -> Explanation | None:
    """``computed`` and a line saying how it came; None (and why) on failure."""
    done = computed(view)
    if done is None:
        return None
    expl, cached, seconds = done
    st.success(explanation_caption(expl, cached, seconds), icon=":material/check_circle:")
    return expl


def computed(
    view: View, *, errors: list[str] | None = None
) -> tuple[Explanation, bool, float] | None:
    """
    Get-or-compute one explanation in an st.status box: (explanation, served from the
    store, seconds), or None (and why) on failure. Its Cancel button reruns the page:
    Streamlit stops this run at the next progress update, the engine drops its claim
    on the result (core.store.flight), and the rerun says it was cancelled instead of
    computing again. ``errors``: each failure's line is also appended there.
    """
    label = f"{engine.method_label(view.method)} · {engine.model_name(view.model)}"
    with st.status(f"Computing {label}…", expanded=True) as status:
        st.button(
            "Cancel", key=f"cancel_{view.method}_{view.model}", icon=":material/cancel:",
            on_click=lambda: st.session_state.update({cancel_flag(view): True}),
        )  # fmt: skip
        progress = progress_callback(status, label=label)
        try:
            expl, cached, seconds = engine.explain(
                view.sha,
                view.model,
                view.method,
                window=view.window,
                target=view.target,
                progress=progress,
            )
        # shown, not raised: one failed method leaves the page usable
        except Exception as e:
            status.update(label=f"{label} failed", state="error")
            st.error(f"{label} could not be computed: {without_paths(e)}")
            if errors is not None:
                errors.append(f"{label}: {without_paths(e)}")
            return None
        how = "from the store" if cached else f"computed in {seconds:.1f} s"
        status.update(
            label=f"{label}: {how}",
            state="complete",
            expanded=False,
        )
    return expl, cached, seconds


def explanation_view(sha: str, expl: Explanation) -> None:
    """Every chart and player for one explanation (Analyze page)."""
    samples = engine.audio_samples(sha)
    start, end = expl.window_start, expl.window_end
    for note in expl.notes:  # core.explain.notes: when the charts may mislead
        st.warning(note, icon=":material/warning:")
    if reference_line(expl):
        st.caption(reference_line(expl))
    st.markdown("##### Waveform with evidence over time")
    if samples is not None:
        seg = samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        st.altair_chart(
            charts.waveform_chart(seg, offset=start, expl=expl), width="stretch"
        )
    st.caption(
        "Shaded bands: where the model found evidence. **Red = evidence for spoof, "
        "blue = evidence for bona fide**; stronger colour = stronger evidence. Hover "
        "for "
        "times and values."
    )
    st.markdown("##### Spectrogram (CQT) with evidence over time and frequency")
    spec = engine.window_cqt(sha, start, end)
    if spec is not None and spec.shape[1] > 1:
        from core.audio.features import cqt_frequencies

        st.altair_chart(
            charts.cqt_chart(spec, cqt_frequencies(), offset=start, expl=expl),
            width="stretch",
        )
    st.caption(
        "Grey: the constant-Q spectrogram (log-Hz axis, darker = louder). Coloured "
        "cells: the explanation on the same red/blue scale. Models that read the "
        "waveform only have time segments, drawn as full-height bands."
    )
    left, right = st.columns([3, 2])
    with left:
        st.markdown("##### Evidence per segment")
        st.altair_chart(charts.segment_chart(expl), width="stretch")
        st.caption(
            "One bar per interpretable feature (time segment or time × frequency "
            "patch); above zero pushes towards spoof, below towards bona fide."
        )
    with right:
        st.markdown("##### Faithfulness check")
        st.altair_chart(charts.deletion_chart(expl), width="stretch")
        st.caption(
            "Removing the features the explanation ranks highest should lower "
            f"P({expl.target_label}) faster than removing them in random order."
        )
        st.caption(quality_line(expl))
    if is_tiled(expl):
        st.caption(
            "This file is shorter than the model's window, so the model heard it "
            "repeated "
            "(as at training time); only the real audio is drawn."
        )
    with st.expander("All parameters and quality measures"):
        st.json(
            {
                "params": expl.params,
                "quality": expl.quality,
                "method_version": expl.method_version,
                "seconds": expl.seconds,
            },
            expanded=False,
        )
    listen_block(sha, expl, samples)
