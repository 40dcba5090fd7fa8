"""The neural-vocoder training systems (V03, V04): speech in, speech-like copy out, same
length and rate; and no held-out clip is ever vocoded into training data."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from core.audio.decode import SAMPLE_RATE, load_audio
from core.audio.protocol import parse_protocol

# log10-mel-power distance (core.training.neural_vocoders.log_mel_distance). Measured on
# MiniSpoof eval bona fide: copies 0.13-0.19; white noise of equal RMS 2.3-2.5; another
# speaker's clip 1.1-1.4. A copy must sit far nearer its input than any other speech.
MAX_COPY_DISTANCE = 0.4


@pytest.fixture(scope="module")
def bona_fide_clip():
    from conftest import MINISPOOF, require_shared

    root = require_shared(MINISPOOF)
    entries = parse_protocol(root / "protocols" / "minispoof.train.txt")
    e = next(e for e in entries if not e.is_spoof)
    return load_audio(root / "flac" / f"{e.file_id}.flac").samples[: 3 * SAMPLE_RATE]


@pytest.mark.parametrize("system", ["V03", "V04"])
def test_neural_vocoder_copy_is_same_length_and_near_its_input(system, bona_fide_clip):
    from core.training.neural_vocoders import log_mel_distance
    from core.training.vocode import SYSTEMS, vocode_clip

    x = bona_fide_clip
    y = vocode_clip(x, system, "MS_T_test")
    assert y.dtype == np.float32 and y.shape == x.shape
    assert not np.allclose(x, y, atol=1e-3)  # really resynthesised
    d = log_mel_distance(x, y, sr=SAMPLE_RATE)
    noise = np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * x.std()
    assert d < MAX_COPY_DISTANCE, f"{system} ({SYSTEMS[system].description}): {d:.3f}"
    assert log_mel_distance(x, noise) > 5 * d
    # the copy keeps the level (vocode_clip matches RMS)
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.02)


@pytest.mark.parametrize("system", ["V03", "V04"])
def test_neural_vocoder_keeps_odd_lengths_and_other_rates(system):
    from core.training import neural_vocoders as nv

    fn = {"V03": nv.copy_synthesise_universal, "V04": nv.copy_synthesise_ts16k}[system]
    t = np.arange(16_001) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    assert fn(tone, SAMPLE_RATE).shape == tone.shape
    assert fn(tone[:100], SAMPLE_RATE).shape == (100,)
    at_22k = np.zeros(22_050, dtype=np.float32)
    assert fn(at_22k, 22_050).shape == (22_050,)


@pytest.mark.parametrize("prefix", ["DS_D_", "DS_E_", "MS_D_", "MS_E_"])
def test_vocode_refuses_dev_and_eval_clips_of_both_corpora(tmp_path, prefix, capsys):
    from core.training.vocode import main

    flac = tmp_path / "flac"
    flac.mkdir()
    fid = f"{prefix}0000abcd"
    sf.write(flac / f"{fid}.flac", np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    proto = tmp_path / "p.txt"
    proto.write_text(f"somepage {fid} - - bonafide\n")
    rc = main(["--protocol", str(proto), "--audio-dir", str(flac), "--out", str(tmp_path / "o"),
               "--system", "V03", "--no-progress"])  # fmt: skip
    assert rc == 1 and "training data only" in capsys.readouterr().err
    assert not (tmp_path / "o" / "flac" / f"VC_V03_{fid}.flac").exists()
