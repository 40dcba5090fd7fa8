"""The identity of every stored result: verdict and explanation keys, and the "current" rule.

A verdict is decided by the audio, the model, its weights and the scoring parameters
(window length, hop, front end, threshold); an explanation by the audio, the model, its
weights, the method and its version, and the explanation parameters, with the window
always *resolved* to an index (the most suspicious window when the caller asked for the
default). Every writer (the dashboard, the CLI, batch workers) and every reader builds
keys here and nowhere else, so a result written by one is found by all the others.

    vk = verdict_key(sha, spec)                      # vk.key: the store's primary key
    ek = explanation_key(sha, spec, "shap", window=3, target=None)
    is_current(row, spec)                            # stored verdict still valid?

The hashes are those the store has used since schema 1, so older stores keep working.
"""

from __future__ import annotations

from typing import Any, Mapping

from core.store.keys import ExplanationKey, VerdictKey

THRESHOLD = 0.5  # on P(spoof); not calibrated for any operating point (see core.detectors.detect)


def verdict_params(spec, *, max_windows: int | None = None, n_windows: int = 0) -> dict:
    """
    What besides model and weights decides a verdict. A cap that leaves windows out
    (max_windows < the file's n_windows) makes it another verdict: its key records the
    cap and the file's window count; a cap the file does not reach changes nothing.
    """
    params = {
        "n_samples": int(spec.input_length),  # stored name kept: old keys stay valid
        "hop": int(spec.window_hop),
        "frontend": str(spec.front_end),  # the front end's name: "waveform" | "cqt"
        "threshold": float(THRESHOLD),
    }
    if max_windows is not None and n_windows > max_windows:
        params |= {"max_windows": int(max_windows), "windows_total": int(n_windows)}
    return params


def verdict_key(
    audio_sha256: str, spec, *, max_windows: int | None = None, n_windows: int = 0
) -> VerdictKey:
    return VerdictKey(
        audio_sha256, spec.key, spec.sha256,
        verdict_params(spec, max_windows=max_windows, n_windows=n_windows),
    )  # fmt: skip


def is_current(row: Mapping[str, Any], spec) -> bool:
    """A stored verdict row is current when its weights and parameters are the spec's."""
    return (
        spec is not None
        and row.get("weights_sha256") == spec.sha256
        and row.get("params") == verdict_params(spec)
    )


def explain_backend(backend: Any = None) -> Any:
    """The explanation registry (``explain``, ``explain_params``, ``EXPLAINERS``)."""
    if backend is not None:
        return backend
    import core.explain

    return core.explain


def explanation_key(
    audio_sha256: str,
    spec,
    method: str,
    *,
    window: int,
    target: str | None = None,
    segments: int | None = None,
    n_evals: int | None = None,
    seed: int = 0,
    reference: str | None = None,
    backend: Any = None,
) -> ExplanationKey:
    """
    The key of one explanation. ``window`` must be resolved (an index, never None):
    the dashboard, the CLI and batch all resolve the default to the verdict's most
    suspicious window first, so all three share one stored copy. ``n_evals`` is the
    number of model evaluations of a sampling method (stored as ``n_samples``).
    ``reference`` (core.explain.reference) None = the registry's default, which
    explain_params writes into the key, so an explanation read against another
    reference is another result.
    """
    if window is None:
        raise ValueError("explanation_key needs a resolved window index, not None")
    b = explain_backend(backend)
    if method not in b.EXPLAINERS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(b.EXPLAINERS)}")
    kw: dict[str, Any] = dict(window=int(window), target=target, n_samples=n_evals, seed=seed)
    if segments is not None:
        kw["segments"] = segments
    if reference is not None:
        kw["reference"] = reference
    params = dict(b.explain_params(method, **kw))
    params.update(window=int(window), target=target)
    version = str(getattr(b.EXPLAINERS[method], "version", ""))
    return ExplanationKey(audio_sha256, spec.key, spec.sha256, method, version, params)


def is_current_explanation(row: Mapping[str, Any], spec, backend: Any = None) -> bool:
    """A stored explanation is current when its weights and method version are today's."""
    if spec is None or row.get("weights_sha256") != spec.sha256:
        return False
    explainer = explain_backend(backend).EXPLAINERS.get(row.get("method"))
    return explainer is not None and str(row.get("method_version")) == str(
        getattr(explainer, "version", "")
    )
