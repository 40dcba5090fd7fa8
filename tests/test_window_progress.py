"""Verdicts are scored window batch by window batch: the same scores as one big batch,
progress per window with an ETA, and memory that does not hold every window at once."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from core.audio.decode import frame_windows, load_audio
from core.detectors.detect import BATCH_SIZE, Detector
from core.engine.service import Engine


def long_clip(seconds: float = 30.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (0.05 * rng.standard_normal(int(16_000 * seconds))).astype(np.float32)


def test_batched_scoring_equals_one_batch_and_reports_every_batch():
    det = Detector.load("tssd1d")
    x = long_clip()
    seen = []
    v = det.score(x, progress=lambda done, total: seen.append((done, total)))
    batch, starts = frame_windows(x, det.spec.input_length, det.spec.window_hop)
    np.testing.assert_allclose([w.p_spoof for w in v.windows], det.p_spoof(batch), atol=1e-6)
    total = len(starts)
    assert total > BATCH_SIZE  # more than one batch, or the test means nothing
    assert [t for _, t in seen] == [total] * len(seen)
    assert [d for d, _ in seen] == sorted({min(i + BATCH_SIZE, total)
                                           for i in range(0, total, BATCH_SIZE)})  # fmt: skip


def test_engine_progress_names_windows_and_time_left_and_only_rises():
    eng = Engine(use_store=False)
    x = long_clip()
    buf = io.BytesIO()
    sf.write(buf, x, 16_000, format="WAV", subtype="FLOAT")
    audio = load_audio(buf.getvalue())
    events = []
    eng.analyze_audio(audio, b"", "long.wav", models=["tssd1d"],
                      progress=lambda f, msg: events.append((f, msg)))  # fmt: skip
    window_msgs = [m for _, m in events if "window" in m]
    assert window_msgs[0].startswith("tssd1d: window 8/")
    assert any("s left" in m for m in window_msgs)
    done, total = window_msgs[-1].split("window ")[1].split("/")
    assert done == total and "left" not in window_msgs[-1]
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
