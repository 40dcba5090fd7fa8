"""A store for the browser tests: one analysed clip with an explanation per model and
method, and a small labelled batch, written with the default install's models.

The explanations come from ``StandIn``, a stand-in for core.explain that returns at once
what the real methods return in shape: time segments for the waveform models, time x
frequency patches (with a dense map) for the CQT model. The keys are the real ones, so
the dashboard serves them as stored. (pytest collects nothing here.)
"""

from __future__ import annotations

import numpy as np

import core.engine.service
from core.audio.decode import SAMPLE_RATE
from core.engine.service import Engine
from core.explain import EXPLAINERS, explain_params
from core.explain.base import Explanation

SEED_METHODS = ("gradcam", "shap")
PATCH_BANDS = (0.0, 250.0, 1000.0, 4000.0, 8000.0)  # Hz: the stand-in's patch rows


class StandIn:
    """core.explain's interface: the real registry and parameters, instant results."""

    EXPLAINERS = EXPLAINERS

    @staticmethod
    def explain_params(method, **kw):
        return explain_params(method, **kw)

    def explain(self, detector, samples, *, method, window=None, target=None,
                segments=8, n_samples=None, seed=0, progress=None, **_):
        spec = detector.spec
        _, starts = detector.windows(samples)
        w = 0 if window is None else int(window)
        start = starts[w] / SAMPLE_RATE
        end = min(starts[w] + spec.input_length, len(samples)) / SAMPLE_RATE
        rng = np.random.default_rng(sorted(EXPLAINERS).index(method) + 7 * len(spec.key))
        t = np.linspace(start, end, segments + 1)
        if str(spec.front_end) == "cqt":
            f = PATCH_BANDS
            bounds = np.array([[t[i], t[i + 1], f[j], f[j + 1]]
                               for j in range(len(f) - 1) for i in range(segments)])
            kind, dense = "time-frequency", rng.normal(size=(432, 60))
        else:
            bounds, kind, dense = np.stack([t[:-1], t[1:]], axis=1), "time", None
        values = rng.normal(scale=0.2, size=len(bounds))
        label = target or "spoof"
        n = len(values)
        return Explanation(
            model=spec.key, weights_sha256=spec.sha256, method=method,
            method_version=str(EXPLAINERS[method].version),
            params=explain_params(method, window=window, target=target, segments=segments),
            target=spec.spoof_index if label == "spoof" else 1 - spec.spoof_index,
            target_label=label, window=w, window_start=start, window_end=end,
            p_target=0.9, feature_kind=kind, feature_bounds=bounds, values=values,
            dense=dense, deletion_curve=np.linspace(0.95, 0.1, n + 1),
            deletion_random=np.linspace(0.95, 0.6, n + 1),
            quality={"deletion_auc": 0.4, "deletion_auc_random": 0.7}, seconds=0.01,
        )  # fmt: skip


def seed_analysis(db, clip, *, methods=SEED_METHODS, real: bool = False) -> str:
    """
    analyse ``clip`` with every installed model and store an explanation per model and
    method: stand-ins, or (``real``) the real methods' (minutes on a busy CPU)
    """
    saved = core.engine.service.EXPLAIN_BACKEND
    core.engine.service.EXPLAIN_BACKEND = None if real else StandIn()
    try:
        eng = Engine(db)
        a = eng.analyze(clip.read_bytes(), clip.name)
        for model in a.verdicts:
            for method in methods:
                eng.explain(a.sha256, model, method)
        return a.sha256
    finally:
        core.engine.service.EXPLAIN_BACKEND = saved


def seed_batch(db) -> None:
    """a labelled batch of four generated files with stored SHAP (tests/test_corpus_page)"""
    from test_corpus_page import _fill

    _fill(db, [("B1", "-", "bonafide", 0.1, [0, 1]), ("B2", "-", "bonafide", 0.3, [1, 0]),
               ("S1", "A01", "spoof", 0.9, [3, 1]), ("S2", "A01", "spoof", 0.2, [1, 1])])
