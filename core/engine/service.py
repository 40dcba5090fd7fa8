"""The engine: one object every caller uses (pages, CLI, batch, benchmarks).

    eng = Engine()                                     # $DEEPFAKE_DB or cache/analyses.db
    a = eng.analyze(data, "call.wav")                  # every model with verified weights
    a.verdicts["tssd1d"].label, a.cached["tssd1d"]
    a = eng.analysis(a.sha256)                         # stored only, never computes
    r = eng.explain(a.sha256, "tssd1d", "shap")        # ExplainResult(explanation, cached, seconds)
    eng.find_explanation(a.sha256, "tssd1d", "shap")   # stored only, or None

Keys and the "current result" rule live in core.engine.keys; storage in core.store; this module
decides what to compute. Detectors are loaded once per process and shared; work on them
is taken in fair turns, one batch of windows or coalitions at a time (core.detectors.scheduler), and
never while a stored result is looked up: a repeat view never waits, and a new short file
interleaves with someone else's long one instead of queueing behind it. ``cancel`` (a
core.detectors.scheduler.CancelToken) stops a computation at its next batch.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from core import store
from core.audio.decode import Audio, AudioError, audio_info, load_audio
from core.audio.quality import InputQuality, assess
from core.detectors.detect import Detector, Verdict, expected_seconds, n_windows
from core.detectors.registry import MODELS, WeightsError, available_models
from core.detectors.scheduler import CancelToken, FairLock, cancellable
from core.engine import keys
from core.engine.explaining import DEFAULT_SEGMENTS, Explaining  # noqa: F401 (callers import it here)
from core.engine.results import Analysis, verdict_from_row
from core.engine.stored import StoredViews
from core.engine.trace import Trace
from core.judgement.assessment import assess_analysis, load_calibration

Progress = Callable[[float, str], None]  # (fraction in [0, 1], message)

# tests (and tools) may set this to an object with explain, explain_params and
# EXPLAINERS, used instead of core.explain when an Engine is given no backend
EXPLAIN_BACKEND: Any = None


_DETECTORS: dict[str, Detector] = {}
_DETECTORS_LOCK = threading.Lock()


def get_detector(key: str) -> Detector:
    """
    The process-wide Detector for a model key, loaded (checksum-verified) once; loaded
    again when the key now names other weights (a user model removed and re-added).
    """

    def current(det) -> bool:
        return det is not None and (key not in MODELS or det.spec.sha256 == MODELS[key].sha256)

    det = _DETECTORS.get(key)
    if not current(det):
        with _DETECTORS_LOCK:
            det = _DETECTORS.get(key)
            if not current(det):
                if key not in MODELS:
                    raise ValueError(f"unknown model {key!r}; known: {', '.join(MODELS)}")
                det = _DETECTORS[key] = Detector.load(key)
    return det


def window_progress(key: str, progress: Progress | None):
    """progress(done, total) of scoring windows -> the caller's progress, with an ETA"""
    if progress is None:
        return None
    t0 = time.perf_counter()

    def report(done: int, total: int) -> None:
        left = ""
        if 0 < done < total:
            eta = (time.perf_counter() - t0) / done * (total - done)
            left = f", about {eta:.0f} s left"
        progress(done / total, f"{key}: window {done}/{total}{left}")

    return report


def _quiet(fraction: float, message: str) -> None:
    pass


class Engine(Explaining, StoredViews):
    """
    db : store path; None = $DEEPFAKE_DB, else cache/analyses.db
    use_store : False = compute everything, read and write nothing (CLI --no-store)
    detectors : key -> Detector-like (``.spec``, ``.score(audio)``) used instead of the
        process-wide ones (tests pass counting fakes)
    backend : explanation registry (``explain``, ``explain_params``, ``EXPLAINERS``);
        default core.explain (or the module-level EXPLAIN_BACKEND when set)
    compute : where the models run (core.engine.compute.Compute, e.g. a Ray cluster's
        deployments); None = in this process. The store, keys and claims stay here.
    calibration : calibration file (default: calibration.json next to the weights)
    """

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        use_store: bool = True,
        detectors: Mapping[str, Any] | None = None,
        backend: Any = None,
        calibration: str | Path | None = None,
        compute: Any = None,
    ):
        self.db_path: Path | None = store.resolve_db_path(db) if use_store else None
        self._calibration_path = Path(calibration) if calibration is not None else None
        self._detectors = dict(detectors) if detectors else None
        self._backend = backend
        self._compute = compute

    # ------------------------------------------------------------------ models

    @property
    def backend(self) -> Any:
        compute = self._compute.explainers if self._compute is not None else None
        return keys.explain_backend(self._backend or EXPLAIN_BACKEND or compute)

    def methods(self) -> dict:
        """{method key: Explainer}, in registry order."""
        return dict(self.backend.EXPLAINERS)

    def available_models(self) -> list[str]:
        if self._detectors:
            return list(self._detectors)
        return available_models()

    def spec(self, key: str):
        if self._detectors and key in self._detectors:
            return self._detectors[key].spec
        if key not in MODELS:
            raise ValueError(f"unknown model {key!r}; known: {', '.join(MODELS)}")
        return MODELS[key]

    def detector(self, key: str):
        if self._detectors and key in self._detectors:
            return self._detectors[key]
        if self._compute is not None:
            return self._compute.detector(key)
        return get_detector(key)

    def model_keys(self, models: list[str] | None = None) -> list[str]:
        """The requested keys (validated, de-duplicated), or every available model."""
        chosen = list(dict.fromkeys(models)) if models else self.available_models()
        if not chosen:
            raise WeightsError("no model has weights installed; see `python -m core models`")
        for k in chosen:
            self.spec(k)  # unknown keys fail before any work
        return chosen

    def queued(self, key: str, progress: Progress | None) -> None:
        """Say so when the model's turns are taken by other jobs (they interleave)."""
        lock = getattr(self.detector(key), "lock", None)
        if progress is not None and isinstance(lock, FairLock) and lock.busy:
            ahead = lock.waiting + 1
            progress(0.0, f"{key}: sharing the model with {ahead} other job{'s' * (ahead > 1)}")

    # ------------------------------------------------------------ assessment

    def calibration_pair(self):
        """(CalibrationFile | None, reason it is absent or refused | None)"""
        return load_calibration(self._calibration_path)

    def _signal_quality(self, sha256: str, row: Mapping | None, audio: Audio | None = None):
        """The stored signal measurements, else measured now (and stored)."""
        if row is not None and row.get("quality"):
            return InputQuality.from_json(row["quality"])
        if audio is None:
            try:
                audio = load_audio(store.audio_bytes(sha256, db=self.db_path))
            except (store.StoreError, AudioError):
                return None  # bytes gone or damaged: the analysis shows no warnings
        signal = assess(
            audio.samples, orig_sample_rate=audio.orig_sample_rate,
            orig_format=audio.orig_format,
        )  # fmt: skip
        if self.db_path is not None and row is not None and not store.is_read_only(self.db_path):
            store.set_audio_quality(sha256, signal.to_json(), db=self.db_path)
        return signal

    def judge(self, signal, verdicts: Mapping[str, Verdict]):
        """(InputQuality with window warnings, Combined) for these verdicts; no model runs"""
        lengths = {}
        for k in verdicts:
            with contextlib.suppress(ValueError):
                lengths[k] = self.spec(k).input_length
        return assess_analysis(signal, verdicts, lengths, self.calibration_pair())

    # ---------------------------------------------------------------- verdicts

    def verdict(
        self,
        audio: Audio,
        key: str,
        *,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        max_windows: int | None = None,
        work_after: float | Callable[[], float] = 0.0,
    ) -> tuple[Verdict, bool]:
        """
        (verdict, cached) for one model: the store's when there, else scored once.
        ``max_windows``: score at most that many windows, evenly spread (long files in
        the dashboard); a stored verdict of every window is still preferred.
        ``work_after``: seconds of compute the job has after this model (its priority),
        or a function giving them, called only when the verdict must be computed.
        """
        spec = self.spec(key)
        progress = cancellable(progress, cancel)
        total = n_windows(spec, len(audio.samples)) if max_windows is not None else 0
        capped = {"max_windows": max_windows} if max_windows is not None else {}

        def compute() -> dict:
            self.queued(key, progress)
            per_window = window_progress(key, progress)
            after = work_after() if callable(work_after) else work_after
            kw = dict(capped, work_after=after) if after else capped
            return self.detector(key).score(audio, progress=per_window, **kw).to_json()

        if self.db_path is None:
            return verdict_from_row(compute()), False
        if total > (max_windows or total):
            full = store.get_prediction(keys.verdict_key(audio.sha256, spec), db=self.db_path)
            if full is not None:
                return verdict_from_row(full), True
        row, cached = store.get_or_compute_prediction(
            keys.verdict_key(audio.sha256, spec, max_windows=max_windows, n_windows=total),
            compute,
            db=self.db_path,
            on_wait=(lambda msg: progress(0.0, f"{key}: {msg}")) if progress else None,
        )
        return verdict_from_row(row), cached

    def analyze(
        self,
        data: bytes,
        filename: str,
        *,
        models: list[str] | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        max_windows: int | None = None,
    ) -> Analysis:
        """
        Decode ``data``, record it in the store and get-or-compute each model's verdict
        (``max_windows``: at most that many windows per model, evenly spread).
        Raises AudioError (bad file, one-line message), WeightsError (no or bad
        weights), StoreError (store unusable), ValueError (unknown model),
        JobCancelled (``cancel`` was cancelled; verdicts already stored stay).
        """
        trace = Trace()
        with trace.phase("decode"):
            audio = load_audio(data)
        return self.analyze_audio(
            audio, data, filename, models=models, progress=progress, cancel=cancel,
            max_windows=max_windows, trace=trace,
        )  # fmt: skip

    def analyze_audio(
        self,
        audio: Audio,
        data: bytes,
        filename: str,
        *,
        models: list[str] | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        max_windows: int | None = None,
        trace: Trace | None = None,
    ) -> Analysis:
        """As analyze, for audio already decoded from ``data`` (``trace``: core.engine.trace)."""
        report = cancellable(progress or _quiet, cancel)
        report(0.0, "decoding")
        chosen = self.model_keys(models)
        trace = trace or Trace()
        with trace.phase("store"):
            row = (
                store.record_audio(audio_info(audio), data, filename, db=self.db_path)
                if self.db_path
                else None
            )
        verdicts, cached = {}, {}
        for i, key in enumerate(chosen):
            at = 0.05 + 0.95 * i / len(chosen)
            report(at, f"scoring with {key}")
            share = 0.95 / len(chosen)
            # the models still to come count in this job's priority (core.detectors.scheduler)
            def after(rest=chosen[i + 1 :]) -> float:
                return expected_seconds(map(self.detector, rest), len(audio.samples), max_windows)

            with trace.phase(key):
                verdicts[key], cached[key] = self.verdict(
                    audio, key, progress=lambda f, msg, at=at: report(at + share * f, msg),
                    max_windows=max_windows, work_after=after,
                )
        with trace.phase("quality"):
            signal = self._signal_quality(audio.sha256, row, audio)
            quality, combined = self.judge(signal, verdicts)
        trace.write(duration=audio.duration, cached=all(cached.values()))
        report(1.0, "done")
        name = store.clean_filename(filename)
        return Analysis(
            sha256=audio.sha256,
            filename=name,
            filenames=tuple(row["filenames"]) if row else (name,),
            duration=audio.duration,
            orig_sample_rate=audio.orig_sample_rate,
            orig_channels=audio.orig_channels,
            orig_format=audio.orig_format,
            n_bytes=audio.n_bytes,
            near_silent=audio.near_silent,
            verdicts=verdicts,
            cached=cached,
            seconds={key: trace.phases[key]["seconds"] for key in chosen},
            first_seen=row["first_seen"] if row else "",
            last_seen=row["last_seen"] if row else "",
            quality=quality,
            combined=combined,
        )

    def analysis(self, sha256: str) -> Analysis | None:
        """
        A stored analysis, without loading any model or decoding audio; None for an
        unknown or malformed hash. Per model: the current verdict (core.engine.keys.is_current)
        when stored, else the newest one.
        """
        t0 = time.perf_counter()
        sha256 = (sha256 or "").strip().lower()
        if self.db_path is None or not store.SHA256_RE.match(sha256):
            return None
        a = store.get_analysis(sha256, db=self.db_path)
        if a is None:
            return None
        au = a["audio"]
        chosen: dict[str, tuple[dict, bool]] = {}
        for p in a["predictions"]:  # newest first per model
            current = keys.is_current(p, MODELS.get(p["model"]))
            best = chosen.get(p["model"])
            if best is None or (current and not best[1]):
                chosen[p["model"]] = (p, current)
        verdicts = {k: verdict_from_row(p) for k, (p, _) in sorted(chosen.items())}
        quality, combined = self.judge(self._signal_quality(sha256, au), verdicts)
        elapsed = time.perf_counter() - t0
        return Analysis(
            sha256=au["sha256"],
            filename=au["filename"],
            filenames=tuple(au["filenames"]),
            duration=au["duration"],
            orig_sample_rate=au["orig_sample_rate"],
            orig_channels=au["orig_channels"],
            orig_format=au["orig_format"] or "",
            n_bytes=au["n_bytes"],
            near_silent=bool(au["near_silent"]),
            verdicts=verdicts,
            cached={k: True for k in verdicts},
            seconds={k: elapsed for k in verdicts},
            first_seen=au["first_seen"],
            last_seen=au["last_seen"],
            explanations=tuple(a["explanations"]),
            quality=quality,
            combined=combined,
        )

    def stored_verdict(self, sha256: str, key: str) -> Verdict | None:
        """The current stored verdict of one model, or None."""
        if self.db_path is None:
            return None
        row = store.get_prediction(keys.verdict_key(sha256, self.spec(key)), db=self.db_path)
        return verdict_from_row(row) if row else None

    # ------------------------------------------------------------------ store

    def _require_stored(self, sha256: str) -> None:
        if self.db_path is None or store.get_audio(sha256, db=self.db_path) is None:
            raise store.NotStoredError(
                f"no stored analysis {str(sha256)[:12]}...; analyse the file first"
            )

    def model_cards(self) -> list[dict]:
        from core.engine.cards import model_cards

        return model_cards()

