"""The engine's explanation half: get-or-compute, look up and list explanations.

A mixin of core.engine.service.Engine (it uses the engine's store path, models and locks). The
window of an explanation is always resolved to an index before the key is built (the
most suspicious window of the model's verdict by default), so the dashboard, the CLI
and batch workers share one stored copy of each explanation.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from core import store
from core.audio.decode import Audio, load_audio
from core.detectors.detect import Verdict
from core.detectors.scheduler import CancelToken, cancellable
from core.engine import keys
from core.engine.results import ExplainResult, explanation_from_record
from core.explain.base import Explanation
from core.explain.window import DEFAULT_SEGMENTS

Progress = Callable[[float, str], None]  # (fraction in [0, 1], message)


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
    ) -> keys.ExplanationKey:
        return keys.explanation_key(
            sha256, self.spec(model), method, window=window, target=target,
            segments=segments, n_evals=n_evals, seed=seed, backend=self.backend,
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
    ) -> ExplainResult:
        """
        Get-or-compute one explanation of decoded audio. ``window`` None = the most
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
            segments=segments, n_evals=n_evals, seed=seed,
        )  # fmt: skip

        def compute() -> tuple[dict, dict]:
            self.queued(model, progress)
            e = b.explain(
                self.detector(model), audio.samples, method=method, window=window,
                target=target, segments=segments, n_samples=n_evals, seed=seed,
                progress=progress,
            )  # fmt: skip
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
            )  # fmt: skip
            if hit is not None:
                return ExplainResult(hit, True, time.perf_counter() - t0)
        audio = load_audio(store.audio_bytes(sha256, db=self.db_path))
        r = self.explain_audio(
            audio, model, method, verdict=verdict, window=window, target=target,
            segments=segments, n_evals=n_evals, seed=seed, progress=progress, cancel=cancel,
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
            segments=segments, n_evals=n_evals, seed=seed,
        )  # fmt: skip
        record = store.get_explanation(ek, db=self.db_path)
        return None if record is None else explanation_from_record(*record)

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

