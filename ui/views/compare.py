"""The Compare page: one file, every model x every method, and how much they agree.

Every model explains the window centred nearest one chosen time, so all cells of the
grid look at the same stretch of audio. Stored cells show at once; the rest are
computed on request and stored for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from core.detectors.detect import Verdict
from core.engine.results import Analysis
from core.explain.agreement import agreement, mean_offdiagonal
from core.explain.base import Explanation
from core.export import charts
from core.store import StoreError
from ui import engine, verdict, widgets
from ui.links import share_box, share_url
from ui.markup import without_paths
from ui.views.explanation import View, computed

PREFIX = "compare"


@dataclass(frozen=True)
class ComparePlan:
    sha: str
    focus: float  # seconds: every model explains the window centred nearest to it
    windows: dict[str, int]  # model -> window index
    methods: list[str]
    target: str | None


def render() -> None:
    sha = pick_analysis(prefix=PREFIX)
    if sha is None:
        st.stop()
    analysis = widgets.analysis_or_stop(sha)

    widgets.audio_header(analysis)
    st.header("Verdicts")
    verdict.combined_card(analysis)
    verdict.warnings_block(analysis)
    st.dataframe(
        widgets.verdict_rows(analysis, lead=verdict.leads_only(analysis)),
        hide_index=True, width="stretch", column_config=widgets.VERDICT_COLUMNS,
    )  # fmt: skip
    widgets.timeline(analysis)
    if not analysis.verdicts:
        st.stop()

    st.header("Explanations grid")
    plan = compare_plan(analysis, prefix=PREFIX)
    grid = compare_grid(analysis, plan, prefix=PREFIX)

    st.header("Agreement")
    st.write(
        "Spearman rank correlation (ρ) of the segment attributions, signed as evidence "
        "for spoof: +1 = the same ranking of moments, 0 = unrelated, −1 = opposite."
    )
    agreement_section(grid, plan)
    st.divider()
    share_box(share_url(sha, page="compare"), label="Link to this comparison")


def pick_analysis(*, prefix: str) -> str | None:
    """The ?sha= of the URL, else a choice among the most recent analyses."""
    sha = st.query_params.get("sha")
    if sha:
        return sha
    try:
        recent = engine.history(limit=50).items
    except StoreError as e:
        st.error(f"The store could not be read: {without_paths(e)}")
        return None
    if not recent:
        st.info("Nothing analysed yet. Upload a file on **Analyze** first.")
        return None
    names = {
        it[
            "sha256"
        ]: f"{it.get('filename') or '(unnamed)'} · {widgets.short(it['sha256'])}"
        for it in recent
    }
    chosen = st.selectbox(
        "Recording", list(names), format_func=names.get, key=f"{prefix}_sha"
    )
    st.query_params["sha"] = chosen
    return chosen


def window_near(verdict: Verdict, t: float) -> int:
    """Index (among all the file's windows) of the scored window whose centre is nearest t."""
    wins = verdict.windows
    if not wins:
        return 0
    return min(wins, key=lambda w: abs((w.start + w.end) / 2 - t)).index


def compare_plan(analysis: Analysis, *, prefix: str) -> ComparePlan:
    verdicts = analysis.verdicts
    first_key, first = next(iter(verdicts.items()))
    duration = max(analysis.duration, 0.1)
    w = first.window_at(first.max_window)
    if w is not None:
        default = round((w.start + w.end) / 2, 1)
    else:
        default = round(duration / 2, 1)
    registry = engine.methods()
    # the methods get a row of their own: their chips stay whole on a 1024-px screen
    c1, c3 = st.columns([3, 2])
    c2 = st.container()
    focus = c1.slider(
        "Explain around (s)",
        0.0,
        round(duration, 1),
        min(default, round(duration, 1)),
        step=0.1,
        key=f"{prefix}_focus",
        help="Each model explains its window centred nearest this time, so all of them "
        "look at the same stretch of audio. Default: the most suspicious window of "
        f"{engine.model_name(first_key)}.",
    )
    chosen = c2.multiselect(
        "Methods",
        list(registry),
        default=list(registry),
        format_func=engine.method_label,
        key=f"{prefix}_methods",
    )
    target = widgets.target_select(c3, prefix=prefix)
    return ComparePlan(
        sha=analysis.sha256,
        focus=float(focus),
        windows={m: window_near(v, focus) for m, v in verdicts.items()},
        methods=chosen,
        target=target,
    )


def compare_grid(
    analysis: Analysis, plan: ComparePlan, *, prefix: str
) -> dict[tuple[str, str], Explanation]:
    """Draws the grid; returns {(model, method): Explanation} of what is stored."""
    if not plan.methods:
        st.warning("Pick at least one method.")
        return {}
    cells = {
        (m, meth): engine.find_explanation(
            plan.sha, m, meth, window=w, target=plan.target
        )
        for m, w in plan.windows.items()
        for meth in plan.methods
    }
    missing = [k for k, v in cells.items() if v is None]
    if missing:
        compute_missing(cells, missing, plan, prefix=prefix)
    st.caption(
        "Each small chart: evidence per time segment (or patch), in time order, on the "
        "red (spoof) / blue (bona fide) scale. Hover a bar for its times and value."
    )
    for m, w in plan.windows.items():
        st.markdown(
            f"**{engine.model_name(m)}** · "
            f"{widgets.window_label(analysis.verdicts[m], w)}"
        )
        cols = st.columns(len(plan.methods))
        for col, meth in zip(cols, plan.methods):
            with col:
                st.caption(engine.method_label(meth))
                e = cells.get((m, meth))
                if e is None:
                    st.markdown(
                        "<div style='color:#888;padding:2rem 0;text-align:center'>"
                        "not computed</div>",
                        unsafe_allow_html=True,
                    )
                    continue
                st.altair_chart(
                    charts.segment_chart(e, height=140, compact=True), width="stretch"
                )
                st.caption(
                    f"P({e.target_label}) {e.p_target:.2f} · "
                    f"{e.window_start:.2f}-{e.window_end:.2f} s"
                )
    return {k: v for k, v in cells.items() if v is not None}


def compute_missing(
    cells: dict[tuple[str, str], Explanation | None],
    missing: list[tuple[str, str]],
    plan: ComparePlan,
    *,
    prefix: str,
) -> None:
    """
    The offer to compute the missing cells and, once clicked, their progress, in one
    slot that is emptied when they are in: no stale count or status boxes stay above
    the grid. ``cells`` is filled in place; failures are listed after.
    """
    registry = engine.methods()
    costs = {meth: registry[meth].cost for _, meth in missing if registry[meth].cost}
    slot = st.empty()
    with slot.container():
        st.info(
            f"{len(cells) - len(missing)} of {len(cells)} explanations are stored. "
            "Computing the rest runs the models and stores the results for everyone. "
            + " ".join(f"{registry[m].title}: {c}" for m, c in costs.items())
        )
        if not st.button(
            f"Compute the {len(missing)} missing explanation(s)",
            type="primary",
            key=f"{prefix}_compute",
        ):
            return
        bar = st.progress(0.0, text="starting…")
        failed: list[str] = []
        for i, (m, meth) in enumerate(missing):
            name = f"{engine.method_label(meth)} · {engine.model_name(m)}"
            bar.progress(i / len(missing), text=f"{i + 1}/{len(missing)}: {name}")
            done = computed(View(plan.sha, m, meth, plan.windows[m], plan.target), errors=failed)
            cells[(m, meth)] = done[0] if done else None
    slot.empty()
    if failed:
        st.error(
            f"{len(failed)} of {len(missing)} explanations could not be computed:\n\n"
            + "\n".join(f"- {line}" for line in failed)
        )


def agreement_section(
    grid: dict[tuple[str, str], Explanation], plan: ComparePlan
) -> None:
    if len(grid) < 2:
        st.info("Agreement needs at least two stored explanations.")
        return
    models = list(plan.windows)
    tabs = st.tabs(["Between methods (per model)", "Between models (per method)"])
    by_model = {
        engine.model_name(m): {engine.method_label(meth): grid[(m, meth)]
                               for meth in plan.methods if (m, meth) in grid}
        for m in models
    }  # fmt: skip
    by_method = {
        engine.method_label(meth): {engine.model_name(m): grid[(m, meth)]
                                    for m in models if (m, meth) in grid}
        for meth in plan.methods
    }  # fmt: skip
    with tabs[0]:
        _agreement_tab(by_model, "No model has two methods computed yet.")
    with tabs[1]:
        _agreement_tab(by_method, "No method has been computed for two models yet.")


def _agreement_tab(groups: dict[str, dict[str, Explanation]], empty: str) -> None:
    """one agreement block per group that has at least two explanations"""
    shown = [title for title, expls in groups.items() if len(expls) >= 2]
    for title in shown:
        _agreement_block(title, groups[title])
    if not shown:
        st.caption(empty)


def _agreement_block(title: str, expls: dict[str, Explanation]) -> None:
    labels, matrix, basis = agreement(expls)
    mean = mean_offdiagonal(matrix)
    st.markdown(
        f"**{title}** · mean ρ {mean:+.2f}" if np.isfinite(mean) else f"**{title}**"
    )
    st.altair_chart(
        charts.agreement_chart(labels, matrix, height=60 + 45 * len(labels)),
        width="stretch",
    )
    st.caption(f"Ranked over {basis}.")
