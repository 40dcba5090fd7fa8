"""Hand-built explanations, verdicts and analyses for the chart, geometry and report
tests (imported by them; pytest collects nothing here)."""

from __future__ import annotations

import numpy as np

from core.detectors.detect import Verdict, WindowScore
from core.engine.results import Analysis
from core.explain.base import Explanation


def make_expl(
    values,
    *,
    target_label="spoof",
    kind="time",
    start=1.0,
    end=5.0,
    dense=None,
    method="shap",
    model="aasist-official",
    bounds=None,
    quality=None,
) -> Explanation:
    """equal time segments over [start, end] (patches: 100-1000 Hz), unless ``bounds``"""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if bounds is None:
        edges = np.linspace(start, end, n + 1)
        bounds = np.stack([edges[:-1], edges[1:]], axis=1)
        if kind == "time-frequency":
            bounds = np.concatenate([bounds, np.tile([[100.0, 1000.0]], (n, 1))], axis=1)
    return Explanation(
        model=model,
        weights_sha256="ab" * 32,
        method=method,
        method_version="1",
        params={"segments": n, "seed": 0},
        target=0 if target_label == "spoof" else 1,
        target_label=target_label,
        window=2,
        window_start=start,
        window_end=end,
        p_target=0.9,
        feature_kind=kind,
        feature_bounds=np.asarray(bounds, dtype=np.float64),
        values=values,
        dense=dense,
        deletion_curve=np.linspace(0.9, 0.1, n + 1),
        deletion_random=np.linspace(0.9, 0.5, n + 1),
        quality={"r2": 0.8, "deletion_auc": 0.3} if quality is None else quality,
        seconds=1.5,
    )


def make_verdict(p=0.8, model="aasist-official") -> Verdict:
    return Verdict(
        model=model,
        weights_sha256="51d2" + "0" * 60,
        p_spoof=p,
        label="spoof" if p >= 0.5 else "bonafide",
        max_p_spoof=p,
        max_window=0,
        windows=[WindowScore(0.0, 4.0, p), WindowScore(2.0, 6.0, p / 2)],
    )


def make_analysis(verdicts: dict, *, sha256="f" * 64, filenames=("clip.wav",)) -> Analysis:
    return Analysis(
        sha256=sha256,
        filename=filenames[0] if filenames else "",
        filenames=tuple(filenames),
        duration=6.0,
        orig_sample_rate=44_100,
        orig_channels=2,
        orig_format="WAV",
        n_bytes=1000,
        near_silent=False,
        verdicts=verdicts,
        cached={k: True for k in verdicts},
        seconds={k: 0.1 for k in verdicts},
    )
