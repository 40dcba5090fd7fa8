"""Shared by the Engine tests: distinct little clips, counting fake detectors and a fake
explanation backend with the real keys, thin wrappers, fixtures (pytest collects nothing
here)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import core.explain
from core.detectors.detect import verdict_from_windows
from core.detectors.registry import MODELS
from core.engine.service import Engine
from core.explain.base import Explanation

ROOT = Path(__file__).resolve().parent.parent
CLIP = "flac/MS_D_1023594.flac"


def wav_bytes(i: int, seconds: float = 0.5, rate: int = 16_000) -> bytes:
    """A distinct little clip per i (tone plus seeded noise)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(i)
    x = 0.3 * np.sin(2 * np.pi * (200 + 37 * i) * t) + 0.01 * rng.standard_normal(
        t.size
    )
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class FakeDetector:
    """Detector-shaped: a real spec under a fake key and weights hash; counts calls,
    optionally into a file (O_APPEND lines) so several processes can be counted."""

    def __init__(
        self, key="fake-a", weights="a" * 64, arch_from="tssd1d", log=None, hop=0
    ):
        self.spec = dataclasses.replace(
            MODELS[arch_from], key=key, sha256=weights, hop=hop
        )
        self.calls = 0
        self.log = log

    def windows(self, samples):
        from core.audio.decode import frame_windows

        return frame_windows(samples, self.spec.input_length, self.spec.window_hop)

    def score(self, audio, progress=None):
        self.calls += 1
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"score {self.spec.key} {audio.sha256}\n")
        samples = audio.samples
        _, starts = self.windows(samples)
        p = np.array(
            [0.2 + 0.6 * abs(float(samples[s : s + 1000].mean())) for s in starts]
        )
        return verdict_from_windows(self.spec, p, starts, len(samples), seconds=0.01)


def fake_backend(log=None):
    """explain / explain_params / EXPLAINERS with the core.explain call shape."""
    calls = []

    explain_params = core.explain.explain_params  # the real one: real keys

    def explain(detector, samples, *, method, window=None, target=None, segments=8,
                n_samples=None, seed=0, progress=None):  # fmt: skip
        calls.append((detector.spec.key, method, window, segments))
        if log:
            with open(log, "a") as f:
                f.write(f"explain {detector.spec.key} {len(samples)} {method}\n")
        rng = np.random.default_rng(seed)
        bounds = np.stack([np.arange(segments), np.arange(1, segments + 1)], 1) * 0.1
        return Explanation(
            model=detector.spec.key,
            weights_sha256=detector.spec.sha256,
            method=method,
            method_version=str(core.explain.EXPLAINERS[method].version),
            params=explain_params(
                method, window=window, target=target, segments=segments, seed=seed
            ),
            target=0,
            target_label="spoof",
            window=window if window is not None else 0,
            window_start=0.0,
            window_end=0.5,
            p_target=0.75,
            feature_kind="time",
            feature_bounds=bounds.astype(np.float64),
            values=rng.standard_normal(segments),
            dense=rng.standard_normal(detector.spec.input_length).astype(np.float32),
            deletion_curve=np.linspace(1, 0, segments + 1),
            deletion_random=np.linspace(1, 0.5, segments + 1),
            quality={"r2": 0.8, "deletion_auc": 0.3, "missing": None},
            seconds=0.02,
        )

    return SimpleNamespace(
        explain=explain,
        explain_params=explain_params,
        EXPLAINERS={k: core.explain.EXPLAINERS[k] for k in ("shap", "lime")},
        calls=calls,
    )


# the engine, spelled as each test needs it
def analyze_bytes(data, name, *, db, detectors=None, models=None, progress=None, use_store=True):
    eng = Engine(db, detectors=detectors, use_store=use_store)
    return eng.analyze(data, name, models=models, progress=progress)


def explain_stored(sha, model, method, *, db, detectors=None, backend=None, **kw):
    return Engine(db, detectors=detectors, backend=backend).explain(sha, model, method, **kw)


def load_analysis(sha, *, db):
    return Engine(db).analysis(sha)


def load_explanations(sha, *, db, **kw):
    return Engine(db).explanations(sha, **kw)



@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "cache" / "analyses.db"


@pytest.fixture
def fakes():
    return {
        "fake-a": FakeDetector("fake-a"),
        "fake-b": FakeDetector("fake-b", weights="b" * 64),
    }
