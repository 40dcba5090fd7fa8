"""The engine's explanation half: get-or-compute, look up and list explanations, the
default view of an analysis, and how long an explanation will take here.

A mixin of core.engine.service.Engine (it uses the engine's store path, models and locks). The
window of an explanation is always resolved to an index before the key is built (the
most suspicious window of the model's verdict by default), so the dashboard, the CLI
and batch workers share one stored copy of each explanation.

Time estimates (``explanation_estimate``) come from costs measured on this server, never
from a fixed sentence: the running average of explanations of the same model, method
and reference computed (or read from the store) by this engine; else the model
evaluations the explanation will make (core.explain.costs, deletion curves included)
times the measured seconds per evaluation of earlier explanations of the model, or of
its verdict on this file (Verdict.seconds per window).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from core import store
from core.audio.decode import Audio, load_audio
from core.detectors.detect import Verdict
from core.detectors.scheduler import CancelToken, cancellable
from core.engine import keys
from core.engine.results import Analysis, ExplainResult, explanation_from_record
from core.explain.base import Explanation
from core.explain.costs import expected_evals
from core.explain.reference import (
    DEFAULT_REFERENCE,
    REFERENCE_WINDOWS,
    ReferenceError,
    reference_size,
)
from core.explain.window import DEFAULT_SEGMENTS

Progress = Callable[[float, str], None]  # (fraction in [0, 1], message)
# the default explanation: exact or near-exact Shapley values (README: Spearman >= 0.99
# against exact on every shipped model; Grad-CAM 0.17-0.93)
DEFAULT_METHOD = "shap"
COST_WEIGHT = 0.3  # running averages of costs: the newest measurement's weight
_COSTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Estimate:
    """How long an explanation will take on this server, and what that rests on."""

    seconds: float | None  # None: nothing measured yet
    evals: int  # forward-pass equivalents it makes at most (core.explain.costs)
    basis: str  # what the number rests on, in words

    def sentence(self) -> str:
        if self.seconds is None:
            return (
                f"It makes up to {self.evals:,} model evaluations (deletion curves "
                "included); their cost has not been measured on this server yet."
            )
        return f"About {duration(self.seconds)} on this server ({self.basis})."


def duration(seconds: float) -> str:
    if seconds < 1.5:
        return "a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def agreeing_model(analysis: Analysis) -> str | None:
    """
    The model whose verdict agrees best with the combined verdict: on the same side of
    0.5 as the fused calibrated P(spoof) and closest to it (each model's calibrated
    P(spoof)); without a calibrated combined verdict, the same against the models' mean
    raw P(spoof). Ties go to the earlier model.
    """
    order = {m: i for i, m in enumerate(analysis.verdicts)}
    if not order:
        return None
    c = analysis.combined
    scores = {}
    if c is not None and c.p_spoof is not None:
        scores = {m: p for m, p in c.calibrated.items() if m in order}
    if scores:
        target = float(c.p_spoof)
    else:
        scores = {m: v.p_spoof for m, v in analysis.verdicts.items()}
        target = sum(scores.values()) / len(scores)
    side = target >= 0.5
    return min(
        scores, key=lambda m: ((scores[m] >= 0.5) != side, abs(scores[m] - target), order[m])
    )


def default_view(analysis: Analysis, methods) -> tuple[str | None, str | None]:
    """(model, method) an explanation opens with: SHAP on the model that agrees best
    with the combined verdict (``agreeing_model``)"""
    keys_ = list(methods)
    method = DEFAULT_METHOD if DEFAULT_METHOD in keys_ else (keys_[0] if keys_ else None)
    return agreeing_model(analysis), method


class Explaining:
    """Explanation methods of Engine; see core.engine.service for the attributes they use."""

    db_path: Any
    # ------------------------------------------------------------ explanations

    def explanation_key(
        self,
        sha256: str,
        model: str,
        method: str,
        *,
        window: int,
        target: str | None = None,
        segments: int = DEFAULT_SEGMENTS,
        n_evals: int | None = None,
        seed: int = 0,
        reference: str | None = None,
    ) -> keys.ExplanationKey:
        return keys.explanation_key(
            sha256, self.spec(model), method, window=window, target=target,
            segments=segments, n_evals=n_evals, seed=seed, reference=reference,
            backend=self.backend,
        )  # fmt: skip

    def explain_audio(
        self,
        audio: Audio,
        model: str,
        method: str,
        *,
        verdict: Verdict | None = None,
        window: int | None = None,
        target: str | None = None,
        segments: int = DEFAULT_SEGMENTS,
        n_evals: int | None = None,
        seed: int = 0,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        reference: str | None = None,
    ) -> ExplainResult:
        """
        Get-or-compute one explanation of decoded audio. ``reference`` None = the
        backend's default (core.explain.reference: real speech). ``window`` None = the most
        suspicious window of the model's verdict (``verdict`` when given, else the
        stored or newly computed one), so every caller shares one stored copy.
        ``cancel``: JobCancelled at the next batch of model calls; nothing is stored
        and the claim on the result is dropped, so another session can compute it.
        """
        t0 = time.perf_counter()
        progress = cancellable(progress, cancel)
        b = self.backend
        if method not in b.EXPLAINERS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(b.EXPLAINERS)}")
        if window is None:
            if verdict is None:
                verdict, _ = self.verdict(audio, model, progress=progress)
            window = verdict.max_window
        ek = self.explanation_key(
            audio.sha256, model, method, window=window, target=target,
            segments=segments, n_evals=n_evals, seed=seed, reference=reference,
        )  # fmt: skip
        # only an explicit reference is passed on: stand-in backends may not know it
        extra = {} if reference is None else {"reference": reference}

        def compute() -> tuple[dict, dict]:
            self.queued(model, progress)
            e = b.explain(
                self.detector(model), audio.samples, method=method, window=window,
                target=target, segments=segments, n_samples=n_evals, seed=seed,
                progress=progress, **extra,
            )  # fmt: skip
            self.record_cost(e)
            return e.to_record()

        if self.db_path is None:
            meta, arrays = compute()
            cached = False
        else:
            meta, arrays, cached = store.get_or_compute_explanation(
                ek,
                compute,
                db=self.db_path,
                on_wait=(lambda msg: progress(0.0, msg)) if progress else None,
            )
        return ExplainResult(
            explanation_from_record(meta, arrays), cached, time.perf_counter() - t0
        )

    def explain(
        self,
        sha256: str,
        model: str,
        method: str,
        *,
        window: int | None = None,
        target: str | None = None,
        segments: int = DEFAULT_SEGMENTS,
        n_evals: int | None = None,
        seed: int = 0,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        reference: str | None = None,
    ) -> ExplainResult:
        """
        Get-or-compute one explanation of a stored audio. A hit reads the store only;
        a miss decodes the stored bytes and computes it once across sessions and
        processes. Raises NotStoredError for an unknown hash, ValueError for an
        unknown model or method.
        """
        t0 = time.perf_counter()
        self._require_stored(sha256)
        verdict = self.stored_verdict(sha256, model) if window is None else None
        if window is not None or verdict is not None:
            hit = self.find_explanation(
                sha256, model, method,
                window=window if window is not None else verdict.max_window,
                target=target, segments=segments, n_evals=n_evals, seed=seed,
                reference=reference,
            )  # fmt: skip
            if hit is not None:
                return ExplainResult(hit, True, time.perf_counter() - t0)
        audio = load_audio(store.audio_bytes(sha256, db=self.db_path))
        r = self.explain_audio(
            audio, model, method, verdict=verdict, window=window, target=target,
            segments=segments, n_evals=n_evals, seed=seed, progress=progress, cancel=cancel,
            reference=reference,
        )  # fmt: skip
        return ExplainResult(r.explanation, r.cached, time.perf_counter() - t0)

    def find_explanation(
        self,
        sha256: str,
        model: str,
        method: str,
        *,
        window: int | None = None,
        target: str | None = None,
        segments: int = DEFAULT_SEGMENTS,
        n_evals: int | None = None,
        seed: int = 0,
        reference: str | None = None,
    ) -> Explanation | None:
        """The stored explanation for exactly this view, or None; never computes.
        ``window`` None = the stored verdict's most suspicious window."""
        if self.db_path is None:
            return None
        if window is None:
            verdict = self.stored_verdict(sha256, model)
            if verdict is None:
                return None
            window = verdict.max_window
        ek = self.explanation_key(
            sha256, model, method, window=window, target=target,
            segments=segments, n_evals=n_evals, seed=seed, reference=reference,
        )  # fmt: skip
        record = store.get_explanation(ek, db=self.db_path)
        if record is None:
            return None
        e = explanation_from_record(*record)
        self.record_cost(e, stored=True)
        return e

    def explanations(
        self, sha256: str, *, model: str | None = None, method: str | None = None
    ) -> list[Explanation]:
        """Every stored explanation of an audio (optionally one model / method)."""
        if self.db_path is None:
            return []
        a = store.get_analysis(sha256, db=self.db_path, arrays=True)
        if a is None:
            return []
        return [
            explanation_from_record(e["meta"], e["arrays"])
            for e in a["explanations"]
            if (model is None or e["model"] == model) and (method is None or e["method"] == method)
        ]

    # ------------------------------------------------------------ time estimates

    def record_cost(self, e: Explanation, *, stored: bool = False) -> None:
        """
        Keep what an explanation cost (``stored``: read from the store, measured when it
        was computed; used only while nothing newer was measured): its seconds per
        model, method and reference, and the seconds per model evaluation of its model.
        """
        q = e.quality or {}
        explainer = self.backend.EXPLAINERS.get(e.method)
        parts = [(q.get("seconds_deletion"), q.get("n_evals_deletion"))]
        if explainer is not None and not explainer.exclusive:  # forwards only
            parts.append((q.get("seconds_attribution"), q.get("n_evals")))
        seconds = sum(float(t) for t, n in parts if t and n)
        evals = sum(int(n) for t, n in parts if t and n)
        costs = self.__dict__.setdefault("_explain_costs", {})
        kind = (e.model, e.method, e.reference or DEFAULT_REFERENCE)
        with _COSTS_LOCK:
            for key, value in ((kind, float(e.seconds)), (e.model, seconds / max(evals, 1))):
                if stored and key in costs or (key == e.model and not evals) or value <= 0:
                    continue
                old = costs.get(key)
                costs[key] = value if old is None else (1 - COST_WEIGHT) * old + COST_WEIGHT * value

    def explanation_estimate(
        self,
        model: str,
        method: str,
        *,
        verdict=None,
        reference: str | None = None,
        segments: int = DEFAULT_SEGMENTS,
    ) -> Estimate:
        """How long explaining one window of ``model`` with ``method`` takes here, from
        measured costs (this module's doc); ``verdict``: the model's verdict of the file"""
        explainer = self.backend.EXPLAINERS[method]
        reference = reference or DEFAULT_REFERENCE
        try:
            k = reference_size(reference)
        except ReferenceError:  # the explanation itself will fail and say why
            k = REFERENCE_WINDOWS
        spec = self.spec(model)
        evals = expected_evals(explainer, spec, references=k, segments=segments)["total"]
        costs = self.__dict__.get("_explain_costs", {})
        measured, per = costs.get((model, method, reference)), costs.get(model)
        if measured is not None:
            return Estimate(measured, evals, "the running average of this model, method "
                            "and reference here, deletion curves included")  # fmt: skip
        if per is None and verdict is not None and verdict.windows and verdict.seconds > 0:
            per, where = verdict.seconds / len(verdict.windows), "when this file was scored"
        else:
            where = "in explanations of this model here"
        if per is None:
            return Estimate(None, evals, "")
        return Estimate(evals * per, evals, f"up to {evals:,} model evaluations with the "
                        f"deletion curves, {per:.2f} s each as measured {where}")  # fmt: skip

