"""Explanation methods: one file each, registered in EXPLAINERS (see base.py).

    from core.explain import explain
    e = explain(detector, samples, method="shap")            # most suspicious window
    e = explain(detector, samples, method="lime", window=2, target="bonafide")

To add a method: one file defining ``EXPLAINER = Explainer(name, version, fn, ...)``
whose ``fn(window, *, n_samples, seed, progress) -> MethodResult``, and one line below.
explain() prepares the window (window.py), runs the method, and adds the deletion
curves (faithfulness.py) that every explanation carries.

Layer 3. May import: core.detectors, core.store, core.audio, core.jsonsafe.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from core.detectors.scheduler import turn_of
from core.explain import gradcam, gradshap, lime, shap
from core.explain.base import Explainer, Explanation, MethodResult
from core.explain.faithfulness import DEFAULT_RANDOM_ORDERS, deletion_curves
from core.explain.listen import listenable
from core.explain.notes import notes_for
from core.explain.reference import DEFAULT_REFERENCE, check_reference, reference_names
from core.explain.window import (
    DEFAULT_BANDS,
    DEFAULT_SEGMENTS,
    TARGET_LABELS,
    Progress,
    prepare_window,
)
from core.jsonsafe import finite

EXPLAINERS: dict[str, Explainer] = {
    e.name: e
    for e in [
        gradcam.EXPLAINER,
        shap.EXPLAINER,
        lime.EXPLAINER,
        gradshap.EXPLAINER,
    ]
}
METHODS = list(EXPLAINERS)

__all__ = [
    "EXPLAINERS",
    "METHODS",
    "Explainer",
    "Explanation",
    "MethodResult",
    "explain",
    "explain_params",
    "listenable",
    "reference_names",
]


def explain_params(
    method: str,
    *,
    window: int | None = None,
    target: str | None = None,
    segments: int = DEFAULT_SEGMENTS,
    n_samples: int | None = None,
    seed: int = 0,
    bands: int = DEFAULT_BANDS,
    random_orders: int = DEFAULT_RANDOM_ORDERS,
    reference: str = DEFAULT_REFERENCE,
) -> dict:
    """
    The canonical, JSON-able parameters that determine an explanation (with the model,
    its weights, the audio and the method version): what Explanation.params records and
    what a cache key should hold. None for window, target and n_samples means the
    default (most suspicious window, predicted class, the method's default N); n_samples
    is None for methods that have no sample count, whatever was passed. ``reference``:
    what removed features become (core.explain.reference: "speech" or "blank").
    """
    if method not in EXPLAINERS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if target is not None and target not in TARGET_LABELS:
        raise ValueError(f"target must be 'spoof', 'bonafide' or None, not {target!r}")
    if int(segments) < 1 or int(bands) < 1 or int(random_orders) < 0:
        raise ValueError("segments and bands must be >= 1, random_orders >= 0")
    if n_samples is not None and int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, not {n_samples}")
    uses_n = EXPLAINERS[method].uses_n_samples
    return {
        "window": None if window is None else int(window),
        "target": target,
        "segments": int(segments),
        "bands": int(bands),
        "n_samples": int(n_samples) if (uses_n and n_samples is not None) else None,
        "seed": int(seed),
        "random_orders": int(random_orders),
        "reference": check_reference(reference),
    }


def explain(
    detector,
    samples: np.ndarray,
    *,
    method: str,
    window: int | None = None,
    target: str | None = None,
    segments: int = DEFAULT_SEGMENTS,
    n_samples: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    bands: int = DEFAULT_BANDS,
    random_orders: int = DEFAULT_RANDOM_ORDERS,
    reference: str = DEFAULT_REFERENCE,
) -> Explanation:
    """
    Explain one window of a file for one model.

    Parameters
    ----------
    detector : core.detectors.detect.Detector
    samples : np.ndarray, shape = (n,), float32, the whole file at 16 kHz
    method : a key of EXPLAINERS ("gradcam", "shap", "lime", "gradshap")
    window : index into detector.windows(samples); None = the most suspicious window
    target : "spoof" | "bonafide" | None (= the class the model predicts on the window)
    segments : number of time segments (waveform models) or about the number of patches
        (CQT model: segments // bands time segments x bands frequency bands)
    n_samples : model evaluations for sampling methods; None = the method's default
    seed : all randomness (coalitions, gradient paths, random deletion orders)
    progress : optional callable(fraction in [0, 1], message)
    reference : what removed features become: "speech" (real-speech windows, the mean
        over the set) or "blank" (silence, or the CQT window's mean spectrum)

    Returns
    -------
    Explanation; quality holds the method's own measures (r2 for LIME, completeness for
    SHAP and gradshap), the deletion areas, n_samples (N used), n_evals (model
    evaluations of the attribution, each coalition once per reference input),
    n_evals_deletion, reference_size, batch, and the seconds of each part
    (seconds_prepare, seconds_attribution, seconds_deletion); notes the sentences of
    core.explain.notes.
    """
    params = explain_params(
        method,
        window=window,
        target=target,
        segments=segments,
        n_samples=n_samples,
        seed=seed,
        bands=bands,
        random_orders=random_orders,
        reference=reference,
    )
    explainer = EXPLAINERS[method]
    report = progress or (lambda fraction, message: None)
    t0 = time.perf_counter()

    report(0.0, "preparing the window")
    win = prepare_window(
        detector, samples, window=window, target=target, segments=segments, bands=bands,
        reference=reference,
    )  # fmt: skip
    n = params["n_samples"]
    if explainer.uses_n_samples and n is None:
        n = explainer.default_n_samples(win)
    # methods that only call the model through the window send each coalition once per
    # reference input
    expected = (n or 1) * (1 if explainer.exclusive else win.n_references)
    win.on_evals = lambda k: report(
        min(0.05 + 0.65 * win.n_evals / expected, 0.7),
        f"{method}: {win.n_evals}/{expected}",
    )
    report(0.05, f"{method} on window {win.index} ({win.target_label})")
    t_method = time.perf_counter()
    with turn_of(detector) if explainer.exclusive else contextlib.nullcontext():
        result = explainer.fn(win, n_samples=n, seed=seed, progress=report)
    t1 = time.perf_counter()

    report(0.7, "deletion curves")
    evals_before = win.n_evals
    to_do = max((1 + random_orders) * (win.n_features - 1), 1) * win.n_references
    win.on_evals = lambda k: report(
        min(0.7 + 0.3 * (win.n_evals - evals_before) / to_do, 1.0),
        f"deletion curves: {win.n_evals - evals_before}/{to_do}",
    )
    curve, random_mean, faith = deletion_curves(
        win, result.values, random_orders=random_orders, seed=seed
    )
    reference_p_spoof = win.reference_p_spoof  # the empty coalition: in the table
    t2 = time.perf_counter()
    win.on_evals = None
    quality = {
        **result.quality,
        **faith,
        "n_samples": n,
        "n_evals": result.n_evals,
        "n_evals_deletion": win.n_evals - evals_before,
        "batch": win.batch,
        "reference_size": win.n_references,
        "seconds_prepare": t_method - t0,
        "seconds_attribution": t1 - t_method,
        "seconds_deletion": t2 - t1,
    }
    notes = notes_for(
        result.values,
        quality=quality,
        target_label=win.target_label,
        p_target=win.p_target,
        relative=explainer.relative,
        reference_label=win.baseline_name,
        reference_p_spoof=reference_p_spoof,
    )
    report(1.0, "done")
    return Explanation(
        model=detector.spec.key,
        weights_sha256=detector.spec.sha256,
        method=method,
        method_version=explainer.version,
        params=params,
        target=int(win.target),
        target_label=win.target_label,
        window=win.index,
        window_start=float(win.start),
        window_end=float(win.end),
        p_target=float(win.p_target),
        feature_kind=win.feature_kind,
        feature_bounds=np.asarray(win.feature_bounds, dtype=np.float64),
        values=np.asarray(result.values, dtype=np.float64),
        uncertainty=(
            None
            if result.uncertainty is None
            else np.asarray(result.uncertainty, dtype=np.float64)
        ),
        dense=(
            None if result.dense is None else np.asarray(result.dense, dtype=np.float32)
        ),
        deletion_curve=curve,
        deletion_random=random_mean,
        quality=finite(quality),  # the store keeps quality as JSON
        seconds=t2 - t0,
        reference=reference,
        reference_label=win.baseline_name,
        reference_p_spoof=reference_p_spoof,
        notes=notes,
    )
