"""The architecture is the unit of extension: a toy one registered at run time is
scored, explained and trained by the unchanged engine; a toy explanation method runs
through explain(). Registrations are undone on teardown, so nothing leaks into other
tests."""

from __future__ import annotations

import argparse
import json
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.detectors.detect import Detector
from core.detectors.frontends import WaveformFrontEnd
from core.detectors.registry import (
    ARCHS,
    MODELS,
    WEIGHTS_ENV,
    Arch,
    ModelSpec,
    Recipe,
    file_sha256,
    register_arch,
    register_model,
    unregister_arch,
    unregister_model,
    weights_dir,
)
from core.explain import EXPLAINERS, explain, explain_params
from core.explain.base import Explainer, MethodResult

SR = 16_000
TOY_LENGTH = 1600  # 0.1 s windows
TOY_RECIPE = Recipe(lr=5e-3, batch_size=2, weight_decay=0.0, epochs=1)


class ToyNet(nn.Module):
    """a strided convolution, the Grad-CAM block, global average pool, linear head"""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv = nn.Conv1d(1, channels, 9, stride=4, padding=4)
        self.block = nn.Conv1d(channels, channels, 5, stride=2, padding=2)
        self.head = nn.Linear(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(x.unsqueeze(1)))  # (B, C, T / 4)
        h = F.relu(self.block(h))  # (B, C, T / 8)
        return self.head(h.mean(dim=-1))  # (B, 2)


TOY_ARCH = Arch(
    build=lambda config: ToyNet(**config),
    front_end=WaveformFrontEnd(TOY_LENGTH),
    spoof_index=1,
    gradcam_layer="block",
    recipe=TOY_RECIPE,
    paper="none: a test architecture",
    default_config={"channels": 4},
)


@contextmanager
def registered(key: str, arch: Arch, spec: ModelSpec | None = None):
    register_arch(key, arch)
    try:
        if spec is not None:
            register_model(spec)
        try:
            yield
        finally:
            if spec is not None:
                unregister_model(spec.key)
    finally:
        unregister_arch(key)


@pytest.fixture
def toy_spec(tmp_path, monkeypatch):
    """arch "toy" plus model "toy-model" whose weights are a state dict in a temp dir"""
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    torch.save(TOY_ARCH.build(TOY_ARCH.default_config).state_dict(), weights / "toy.pt")
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    spec = ModelSpec(
        key="toy-model",
        display_name="Toy (test)",
        arch="toy",
        config=dict(TOY_ARCH.default_config),
        weights="toy.pt",
        sha256=file_sha256(weights / "toy.pt"),
        provenance="random init, written by the test fixture",
        how_to_get="written by tests/test_extension.py",
    )
    with registered("toy", TOY_ARCH, spec):
        yield spec


def clip(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def test_registration_is_undone_and_checked():
    spec = ModelSpec("toy-x", "x", "toy-x", {}, "x.pt", "0" * 64, "", "")
    with pytest.raises(ValueError, match="unknown architecture"):
        register_model(spec)
    with pytest.raises(RuntimeError, match="boom"):
        with registered("toy-x", TOY_ARCH, spec):
            assert MODELS["toy-x"].input_length == TOY_LENGTH
            with pytest.raises(ValueError, match="already registered"):
                register_arch("toy-x", TOY_ARCH)
            with pytest.raises(ValueError, match="used by models toy-x"):
                unregister_arch("toy-x")
            raise RuntimeError("boom")
    assert "toy-x" not in ARCHS and "toy-x" not in MODELS


def test_detector_loads_and_scores_a_half_second_clip(toy_spec):
    det = Detector.load("toy-model", device="cpu")
    x = clip(0.5)
    v = det.score(x)
    # 1600-sample windows every 800 samples over 8000 samples: starts 0 .. 6400
    assert [round(w.start * SR) for w in v.windows] == list(range(0, 6401, 800))
    assert v.model == "toy-model" and v.weights_sha256 == toy_spec.sha256
    # the engine's score is the mean softmax P(spoof) of the saved net's windows
    net = ToyNet()
    net.load_state_dict(torch.load(weights_dir() / toy_spec.weights, weights_only=True))
    windows = torch.from_numpy(np.stack([x[s : s + 1600] for s in range(0, 6401, 800)]))
    with torch.no_grad():
        expected = torch.softmax(net.eval()(windows).double(), -1)[:, 1].mean().item()
    assert v.p_spoof == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("method", ["gradcam", "shap", "lime"])
def test_explain_runs_every_method_on_the_toy_arch(toy_spec, method):
    det = Detector.load("toy-model", device="cpu")
    x = clip(0.5)
    e = explain(det, x, method=method, segments=4, n_samples=12, random_orders=1)
    assert e.model == "toy-model" and e.feature_kind == "time"
    assert e.values.shape == (4,) and np.isfinite(e.values).all()
    assert e.feature_bounds.shape == (4, 2)
    assert e.window_end - e.window_start == pytest.approx(TOY_LENGTH / SR)
    assert e.deletion_curve.shape == (5,)
    assert e.deletion_curve[0] == pytest.approx(e.p_target)
    if method == "gradcam":
        assert e.dense.shape == (TOY_LENGTH,) and (e.dense >= 0).all()
        assert e.quality["layer"] == "block" and "band_hz" not in e.quality


def write_corpus(root, n_per_class: int, prefix: str) -> str:
    """tone = bona fide, noise = spoof; FLAC (the corpus layout: AUDIO_DIR/ID.flac)"""
    lines = []
    for i in range(n_per_class):
        t = np.arange(int(0.2 * SR)) / SR
        tone = 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)
        noise = 0.3 * np.random.default_rng(i).standard_normal(t.size)
        for key, x in (("bonafide", tone), ("spoof", noise)):
            file_id = f"{prefix}_{key}_{i}"
            sf.write(root / f"{file_id}.flac", x.astype(np.float32), SR)
            system = "-" if key == "bonafide" else "A01"
            lines.append(f"SPK {file_id} - {system} {key}")
    protocol = root / f"{prefix}.txt"
    protocol.write_text("\n".join(lines) + "\n")
    return str(protocol)


def test_train_one_epoch_of_the_toy_arch(toy_spec, tmp_path):
    from core.cli.train import add_cli
    from core.detectors.registry import load_model
    from core.training.evaluate import spec_from_sidecar

    audio = tmp_path / "audio"
    audio.mkdir()
    train_p, dev_p = write_corpus(audio, 2, "train"), write_corpus(audio, 2, "dev")
    out = tmp_path / "out" / "toy-trained.pt"
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["train", "--arch", "toy", "--protocol", train_p, "--audio-dir", str(audio),
         "--dev-protocol", dev_p, "--out", str(out), "--no-progress"]
    )  # fmt: skip
    assert args.func(args) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    # every default came from the architecture: recipe, config, input length
    assert side["arch"] == "toy" and side["epochs_done"] == TOY_RECIPE.epochs
    assert side["recipe"]["lr"] == TOY_RECIPE.lr and side["recipe"]["batch_size"] == 2
    assert side["config"] == {"channels": 4} and side["n_samples"] == TOY_LENGTH
    assert side["recipe"]["crop"].startswith(f"one random crop of {TOY_LENGTH} samples")
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert set(state) == set(ToyNet().state_dict())
    # the trained weights load through the registry, checksum-verified
    net = load_model(spec_from_sidecar(out), directory=out.parent, device="cpu")
    with torch.no_grad():
        assert net(torch.zeros(3, TOY_LENGTH)).shape == (3, 2)


@pytest.fixture
def toy_method(monkeypatch):
    """an explanation method registered for one test: each segment's mean energy"""

    def energy(window, *, n_samples=None, seed=0, progress=None) -> MethodResult:
        dense = window.x[0].numpy() ** 2
        return MethodResult(values=window.region_mean(dense), dense=dense, n_evals=0)

    method = Explainer(name="toy-energy", version="1", fn=energy, description="test")
    monkeypatch.setitem(EXPLAINERS, method.name, method)
    return method


def test_explain_runs_a_registered_method(toy_spec, toy_method):
    det = Detector.load("toy-model", device="cpu")
    x = clip(0.2)  # two windows
    x[:1600] *= np.repeat([0.1, 1.0, 0.5, 2.0], 400).astype(np.float32)
    e = explain(det, x, method="toy-energy", window=0, segments=4, random_orders=0)
    expected = (x[:1600].astype(np.float64) ** 2).reshape(4, 400).mean(axis=1)
    np.testing.assert_allclose(e.values, expected, rtol=1e-5)
    assert e.method == "toy-energy" and e.params == explain_params(
        "toy-energy", window=0, segments=4, random_orders=0
    )
    assert int(np.argmax(e.values)) == 3


def test_toy_arch_through_engine_analyze(toy_spec, toy_method, tmp_path):
    """A runtime-registered architecture and method go through the Engine like the
    built-in ones: analyze (stored), explain (stored), and a repeat view from the store."""
    import io

    from core.engine.keys import verdict_key, verdict_params
    from core.engine.service import Engine

    assert verdict_params(toy_spec) == {
        "n_samples": TOY_LENGTH, "hop": TOY_LENGTH // 2, "frontend": "waveform",
        "threshold": 0.5,
    }  # fmt: skip
    assert verdict_key("a" * 64, toy_spec).model == "toy-model"
    buf = io.BytesIO()
    sf.write(buf, clip(0.2), SR, format="WAV", subtype="FLOAT")
    eng = Engine(tmp_path / "toy.db")
    a = eng.analyze(buf.getvalue(), "toy.wav", models=["toy-model"])
    v = a.verdicts["toy-model"]
    assert 0 <= v.p_spoof <= 1 and len(v.windows) == 3 and a.cached == {"toy-model": False}
    for method in ("gradcam", "shap", "toy-energy"):
        r = eng.explain(a.sha256, "toy-model", method, segments=4)
        assert not r.cached and r.explanation.window == v.max_window
        assert eng.explain(a.sha256, "toy-model", method, segments=4).cached
    again = Engine(tmp_path / "toy.db").analysis(a.sha256)
    assert again.verdicts["toy-model"] == v
