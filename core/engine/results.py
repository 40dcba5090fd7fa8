"""Typed results that travel from the engine to the pages, the CLI and the report.

``Analysis`` is one audio file with each model's ``Verdict`` (core.detectors.detect); explanations
are ``Explanation`` objects (core.explain.base). Readers use attributes; the only dict
shapes are the store's rows (turned into these types here) and the JSON a caller asks
for with ``to_json()``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

from core.audio.quality import InputQuality, QualityWarning
from core.detectors.detect import Verdict, WindowScore
from core.explain.base import Explanation
from core.jsonsafe import finite
from core.judgement.combined import Combined


def verdict_from_row(d: Mapping[str, Any]) -> Verdict:
    """A Verdict from Verdict.to_json() or a stored prediction row."""
    names = {f.name for f in dataclasses.fields(Verdict)}
    kwargs = {k: v for k, v in d.items() if k in names}
    kwargs["windows"] = [
        WindowScore(start=float(w["start"]), end=float(w["end"]), p_spoof=float(w["p_spoof"]),
                    index=int(w.get("index", -1)))  # rows from before the cap: -1 = position
        for w in d.get("windows", [])
    ]  # fmt: skip
    params = d.get("params") or {}
    kwargs["n_windows"] = int(d.get("n_windows") or params.get("windows_total") or 0)
    emb = d.get("embedding")
    kwargs["embedding"] = tuple(float(x) for x in emb) if emb else None
    return Verdict(**kwargs)


def explanation_from_record(meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> Explanation:
    """An Explanation from a stored (meta, arrays) record; unknown meta keys are ignored."""
    names = {f.name for f in dataclasses.fields(Explanation)}
    return Explanation.from_record({k: v for k, v in meta.items() if k in names}, dict(arrays))


class ExplainResult(NamedTuple):
    explanation: Explanation
    cached: bool  # served from the store
    seconds: float  # wall time of this call


@dataclass(frozen=True)
class Analysis:
    sha256: str  # of the original file's bytes
    filename: str  # the name given to this call (stored: the latest one seen)
    filenames: tuple[str, ...]  # every name this audio was seen under
    duration: float  # seconds
    orig_sample_rate: int  # Hz
    orig_channels: int
    orig_format: str
    n_bytes: int
    near_silent: bool
    verdicts: dict[str, Verdict]  # model key -> verdict
    cached: dict[str, bool]  # model key -> served from the store
    seconds: dict[str, float]  # model key -> wall time this call spent on it
    first_seen: str = ""  # ISO 8601 UTC; "" when not stored
    last_seen: str = ""
    explanations: tuple[dict, ...] = field(default=())  # stored explanation summaries
    quality: InputQuality | None = None  # input measurements and warnings
    combined: Combined | None = None  # the calibrated combined verdict

    @property
    def warnings(self) -> tuple[QualityWarning, ...]:
        return self.quality.warnings if self.quality is not None else ()

    def to_json(self) -> dict:
        return finite(
            {
                "sha256": self.sha256,
                "filename": self.filename,
                "filenames": list(self.filenames),
                "duration": self.duration,
                "orig_sample_rate": self.orig_sample_rate,
                "orig_channels": self.orig_channels,
                "orig_format": self.orig_format,
                "n_bytes": self.n_bytes,
                "near_silent": self.near_silent,
                "first_seen": self.first_seen,
                "last_seen": self.last_seen,
                "models": [
                    {
                        "model": v.model,
                        "weights_sha256": v.weights_sha256,
                        "p_spoof": v.p_spoof,
                        "label": v.label,
                        "max_p_spoof": v.max_p_spoof,
                        "max_window": v.max_window,
                        "windows": [dataclasses.asdict(w) for w in v.windows],
                        "n_windows": v.total_windows,  # the file's; windows: those scored
                        "cached": self.cached[k],
                        "seconds": self.seconds[k],
                        "compute_seconds": v.seconds,
                    }
                    for k, v in self.verdicts.items()
                ],
                "combined": self.combined.to_json() if self.combined else None,
                "warnings": [w.to_json() for w in self.warnings],
                "quality": self.quality.to_json() if self.quality else None,
            }
        )


def explanation_json(e: Explanation, *, cached: bool, seconds: float) -> dict:
    """One explanation as JSON (the dense map is left out: it is large)."""
    return finite(
        {
            "model": e.model,
            "method": e.method,
            "method_version": e.method_version,
            "target": e.target,
            "target_label": e.target_label,
            "window": e.window,
            "window_start": e.window_start,
            "window_end": e.window_end,
            "p_target": e.p_target,
            "feature_kind": e.feature_kind,
            "feature_bounds": e.feature_bounds.tolist(),
            "values": e.values.tolist(),
            # per-feature standard errors where the method measures them (SHAP), else null
            "uncertainty": None if e.uncertainty is None else e.uncertainty.tolist(),
            "quality": e.quality,
            "params": e.params,
            "seconds": seconds,
            "compute_seconds": e.seconds,
            "cached": cached,
        }
    )
