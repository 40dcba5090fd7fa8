"""Scoring arithmetic (core.detectors.precision): the bfloat16 rule, its override, and that a
bfloat16 AASIST really computes in bfloat16 and stays close to float32."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import core.detectors.precision as precision
import core.training.calibrate as calibrate
from core.audio.protocol import ProtocolEntry
from core.detectors.detect import Detector
from core.detectors.registry import ARCHS, MODELS

ALLOWED = MODELS["aasist"]  # its architecture has cpu_bf16 set
NOT_ALLOWED = MODELS["tssd2d"]
HAND_MADE = SimpleNamespace(key="toy")


@pytest.fixture
def native(monkeypatch):
    def set_native(value: bool):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)

    return set_native


def test_auto_uses_bf16_only_for_allowed_archs_on_a_cpu_with_native_support(monkeypatch, native):
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)
    native(True)
    assert precision.scoring_precision(ALLOWED, "cpu") == "bf16"
    assert precision.scoring_precision(NOT_ALLOWED, "cpu") == "fp32"
    assert precision.scoring_precision(HAND_MADE, "cpu") == "fp32"  # no architecture
    assert precision.scoring_precision(ALLOWED, torch.device("cuda")) == "fp32"
    native(False)
    assert precision.scoring_precision(ALLOWED, "cpu") == "fp32"


def test_shipped_archs_that_score_in_bf16():
    # measured (core.detectors.precision): AASIST only; AASIST-L and the Res-TSSDNets moved too much
    assert {k for k, a in ARCHS.items() if a.cpu_bf16} == {"aasist"}


def test_the_environment_overrides_and_a_bad_value_is_refused(monkeypatch, native):
    native(True)
    monkeypatch.setenv(precision.PRECISION_ENV, "fp32")
    assert precision.scoring_precision(ALLOWED, "cpu") == "fp32"
    monkeypatch.setenv(precision.PRECISION_ENV, " BF16 ")
    native(False)
    assert precision.scoring_precision(NOT_ALLOWED, "cpu") == "bf16"  # forced, for measuring
    assert precision.scoring_precision(NOT_ALLOWED, "cuda") == "fp32"  # never on a GPU
    monkeypatch.setenv(precision.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="DEEPFAKE_PRECISION='half'.*auto, fp32, bf16"):
        precision.scoring_precision(ALLOWED, "cpu")
    with pytest.raises(ValueError, match="DEEPFAKE_PRECISION"):
        Detector.load("aasist")


def _conv_dtypes(det: Detector, x: np.ndarray) -> tuple[np.ndarray, set]:
    seen = set()
    hook = det.net.conv_time.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    try:
        return det.p_spoof(x), seen
    finally:
        hook.remove()


def test_a_bf16_aasist_computes_in_bf16_and_stays_close_to_fp32(monkeypatch):
    rng = np.random.default_rng(0)
    t = np.arange(MODELS["aasist"].input_length) / 16_000
    # two windows of voiced-like audio: harmonics of a gliding pitch plus a little noise
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16_000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x = np.stack([0.1 * voiced, 0.05 * voiced[::-1]]) + 0.003 * rng.standard_normal((2, len(t)))
    x = x.astype(np.float32)
    monkeypatch.setenv(precision.PRECISION_ENV, "fp32")
    det32 = Detector.load("aasist")
    p32, dtypes32 = _conv_dtypes(det32, x)
    monkeypatch.setenv(precision.PRECISION_ENV, "bf16")
    det16 = Detector.load("aasist")
    p16, dtypes16 = _conv_dtypes(det16, x)
    assert (det32.precision, det16.precision) == ("fp32", "bf16")
    assert dtypes32 == {torch.float32} and dtypes16 == {torch.bfloat16}
    assert p16.dtype == p32.dtype == np.float64 and np.all((p16 >= 0) & (p16 <= 1))
    assert np.max(np.abs(p16 - p32)) < 0.05  # measured on dev files: <= 0.025
    assert not np.array_equal(p16, p32)  # really another arithmetic


def test_cached_scores_keep_bf16_and_fp32_apart(tmp_path, monkeypatch):
    calls = []

    def fake_score_protocol(detector, entries, audio_dir, progress=True):
        calls.append(detector.precision)
        value = 0.25 if detector.precision == "fp32" else 0.75
        return [SimpleNamespace(score=value) for _ in entries]

    monkeypatch.setattr(calibrate, "score_protocol", fake_score_protocol)
    entries = [ProtocolEntry("S", "F1", "-", "bonafide", 1)]
    spec = MODELS["aasist"]
    for p, want in (("fp32", 0.25), ("bf16", 0.75), ("fp32", 0.25), ("bf16", 0.75)):
        det = SimpleNamespace(spec=spec, precision=p)
        got = calibrate.cached_scores(det, entries, tmp_path, cache_dir=tmp_path / "c", progress=False)
        assert got.tolist() == [want]
    assert calls == ["fp32", "bf16"]  # the second round came from the cache, each its own
    names = sorted(f.name for f in (tmp_path / "c").iterdir())
    assert len(names) == 2 and sum(".bf16." in n for n in names) == 1


def test_model_cards_say_how_this_server_scores_each_model(monkeypatch, native):
    from core.engine.cards import model_cards

    native(True)
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)
    cards = {c["key"]: c for c in model_cards()}
    assert cards["aasist"]["arithmetic"] == "bfloat16"
    assert cards["tssd2d"]["arithmetic"] == cards["aasist-l-official"]["arithmetic"] == "float32"
    monkeypatch.setenv(precision.PRECISION_ENV, "fp32")
    assert {c["arithmetic"] for c in model_cards()} == {"float32"}
    monkeypatch.setenv(precision.PRECISION_ENV, "fp16")
    assert "DEEPFAKE_PRECISION='fp16'" in model_cards()[0]["arithmetic"]
