"""Shared by the dashboard tests (AppTest): generated clips, the fast explanation stand-in
with the real method registry, the app_env fixture and small readers of a running page
(pytest collects nothing here)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import streamlit as st
from streamlit.testing.v1 import AppTest

import core.detectors.registry
import core.engine.service
import ui
import ui.gate
from core.audio.decode import SAMPLE_RATE
from core.engine.results import Analysis
from core.engine.service import Engine
from core.explain import EXPLAINERS, explain_params
from core.explain.base import Explanation

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
PAGES = [p.file for p in ui.PAGES.values()]
TIMEOUT = 240  # s: the first run loads two AASIST checkpoints on a busy 2-core CPU



def wav_bytes(seconds: float = 2.0, *, freq: float = 220.0, seed: int = 0) -> bytes:
    """a generated clip: a tone plus a little noise, 16-bit WAV at 16 kHz"""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.random.default_rng(seed).normal(scale=0.03, size=t.size)
    x = (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class FastExplain:
    """
    Stand-in for core.explain (core.engine.service.EXPLAIN_BACKEND): the real EXPLAINERS and
    explain_params, so cache keys are real; explain() returns a deterministic
    time-segment explanation of the requested window at once, and counts its calls.
    """

    EXPLAINERS = EXPLAINERS

    def __init__(self):
        self.calls = 0

    @staticmethod
    def explain_params(method, **kw):
        return explain_params(method, **kw)

    def explain(self, detector, samples, *, method, window=None, target=None,
                segments=8, n_samples=None, seed=0, progress=None, **_):
        self.calls += 1
        if progress:
            progress(0.5, f"{method}: half way")
        spec = detector.spec
        _, starts = detector.windows(samples)
        w = 0 if window is None else int(window)
        start = starts[w] / SAMPLE_RATE
        end = min(starts[w] + spec.input_length, len(samples)) / SAMPLE_RATE
        edges = np.linspace(start, end, segments + 1)
        phase = sorted(EXPLAINERS).index(method) * 0.3 + (0.1 if "-l-" in spec.key else 0.0)
        values = np.sin(np.linspace(0, 3, segments) + phase)
        label = target or "spoof"
        return Explanation(
            model=spec.key, weights_sha256=spec.sha256, method=method,
            method_version=str(EXPLAINERS[method].version),
            params=explain_params(method, window=window, target=target, segments=segments),
            target=spec.spoof_index if label == "spoof" else 1 - spec.spoof_index,
            target_label=label, window=w, window_start=start, window_end=end,
            p_target=0.9, feature_kind="time",
            feature_bounds=np.stack([edges[:-1], edges[1:]], axis=1), values=values,
            dense=None, deletion_curve=np.linspace(0.9, 0.2, segments + 1),
            deletion_random=np.linspace(0.9, 0.6, segments + 1),
            quality={"deletion_auc": 0.4}, seconds=0.01,
        )  # fmt: skip


@pytest.fixture
def app_env(tmp_path, monkeypatch, official_weights_dir):
    """a fresh store, the published weights, no password, the fast explainer"""
    monkeypatch.setenv("DEEPFAKE_DB", str(tmp_path / "store" / "analyses.db"))
    monkeypatch.delenv("DEEPFAKE_PASSWORD", raising=False)
    backend = FastExplain()
    monkeypatch.setattr(core.engine.service, "EXPLAIN_BACKEND", backend)
    st.cache_data.clear()  # model list, model cards, spectrograms of another store
    yield {"db": tmp_path / "store" / "analyses.db", "explain": backend}
    st.cache_data.clear()


def new_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = str(v)
    return at


def analyse(data: bytes, name: str, db) -> Analysis:
    return Engine(db).analyze(data, name)


def cards(at: AppTest) -> list[str]:
    """the verdict cards' text: model name and verdict"""
    return [
        re.sub(r"<[^>]+>", " ", m.value)
        for m in at.markdown
        if "verdict-card" in m.value
    ]


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "error",
                 "warning", "success", "code"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
