"""The one shape every explanation method returns, and how it is serialised.

The store keeps ``to_record()``'s meta as JSON and its arrays as compressed NumPy
(allow_pickle=False); ``Explanation.from_record`` rebuilds the object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

ARRAY_FIELDS = (
    "feature_bounds",
    "values",
    "dense",
    "deletion_curve",
    "deletion_random",
    "uncertainty",
)


@dataclass(frozen=True)
class Explanation:
    model: str  # registry key
    weights_sha256: str
    method: str  # EXPLAINERS key: "gradcam" | "shap" | "lime" | ...
    method_version: str  # bumped whenever the method's output would change
    params: dict  # JSON-able parameters that determine the result (cache key part)
    target: int  # logit index explained
    target_label: str  # "spoof" | "bonafide"
    window: int  # index of the explained window in the file's window list
    window_start: float  # seconds
    window_end: float  # seconds
    p_target: float  # the model's P(target) on that window
    feature_kind: str  # "time" (segments, bounds in s) | "time-frequency" (patches)
    # (F, 2) [t0, t1] seconds for time segments; (F, 4) [t0, t1, f0, f1] s and Hz for
    # time-frequency patches; F = 0 for a dense-only method
    feature_bounds: np.ndarray
    values: np.ndarray  # (F,) signed: positive = evidence for the target class
    # dense map on the input grid: (n_samples,) for waveform models, (bins, frames) for
    # the CQT model; None when the method has no dense output
    dense: np.ndarray | None
    deletion_curve: np.ndarray  # (F + 1,) P(target) as features are removed, top first
    deletion_random: np.ndarray  # (F + 1,) mean curve over random removal orders
    quality: dict = field(default_factory=dict)  # r2, completeness_gap, deletion_auc, ...
    seconds: float = 0.0
    # (F,) standard error of each value, for estimators that measure it (SHAP); None for
    # methods without one; zeros for exact values
    uncertainty: np.ndarray | None = None
    # what removed features were replaced by (core.explain.reference): its name (a param),
    # in words, and the model's P(spoof) of it, mean over the set ("" / None: unknown)
    reference: str = ""
    reference_label: str = ""
    reference_p_spoof: float | None = None
    # plain sentences that warn the reader (core.explain.notes), shown above the charts
    notes: list = field(default_factory=list)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ARRAY_FIELDS
        }
        arrays = {
            name: np.asarray(getattr(self, name))
            for name in ARRAY_FIELDS
            if getattr(self, name) is not None
        }
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "Explanation":
        kwargs = dict(meta)
        for name in ARRAY_FIELDS:
            kwargs[name] = arrays.get(name)
        return cls(**kwargs)


@dataclass(frozen=True)
class MethodResult:
    """What one method computes on a prepared window (explain() adds the rest)."""

    values: np.ndarray  # (F,) signed relevance of each interpretable feature
    dense: np.ndarray | None  # map on the input grid, or None
    n_evals: int  # model evaluations the attribution made (forward, or forward+backward)
    quality: dict = field(default_factory=dict)  # method-specific: r2, completeness_gap
    uncertainty: np.ndarray | None = None  # (F,) standard errors, where measured


@dataclass(frozen=True)
class Explainer:
    """
    One explanation method: a registry entry of core.explain.EXPLAINERS.

    ``fn(window, *, n_samples, seed, progress) -> MethodResult`` where ``window`` is a
    core.explain.window.Window; ``default_n_samples(window)`` gives N when the caller
    passes None (None for methods without a sample count, like Grad-CAM).
    """

    name: str
    version: str  # bump whenever the method's output for the same params would change
    fn: Callable[..., MethodResult]
    default_n_samples: Callable[..., int] | None = None
    description: str = ""
    label: str = ""  # display name ("Grad-CAM"); "" = the registry key
    cost: str = ""  # one sentence on how long it takes, for people waiting on it
    # spec -> a measured limit of the method on that model, shown next to its result
    # (None = nothing known against it)
    caveat: Callable[[object], str | None] | None = None
    # True: the method uses the network directly (hooks, gradients) and runs as one turn
    # on the model's lock; False: it only calls the model through Window (SHAP, LIME),
    # one turn per batch of coalitions, so other jobs interleave (core.detectors.scheduler)
    exclusive: bool = True
    # True: the values measure the window's difference from the reference (they sum to
    # about f(x) - f(reference)), so their sign can contradict the verdict
    # (core.explain.notes); False for maps that never compare with it (Grad-CAM)
    relative: bool = True

    def caveat_for(self, spec) -> str | None:
        return self.caveat(spec) if self.caveat is not None else None

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def uses_n_samples(self) -> bool:
        return self.default_n_samples is not None
