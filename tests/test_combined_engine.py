"""The combined verdict and input warnings through the Engine, the store and the CLI."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import soundfile as sf

from core.detectors.detect import verdict_from_windows
from core.detectors.registry import MODELS
from core.engine.service import Engine
from core.judgement.calibration_file import fit_calibration_file

SR = 16_000


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    """harmonic 'syllables' of 200 ms with 100-ms pauses: wide band, enough speech"""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 45) if k * 190 < 7_600)
    env = ((t % 0.3) < 0.2).astype(float)
    x = 0.3 * x * env / np.max(np.abs(x)) + 1e-4 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def wav(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class Fixed:
    """Detector-shaped: every window gets the same P(spoof)."""

    def __init__(self, key: str, p: float):
        self.spec = dataclasses.replace(MODELS["tssd1d"], key=key, sha256=key[-1] * 64)
        self.p = p

    def score(self, audio, progress=None):
        from core.audio.decode import frame_windows

        _, starts = frame_windows(audio.samples, self.spec.input_length, self.spec.window_hop)
        p = np.full(len(starts), self.p)
        return verdict_from_windows(self.spec, p, starts, len(audio.samples), seconds=0.0)


@pytest.fixture
def calibrated(tmp_path):
    rng = np.random.default_rng(1)
    y = np.array([1] * 40 + [0] * 40)
    scores = {k: np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.15, y.size), 0.01, 0.99)
              for k in ("fake-a", "fake-b")}  # fmt: skip
    cal = fit_calibration_file(scores, y, weights_sha256={"fake-a": "a" * 64, "fake-b": "b" * 64},
                               fitted_on={"test": True}, max_error=0.05)  # fmt: skip
    path = tmp_path / "calibration.json"
    cal.save(path)
    return path


def test_analysis_carries_combined_verdict_and_measured_warnings(tmp_path, calibrated):
    dets = {"fake-a": Fixed("fake-a", 0.97), "fake-b": Fixed("fake-b", 0.95)}
    eng = Engine(tmp_path / "s.db", detectors=dets, calibration=calibrated)
    a = eng.analyze(wav(speech(7.0)), "long.wav")
    assert a.combined.band == "likely_spoof" and a.combined.models == ("fake-a", "fake-b")
    assert not a.combined.models_disagree and "little_speech" not in a.quality.codes
    # stored: the repeat view rebuilds the same verdict and warnings without decoding
    again = eng.analysis(a.sha256)
    assert again.combined == a.combined and again.quality.codes == a.quality.codes

    short = eng.analyze(wav(speech(0.3)), "short.wav")
    assert short.combined.band == "too_short" and not short.combined.confident
    assert {"little_speech", "too_short"} <= set(short.quality.codes)
    assert short.quality.notes  # the clip is shorter than a window: a note, not a warning
    j = short.to_json()
    assert j["combined"]["band"] == "too_short" and {"p_spoof", "models_disagree"} <= set(j["combined"])
    w = {x["code"]: x for x in j["warnings"]}
    assert w["too_short"]["value"] == pytest.approx(0.3, abs=0.01) and w["too_short"]["threshold"] == 1.0

    page = eng.history(band="too_short")
    assert page.total == 1 and page.items[0]["sha256"] == short.sha256
    assert eng.history(band="likely_spoof").total == 1
    assert eng.history().items[0]["combined"]["band"] in ("too_short", "likely_spoof")
    with pytest.raises(ValueError, match="band must be"):
        eng.history(band="maybe")


def test_disagreeing_models_are_flagged(tmp_path, calibrated):
    dets = {"fake-a": Fixed("fake-a", 0.97), "fake-b": Fixed("fake-b", 0.03)}
    a = Engine(tmp_path / "s.db", detectors=dets, calibration=calibrated).analyze(
        wav(speech(7.0)), "split.wav"
    )
    assert a.combined.models_disagree and a.combined.calibrated["fake-a"] > 0.5


def test_cli_json_has_combined_and_warnings(tmp_path, capsys):
    from core.cli import main

    f = tmp_path / "tiny.wav"
    f.write_bytes(wav(speech(0.3)))
    rc = main(["analyze", str(f), "--model", "tssd1d", "--json", "--db", str(tmp_path / "c.db")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)[0]
    assert out["combined"]["band"] == "too_short"
    assert set(out["combined"]) >= {"p_spoof", "band", "models_disagree"}
    codes = {w["code"] for w in out["warnings"]}
    assert {"too_short", "little_speech"} <= codes
    # each with its value in a unit: "duration 0.3 s (below 1 s)"
    assert all({"code", "message", "value", "threshold", "measured"} <= set(w)
               for w in out["warnings"])  # fmt: skip
