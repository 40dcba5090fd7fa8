import json

import numpy as np
import pytest
import torch

from core.audio.features import (
    CQT_BINS,
    CQT_N_SAMPLES,
    cqt_frequencies,
    cqt_log_power,
    cqt_magnitude,
)
from core.detectors.detect import Detector, p_spoof_from_logits, verdict_from_windows
from core.detectors.networks.aasist import AASIST, AASIST_CONFIG, AASIST_L_CONFIG
from core.detectors.networks.tssdnet import CQTResTSSDNet, ResTSSDNet
from core.detectors.registry import (
    ARCHS,
    MODELS,
    WeightsError,
    available_models,
    load_model,
    weights_status,
)


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts():
    # the papers: Res-TSSDNet ~0.35 M, 2D Res-TSSDNet ~0.97 M, AASIST-L 85,306
    assert 340_000 < n_params(ResTSSDNet()) < 360_000
    assert 960_000 < n_params(CQTResTSSDNet()) < 980_000
    assert n_params(AASIST(AASIST_L_CONFIG)) == 85_306
    assert n_params(AASIST(AASIST_CONFIG)) == 297_866


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_forward_shapes(arch):
    torch.manual_seed(0)
    a = ARCHS[arch]
    net = a.build(a.default_config).eval()
    x = a.front_end.transform(torch.randn(2, a.input_length) * 0.1)
    assert x.shape == (2, *a.front_end.input_shape)
    if str(a.front_end) == "cqt":
        assert x.shape == (2, 1, 432, 401)  # the paper's 432 x 400 (+1 centred) input
    with torch.no_grad():
        assert net(x).shape == (2, 2)


def test_front_ends_and_stored_names():
    # the names are part of stored verdict keys: they must never change
    expected = {"tssd1d": ("waveform", 96_000), "tssd2d": ("cqt", 102_400),
                "aasist": ("waveform", 64_600), "aasist-l": ("waveform", 64_600),
                "inc-tssdnet": ("waveform", 96_000)}  # fmt: skip
    assert {k: (str(a.front_end), a.input_length) for k, a in ARCHS.items()} == expected
    assert ARCHS["tssd2d"].front_end.grid_shape == (432, 401)
    assert ARCHS["tssd1d"].front_end.grid_shape == (96_000,)
    # the published models' configs are their architectures' defaults
    assert MODELS["aasist-official"].config == ARCHS["aasist"].default_config
    assert MODELS["aasist-l-official"].config == ARCHS["aasist-l"].default_config
    assert n_params(ARCHS["aasist-l"].build(ARCHS["aasist-l"].default_config)) == 85_306
    # training recipes moved from core.training.train onto the architectures
    assert (ARCHS["tssd1d"].recipe.lr, ARCHS["aasist"].recipe.weight_decay) == (1e-3, 1e-4)


def test_verdict_params_keep_the_stored_key():
    from core.engine.keys import verdict_params

    assert verdict_params(MODELS["tssd2d"]) == {
        "n_samples": 102_400, "hop": 51_200, "frontend": "cqt", "threshold": 0.5
    }  # fmt: skip
    assert verdict_params(MODELS["aasist-official"]) == {
        "n_samples": 64_600, "hop": 32_300, "frontend": "waveform", "threshold": 0.5
    }  # fmt: skip


def test_waveform_cam_of_a_spectral_layer_is_averaged_over_rows():
    fe = ARCHS["aasist"].front_end.with_length(8)
    cam = torch.tensor([[[[1.0, 1.0], [3.0, 3.0]]]])  # (1, 1, rows 2, T' 2)
    np.testing.assert_allclose(fe.cam_to_grid(cam), np.full(8, 2.0))
    edges = ARCHS["aasist"].cam_bands(23)
    assert edges.shape == (23, 2) and edges[0, 0] == 0.0 and edges[-1, 1] < 8_000
    assert (edges[1:, 0] == edges[:-1, 1]).all()  # contiguous mel bands


@pytest.mark.parametrize("key,ref_name", [("aasist-official", "AASIST"), ("aasist-l-official", "AASIST-L")])
def test_aasist_reproduces_published_logits(official_weights_dir, aasist_official_dir, key, ref_name):
    ref = json.loads((aasist_official_dir / "reference_logits.json").read_text())
    x = torch.from_numpy(np.load(aasist_official_dir / "reference_logits.inputs.npy"))
    net = load_model(key, device="cpu")
    with torch.no_grad():
        logits = net(x)
    expected = torch.tensor(ref[ref_name]["logits"])
    assert torch.max(torch.abs(logits - expected)) <= 1e-4
    assert ref[ref_name]["bonafide_index"] == 1 and MODELS[key].spoof_index == 0


def test_fetch_registers_the_official_models(official_weights_dir):
    assert {"aasist-official", "aasist-l-official"} <= set(available_models())
    for key in ("aasist-official", "aasist-l-official"):
        assert weights_status(MODELS[key]) == "ok"


def test_checksum_mismatch_refuses_to_load(official_weights_dir):
    path = official_weights_dir / MODELS["aasist-l-official"].weights
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert weights_status(MODELS["aasist-l-official"]) == "checksum mismatch"
    assert "aasist-l-official" not in available_models()
    with pytest.raises(WeightsError, match="refusing to load") as err:
        load_model("aasist-l-official")
    assert "AASIST-L.pth" in str(err.value) and "weights fetch" in str(err.value)


def test_missing_weights_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_WEIGHTS_DIR", str(tmp_path))
    assert weights_status(MODELS["aasist-official"]) == "missing"
    with pytest.raises(WeightsError, match="AASIST.pth") as err:
        load_model("aasist-official")
    assert "python -m core weights fetch aasist-official" in str(err.value)


def test_fetch_rejects_a_wrong_file(tmp_path, monkeypatch):
    from core.detectors.registry import fetch_weights

    src = tmp_path / "src"
    src.mkdir()
    for name in ("AASIST.pth", "AASIST-L.pth"):
        (src / name).write_bytes(b"not the checkpoint")
    monkeypatch.setenv("DEEPFAKE_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(WeightsError, match="does not match"):
        fetch_weights("aasist-official", source_dir=src)
    assert not (tmp_path / "w" / "AASIST.pth").exists()


class _Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], 2) + 0 * self.w


def test_label_convention_swapped_logits_give_one_minus_p():
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.1], [-4.0, 5.0]])
    p1 = p_spoof_from_logits(logits, spoof_index=1)
    np.testing.assert_allclose(p_spoof_from_logits(logits.flip(-1), 1), 1 - p1, atol=1e-12)
    np.testing.assert_allclose(p_spoof_from_logits(logits, 0), 1 - p1, atol=1e-12)
    # through the registry: AASIST (spoof = index 0) vs TSSDNet (spoof = index 1)
    x = np.zeros((1, 64_600), np.float32)
    a = Detector(MODELS["aasist-official"], _Fixed([3.0, 1.0])).p_spoof(x)
    t = Detector(MODELS["tssd1d"], _Fixed([3.0, 1.0])).p_spoof(x[:, :1])
    assert a[0] > 0.5 and t[0] < 0.5
    np.testing.assert_allclose(a, 1 - t, atol=1e-12)


def test_whole_file_scoring_covers_every_window():
    spec = MODELS["tssd1d"]
    det = Detector(spec, _Fixed([0.0, 1.0]))
    samples = np.zeros(20 * 16_000, np.float32)
    v = det.score(samples)
    assert v.windows[0].start == 0.0 and v.windows[-1].end == 20.0
    # 6-s windows every 3 s (0, 3, 6, 9, 12), then one aligned to the end (14)
    assert [w.start for w in v.windows] == [0.0, 3.0, 6.0, 9.0, 12.0, 14.0]
    assert v.p_spoof == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert v.label == "spoof"


def test_aggregation_rule_mean_and_max():
    spec = MODELS["tssd1d"]
    v = verdict_from_windows(spec, np.array([0.1, 0.2, 0.9]), [0, 48_000, 96_000], 192_000)
    assert v.p_spoof == pytest.approx(0.4) and v.label == "bonafide"
    assert v.max_p_spoof == pytest.approx(0.9) and v.max_window == 2


# --- CQT front end --------------------------------------------------------------------


def test_cqt_shape_matches_the_paper():
    x = np.random.default_rng(0).standard_normal(CQT_N_SAMPLES).astype(np.float32) * 0.1
    spec = cqt_log_power(x)
    assert spec.shape == (432, 401) and spec.dtype == np.float32


@pytest.mark.parametrize("freq", [55.0, 220.0, 1000.0, 3000.0, 6500.0])
def test_pure_tones_land_in_the_right_bin(freq):
    t = np.arange(CQT_N_SAMPLES) / 16_000
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    mag = cqt_magnitude(x)
    expected_bin = int(np.argmin(np.abs(np.log2(cqt_frequencies() / freq))))
    assert abs(int(np.argmax(mag[:, 200])) - expected_bin) <= 1


def test_cqt_matches_librosa():
    librosa = pytest.importorskip("librosa")  # test-only dependency
    rng = np.random.default_rng(1)
    t = np.arange(CQT_N_SAMPLES) / 16_000
    x = (0.1 * rng.standard_normal(CQT_N_SAMPLES) + 0.3 * np.sin(2 * np.pi * 440 * t))
    x = x.astype(np.float32)
    ours = 20 * np.log10(cqt_magnitude(x) + 1e-9)
    ref = librosa.cqt(x, sr=16_000, hop_length=256, n_bins=CQT_BINS, bins_per_octave=48, fmin=15)
    ref = 20 * np.log10(np.abs(ref) + 1e-9)
    assert ours.shape == ref.shape
    inner = np.s_[:, 20:-20]  # edges depend on padding details
    assert np.median(np.abs(ours - ref)[inner]) < 0.5  # dB
    assert np.corrcoef(ours[inner].ravel(), ref[inner].ravel())[0, 1] > 0.99


@pytest.mark.parametrize("key,ref_name", [("aasist-official", "AASIST"), ("aasist-l-official", "AASIST-L")])
def test_aasist_fast_inference_path_keeps_the_outputs(official_weights_dir, aasist_official_dir, key, ref_name):
    """scoring (no autograd: folded batch norm, in-place ops) = the autograd path and
    the published logits within 1e-5; max-pool by strided slices = nn.MaxPool2d exactly"""
    from core.detectors.networks.aasist import MaxPoolW3

    ref = json.loads((aasist_official_dir / "reference_logits.json").read_text())
    x = torch.from_numpy(np.load(aasist_official_dir / "reference_logits.inputs.npy"))
    net = load_model(key, device="cpu")
    with torch.inference_mode():
        fast = net(x)
    slow = net(x).detach()  # autograd on: the out-of-place, unfolded ops
    assert torch.max(torch.abs(fast - slow)) <= 1e-5
    assert torch.max(torch.abs(fast - torch.tensor(ref[ref_name]["logits"]))) <= 1e-5
    m = torch.randn(2, 8, 5, 301)
    for width in (301, 300, 4, 3):
        assert torch.equal(MaxPoolW3()(m[..., :width]), torch.nn.functional.max_pool2d(m[..., :width], (1, 3)))
    from core.detectors.networks.aasist import max_pool_3x3

    z = torch.randn(2, 1, 70, 302)
    for rows, width in ((70, 302), (70, 300), (69, 4), (3, 3), (4, 8)):
        part = z[..., :rows, :width]
        assert torch.equal(max_pool_3x3(part), torch.nn.functional.max_pool2d(part, (3, 3)))
