"""Augmentations measured on constructed signals, degrade() conditions, and core.training.vocode."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from core.training import augment as A

SR = A.SAMPLE_RATE


def _db(p: float) -> float:
    return 10.0 * np.log10(p)


def _power(x) -> float:
    return float(np.mean(np.square(np.asarray(x, dtype=np.float64))))


@pytest.fixture
def white():
    """4 s of white noise at about -20 dBFS"""
    return (0.1 * np.random.default_rng(7).standard_normal(4 * SR)).astype(np.float32)


@pytest.fixture
def voiced():
    """4 s of a 150 Hz harmonic complex (20 harmonics, 1/k), 3 Hz amplitude modulation"""
    t = np.arange(4 * SR) / SR
    h = sum(np.sin(2 * np.pi * 150 * k * t + k) / k for k in range(1, 21))
    h *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * h / np.abs(h).max()).astype(np.float32)


def _band_gain_db(y, x, lo, hi) -> float:
    """mean output/input power ratio over [lo, hi) Hz, from Welch spectra"""
    f, px = scipy.signal.welch(x, SR, nperseg=2048)
    _, py = scipy.signal.welch(y, SR, nperseg=2048)
    m = (f >= lo) & (f < hi)
    return _db(np.mean(py[m]) / np.mean(px[m]))


@pytest.mark.parametrize("snr", [10.0, 25.0, 40.0])
@pytest.mark.parametrize("tilt", [-2.0, 0.0, 1.0])
def test_add_noise_hits_the_requested_snr(voiced, snr, tilt):
    y = A.add_noise(voiced, np.random.default_rng(0), snr_db=snr, tilt=tilt)
    assert y.shape == voiced.shape and y.dtype == np.float32
    measured = _db(_power(voiced) / _power(y.astype(np.float64) - voiced))
    assert abs(measured - snr) < 1.0


def test_noise_tilt_colours_the_spectrum():
    x = np.zeros(4 * SR, dtype=np.float32)
    x[::100] = 0.5  # a pulse train: flat spectrum, so only the noise's colour shows
    brown = A.add_noise(x, np.random.default_rng(0), snr_db=0.0, tilt=-2.0) - x
    f, p = scipy.signal.welch(brown, SR, nperseg=2048)
    low, high = np.mean(p[(f > 100) & (f < 200)]), np.mean(p[(f > 4000) & (f < 8000)])
    assert _db(low / high) > 20.0  # f**-2 over more than 4 octaves: ~ 30 dB


def test_stationary_noise_snr_is_drawn_from_its_range(voiced):
    for seed in range(5):
        y = A.stationary_noise(voiced, np.random.default_rng(seed))
        measured = _db(_power(voiced) / _power(y.astype(np.float64) - voiced))
        assert 9.0 <= measured <= 41.0


def test_degrade_noise_condition_snr(voiced):
    y = A.degrade(voiced, "noise:10db", seed=3)
    assert abs(_db(_power(voiced) / _power(y.astype(np.float64) - voiced)) - 10.0) < 1.0


def test_telephone_band_limits_white_noise(white):
    y = A.telephone(white)
    assert y.shape == white.shape and y.dtype == np.float32
    ref = _band_gain_db(y, white, 900, 1100)
    assert _band_gain_db(y, white, 3600, 8000) < ref - 20.0
    assert _band_gain_db(y, white, 20, 250) < ref - 20.0
    assert abs(ref) < 1.0  # the pass band is kept at its level


@pytest.mark.parametrize("codec", ["mp3", "opus"])
@pytest.mark.parametrize("kbps", [16, 32, 64])
def test_codec_roundtrip_keeps_length_and_stays_correlated(voiced, codec, kbps):
    y = A.codec_roundtrip(voiced, codec, kbps)
    assert y.shape == voiced.shape and y.dtype == np.float32
    assert not np.array_equal(y, voiced)
    assert np.corrcoef(y, voiced)[0, 1] > 0.9


@pytest.mark.parametrize("codec", ["mp3", "opus"])
@pytest.mark.parametrize("kbps", [16, 32, 64])
def test_codec_bit_rate_is_the_requested_one(white, codec, kbps):
    n_bytes = len(A.encode(white, codec, kbps))
    measured = n_bytes * 8 / (len(white) / SR) / 1000.0
    assert measured == pytest.approx(kbps, rel=0.15)  # container overhead, frame rounding


def test_codec_output_is_a_16k_file(voiced):
    import io

    info = sf.info(io.BytesIO(A.encode(voiced, "opus", 24)))
    assert (info.samplerate, info.channels) == (SR, 1)


def test_align_to_undoes_a_known_delay(voiced):
    delayed = np.concatenate([np.zeros(1105, np.float32), voiced, np.zeros(300, np.float32)])
    out = A.align_to(delayed, voiced)
    np.testing.assert_array_equal(out, voiced)
    early = A.align_to(voiced[200:], voiced)  # lead: the missing start is zero-padded
    np.testing.assert_array_equal(early[200:], voiced[200:])
    assert not early[:200].any()


def test_convolutive_changes_the_spectrum_not_the_length(white):
    y = A.convolutive(white, np.random.default_rng(1))
    assert y.shape == white.shape and y.dtype == np.float32
    gains = [_band_gain_db(y, white, lo, lo + 500) for lo in range(0, 8000, 500)]
    assert max(gains) - min(gains) > 3.0  # a ±12 dB multi-band EQ is not flat
    # centred linear phase: no delay, so the output still lines up with the input
    lag = np.argmax(scipy.signal.correlate(y, white, mode="full")) - (len(white) - 1)
    assert lag == 0


def test_impulsive_noise_touches_a_few_samples_and_scales_with_the_signal(voiced):
    x = voiced.copy()
    x[: SR] = 0.0  # a silent first second stays silent: the noise is signal-dependent
    y = A.impulsive(x, np.random.default_rng(2))
    changed = y != x
    assert 0 < changed.mean() <= 0.05
    assert not y[:SR].any()


@pytest.mark.parametrize("db", [-12.0, -3.0, 4.0])
def test_gain_changes_rms_by_the_requested_db(voiced, db):
    y = A.apply_gain(voiced, db)  # peak 0.3: +4 dB stays under the limit
    assert _db(_power(y) / _power(voiced)) == pytest.approx(db, abs=0.01)
    assert _db(_power(A.degrade(voiced, f"gain:{db}db")) / _power(voiced)) == pytest.approx(
        db, abs=0.01
    )


def test_gain_protects_the_peak(voiced):
    y = A.apply_gain(voiced, 20.0)
    assert np.max(np.abs(y)) == pytest.approx(A.PEAK_LIMIT, abs=1e-6)


def _all_on() -> A.AugmentConfig:
    return A.AugmentConfig(**{name: 1.0 for name in A.AUGMENTATIONS})


def test_augmenter_is_deterministic_given_seed_and_key(voiced):
    a = A.Augmenter(_all_on(), seed=5)
    y1, y2 = a(voiced, key=(3, 17)), A.Augmenter(_all_on(), seed=5)(voiced, key=(3, 17))
    np.testing.assert_array_equal(y1, y2)
    assert y1.shape == voiced.shape and not np.array_equal(y1, voiced)
    assert not np.array_equal(y1, a(voiced, key=(4, 17)))  # next epoch: other draws
    assert not np.array_equal(y1, A.Augmenter(_all_on(), seed=6)(voiced, key=(3, 17)))


def test_augmenter_probabilities(voiced):
    off = A.AugmentConfig(**{name: 0.0 for name in A.AUGMENTATIONS})
    np.testing.assert_array_equal(A.Augmenter(off, seed=0)(voiced, key=(0, 0)), voiced)
    only_gain = A.AugmentConfig(**{n: float(n == "gain") for n in A.AUGMENTATIONS})
    assert A.Augmenter(only_gain).applied((0, 1)) == ["gain"]
    # each augmentation has its own draw: switching convolutive off leaves the keys on
    # which gain fires unchanged, and p = 0.5 fires on about half of them
    both = A.AugmentConfig(convolutive=0.5, impulsive=0.0, stationary_noise=0.0,
                           codec=0.0, telephone=0.0, gain=0.5)  # fmt: skip
    gain_only = A.AugmentConfig(convolutive=0.0, impulsive=0.0, stationary_noise=0.0,
                                codec=0.0, telephone=0.0, gain=0.5)  # fmt: skip
    fired = ["gain" in A.Augmenter(both, seed=1).applied((0, i)) for i in range(200)]
    assert fired == [A.Augmenter(gain_only, seed=1).applied((0, i)) == ["gain"]
                     for i in range(200)]  # fmt: skip
    assert 0.35 < np.mean(fired) < 0.65
    with pytest.raises(ValueError, match="not in"):
        A.AugmentConfig(gain=1.5)


def test_degrade_conditions(voiced):
    np.testing.assert_array_equal(A.degrade(voiced, "clean"), voiced)
    np.testing.assert_array_equal(A.degrade(voiced, "ogg:24k"), A.degrade(voiced, "opus:24k"))
    np.testing.assert_array_equal(A.degrade(voiced, "telephone"), A.telephone(voiced))
    a, b = A.degrade(voiced, "noise:20db", seed=1), A.degrade(voiced, "noise:20db", seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, A.degrade(voiced, "noise:20db", seed=2))
    for bad in ["mp3", "mp3:32", "noise:10", "echo", "aac:32k"]:
        with pytest.raises(ValueError, match="unknown degradation"):
            A.degrade(voiced, bad)


# --- core.training.vocode ----------------------------------------------------------------------


def _mini_corpus(tmp_path, voiced, ids=("MS_T_0000001", "MS_T_0000002")):
    flac = tmp_path / "flac"
    flac.mkdir()
    lines = []
    for i, fid in enumerate(ids):
        sf.write(flac / f"{fid}.flac", voiced[: (3 + i) * SR], SR, subtype="PCM_16")
        lines.append(f"LS{i} {fid} - - bonafide")
    sf.write(flac / "MS_T_0000009.flac", voiced[:SR], SR, subtype="PCM_16")
    lines.append("tts MS_T_0000009 - M01 spoof")
    proto = tmp_path / "train.txt"
    proto.write_text("\n".join(lines) + "\n")
    return proto, flac


def _systems():
    from core.training.vocode import _pyworld

    try:
        _pyworld()
        return ["V01", "V02"]
    except (RuntimeError, ImportError):
        return ["V02"]  # V01 needs requirements-train.txt


def test_vocode_writes_same_length_spoofs_and_a_parseable_protocol(tmp_path, voiced):
    from core.audio.protocol import parse_protocol
    from core.training.vocode import EVAL_ONLY_SYSTEMS, main

    proto, flac = _mini_corpus(tmp_path, voiced)
    out = tmp_path / "out"
    systems = _systems()
    argv = ["--protocol", str(proto), "--audio-dir", str(flac), "--out", str(out),
            "--no-progress"]  # fmt: skip
    for s in systems:
        argv += ["--system", s]
    assert main(argv) == 0
    entries = parse_protocol(out / "vocoded.train.txt")
    assert len(entries) == 2 * len(systems)  # bona fide only, each through each system
    assert {e.system for e in entries} == set(systems)
    assert not {e.system for e in entries} & EVAL_ONLY_SYSTEMS
    assert not {e.system for e in entries} & {"M05", "M06", "M07", "M08", "M10"}
    assert all(e.is_spoof and e.speaker in ("LS0", "LS1") for e in entries)
    for e in entries:
        y, sr = sf.read(out / "flac" / f"{e.file_id}.flac")
        src = e.file_id.split("_", 2)[2]
        assert sr == SR and len(y) == sf.info(flac / f"{src}.flac").frames
        x = sf.read(flac / f"{src}.flac")[0]
        assert not np.allclose(y, x, atol=1e-3)
        assert _db(_power(y) / _power(x)) == pytest.approx(0.0, abs=0.5)  # level matched


def test_vocode_refuses_eval_clips(tmp_path, voiced, capsys):
    from core.training.vocode import main

    proto, flac = _mini_corpus(tmp_path, voiced, ids=("MS_E_0000001",))
    rc = main(["--protocol", str(proto), "--audio-dir", str(flac), "--out",
               str(tmp_path / "o"), "--system", "V02", "--no-progress"])  # fmt: skip
    assert rc == 1 and "training data only" in capsys.readouterr().err


def test_autocorrelation_f0_finds_a_tone_and_silence():
    from core.training.vocode import autocorrelation_f0

    t = np.arange(SR) / SR
    x = np.concatenate([0.3 * np.sign(np.sin(2 * np.pi * 125.0 * t)), np.zeros(SR // 2)])
    f0 = autocorrelation_f0(x)
    voiced = f0[10:90]
    assert np.all(np.abs(voiced - 125.0) < 3.0)  # within a lag sample at 16 kHz
    assert np.all(f0[-30:] == 0.0)  # silence is unvoiced


def test_phase_vocoder_at_rate_one_is_transparent(voiced):
    from core.training.vocode import phase_vocoder_stretch

    y = phase_vocoder_stretch(voiced, 1.0)
    assert len(y) == len(voiced)
    assert np.corrcoef(y, voiced)[0, 1] > 0.999
    assert len(phase_vocoder_stretch(voiced, 1.25)) == round(len(voiced) / 1.25)


def test_selection_vocoder_runs_on_dev_only_and_never_trains(tmp_path, voiced, capsys):
    """S01 (LPC vocoder) stands in for an unseen attack when choosing models: dev clips
    only, its protocol lists the dev files too, training refuses it, eval clips refused"""
    from core.audio.protocol import parse_protocol
    from core.training.train import TrainConfig, train
    from core.training.vocode import main

    proto, flac = _mini_corpus(tmp_path, voiced, ids=("MS_D_0000001", "MS_D_0000002"))
    out = tmp_path / "sel"
    assert main(["--protocol", str(proto), "--audio-dir", str(flac), "--out", str(out),
                 "--selection", "--no-progress"]) == 0  # fmt: skip
    entries = parse_protocol(out / "vocoded.select.txt")
    assert [e.system for e in entries] == ["-", "-", "M01", "S01", "S01"]
    for e in entries:  # one directory to score the whole set from
        y, sr = sf.read(out / "flac" / f"{e.file_id}.flac")
        assert sr == SR and np.all(np.isfinite(y))
    src = sf.read(flac / "MS_D_0000001.flac")[0]
    y = sf.read(out / "flac" / "VC_S01_MS_D_0000001.flac")[0]
    assert len(y) == len(src) and _db(_power(y) / _power(src)) == pytest.approx(0.0, abs=0.5)
    assert not np.allclose(y, src, atol=1e-3)
    # a training system with --selection, or S01 without it, is refused
    assert main(["--protocol", str(proto), "--audio-dir", str(flac), "--out", str(out),
                 "--selection", "--system", "V02", "--no-progress"]) == 1  # fmt: skip
    assert "not a selection" in capsys.readouterr().err
    (tmp_path / "e").mkdir()
    eval_proto, eval_flac = _mini_corpus(tmp_path / "e", voiced, ids=("MS_E_0000003",))
    assert main(["--protocol", str(eval_proto), "--audio-dir", str(eval_flac), "--out",
                 str(tmp_path / "o"), "--selection", "--no-progress"]) == 1  # fmt: skip
    assert "selection uses dev" in capsys.readouterr().err
    with pytest.raises(ValueError, match="selection-only"):
        train(TrainConfig(arch="tssd1d", protocol=str(out / "vocoded.select.txt"),
                          audio_dir=str(out / "flac"), dev_protocol=str(proto), out=str(tmp_path / "x.pt"),
                          epochs=1, lr=1e-3, batch_size=2, weight_decay=0.0),
              progress=False, log=lambda *a: None)  # fmt: skip
