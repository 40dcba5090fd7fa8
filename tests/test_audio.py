import io

import numpy as np
import pytest
import soundfile as sf

from core.audio.decode import (
    SAMPLE_RATE,
    DamagedAudioError,
    EmptyFileError,
    NonFiniteAudioError,
    NoSamplesError,
    TooLongError,
    UnsupportedAudioError,
    audio_sha256,
    fit_length,
    frame_windows,
    load_audio,
    sniff_container,
    window_starts,
)

FORMATS = [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")]


def encode(x: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * SAMPLE_RATE / len(x))


@pytest.mark.parametrize("fmt,subtype", FORMATS)
def test_decodes_each_format_to_16k_mono(fmt, subtype):
    stereo = np.stack([tone(440, 1.0, 22_050), tone(440, 1.0, 22_050)], axis=1)
    data = encode(stereo, 22_050, fmt, subtype)
    audio = load_audio(data)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.orig_sample_rate == 22_050 and audio.orig_channels == 2
    assert audio.orig_format == fmt
    assert audio.sha256 == audio_sha256(data)
    # lossy codecs add encoder delay/padding; the duration stays within ~0.1 s
    assert abs(audio.duration - 1.0) < 0.1
    assert abs(peak_hz(audio.samples) - 440) < 5
    assert not audio.near_silent


def test_decodes_from_a_path(tmp_path):
    p = tmp_path / "clip.flac"
    p.write_bytes(encode(tone(440, 0.5, 16_000), 16_000, "FLAC"))
    audio = load_audio(p)
    assert len(audio.samples) == 8000 and audio.orig_sample_rate == 16_000


def test_resampling_keeps_a_1khz_tone_at_1khz():
    audio = load_audio(encode(tone(1000, 2.0, 44_100), 44_100, "WAV"))
    assert len(audio.samples) == 32_000
    assert abs(peak_hz(audio.samples) - 1000) < 1.0
    # amplitude survives the high-quality resampler
    mid = audio.samples[4000:-4000]
    assert abs(np.max(np.abs(mid)) - 0.5) < 0.01


def test_stereo_is_mixed_down():
    left, right = tone(440, 0.5, 16_000), np.zeros(8000, np.float32)
    audio = load_audio(encode(np.stack([left, right], 1), 16_000, "WAV", "FLOAT"))
    np.testing.assert_allclose(audio.samples, left / 2, atol=1e-6)


def test_empty_file():
    with pytest.raises(EmptyFileError, match="empty"):
        load_audio(b"")


@pytest.mark.parametrize("data", [b"hello, this is not audio" * 50, bytes(range(256)) * 8])
def test_not_audio(data):
    with pytest.raises(UnsupportedAudioError, match="not a supported audio file"):
        load_audio(data)


def test_zero_samples():
    with pytest.raises(NoSamplesError, match="zero"):
        load_audio(encode(np.zeros(0, np.float32), 16_000, "WAV"))


def test_non_finite_samples():
    x = tone(440, 0.1, 16_000)
    x[100] = np.nan
    with pytest.raises(NonFiniteAudioError, match="NaN"):
        load_audio(encode(x, 16_000, "WAV", "FLOAT"))


def test_longer_than_the_limit():
    data = encode(tone(440, 3.0, 16_000), 16_000, "FLAC")
    with pytest.raises(TooLongError, match="is 3.0 s long; the limit is 2.0 s"):
        load_audio(data, max_seconds=2.0)
    assert load_audio(data, max_seconds=4.0).duration == pytest.approx(3.0)


def test_errors_have_one_line_messages():
    for data in [b"", b"garbage" * 100]:
        with pytest.raises(ValueError) as err:
            load_audio(data)
        assert "\n" not in str(err.value) and len(str(err.value)) < 120


def test_silence_is_analysed_but_flagged():
    audio = load_audio(encode(np.zeros(16_000, np.float32), 16_000, "WAV"))
    assert audio.near_silent and audio.duration == 1.0
    quiet = load_audio(encode(tone(440, 1.0, 16_000, amp=1e-4), 16_000, "WAV", "FLOAT"))
    assert quiet.near_silent


def test_fit_length_tiles_short_and_crops_long():
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(fit_length(x, 3), [0, 1, 2])


@pytest.mark.parametrize("window,hop", [(64_600, 32_300), (96_000, 48_000), (102_400, 51_200)])
def test_windows_cover_a_20s_file(window, hop):
    n = 20 * SAMPLE_RATE
    starts = window_starts(n, window, hop)
    assert starts[0] == 0 and starts[-1] + window == n
    assert all(b - a <= hop for a, b in zip(starts, starts[1:]))  # no gaps
    batch, _ = frame_windows(np.zeros(n, np.float32), window, hop)
    assert batch.shape == (len(starts), window)


def test_short_file_is_one_tiled_window():
    x = np.arange(1000, dtype=np.float32)
    batch, starts = frame_windows(x, 2500, 1250)
    assert starts == [0]
    np.testing.assert_array_equal(batch[0], np.tile(x, 3)[:2500])


# ---------------------------------------------------------- damaged vs unsupported


@pytest.mark.parametrize(
    "fmt, subtype, keep, name",
    [
        ("FLAC", "PCM_16", 0.5, "FLAC"),  # half a FLAC stream: the decoder loses sync
        ("FLAC", "PCM_16", 0.002, "FLAC"),  # cut inside the STREAMINFO block
        ("WAV", "PCM_16", 0.0005, "WAV"),  # RIFF/WAVE header, no data chunk
        ("OGG", "VORBIS", 0.02, "Ogg"),
        ("MP3", "MPEG_LAYER_III", 0.02, "MP3"),
    ],
)
def test_truncated_file_says_damaged_and_names_its_format(fmt, subtype, keep, name):
    data = encode(tone(440, 2.0, 16_000), 16_000, fmt, subtype)
    cut = data[: max(30, int(len(data) * keep))]
    with pytest.raises(DamagedAudioError, match=rf"^damaged {name} file \(.+\)") as err:
        load_audio(cut)
    assert "not a supported" not in str(err.value)
    assert "\n" not in str(err.value) and len(str(err.value)) < 120


def test_flac_magic_followed_by_garbage_is_damaged_not_unsupported():
    with pytest.raises(DamagedAudioError, match="damaged FLAC file"):
        load_audio(b"fLaC but not really" * 20)


@pytest.mark.parametrize(
    "head, container",
    [
        (b"fLaC\x00\x00\x00\x22", "FLAC"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "WAV"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),  # RIFF, but a video
        (b"OggS\x00\x02", "Ogg"),
        (b"ID3\x04\x00\x00", "MP3"),
        (b"\xff\xfb\x90\x00", "MP3"),  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
        (b"\xff\xf3\x88\xc4", "MP3"),  # MPEG-2 layer III (what libsndfile writes at 16 kHz)
        (b"\xff\xeb\x90\x00", None),  # version bits 01: reserved
        (b"\xff\xfb\xf0\x00", None),  # bitrate code 1111: invalid
        (b"\xff\xff\xff\xff", None),
        (b"hello", None),
    ],
)
def test_sniff_container(head, container):
    assert sniff_container(head + bytes(64)) == container


def test_bytes_that_only_look_like_frame_sync_stay_unsupported():
    with pytest.raises(UnsupportedAudioError, match="not a supported audio file"):
        load_audio(b"\xff" * 4096)


# ------------------------------------------------- headers that give no length


def without_length(flac: bytes) -> bytes:
    """the FLAC as a piped encoder leaves it: STREAMINFO total_samples = 0, no MD5"""
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0  # STREAMINFO comes first
    d = bytearray(flac)
    info = 8  # its 34 bytes follow "fLaC" and the 4-byte block header
    d[info + 13] &= 0xF0  # total_samples: the low 4 bits of byte 13, then bytes 14-17
    d[info + 14 : info + 18] = bytes(4)
    d[info + 18 : info + 34] = bytes(16)  # MD5 of the audio: unknown too
    return bytes(d)


def test_a_flac_that_gives_no_length_decodes_like_the_same_audio_with_it():
    x = tone(440, 3.0, 16_000) + tone(3000, 3.0, 16_000, amp=0.1)
    known = encode(x, 16_000, "FLAC", "PCM_16")
    unknown = without_length(known)
    with sf.SoundFile(io.BytesIO(unknown)) as f:
        assert f.frames == 2**63 - 1  # what libsndfile makes of total_samples = 0
    a, b = load_audio(known), load_audio(unknown)
    assert b.duration == a.duration == 3.0
    np.testing.assert_array_equal(b.samples, a.samples)
    assert (b.orig_sample_rate, b.orig_format) == (16_000, "FLAC")
    assert b.sha256 == audio_sha256(unknown) != a.sha256


def test_a_flac_without_length_stops_at_the_duration_limit():
    unknown = without_length(encode(tone(440, 3.0, 16_000), 16_000, "FLAC", "PCM_16"))
    with pytest.raises(TooLongError, match="longer than the limit of 2.0 s"):
        load_audio(unknown, max_seconds=2.0)
    assert load_audio(unknown, max_seconds=3.0).duration == 3.0


def test_a_truncated_flac_without_length_is_still_damaged():
    unknown = without_length(encode(tone(440, 3.0, 16_000), 16_000, "FLAC", "PCM_16"))
    with pytest.raises(DamagedAudioError, match=r"^damaged FLAC file \(flac decoder lost"):
        load_audio(unknown[: len(unknown) // 2])


def test_a_wav_whose_data_chunk_says_zero_bytes_is_read_to_its_end():
    x = tone(440, 2.0, 16_000)
    data = bytearray(encode(x, 16_000, "WAV", "PCM_16"))
    at = data.find(b"data")
    data[at + 4 : at + 8] = bytes(4)  # what a writer that cannot seek back leaves
    data[4:8] = bytes(4)
    got = load_audio(bytes(data))
    same = load_audio(encode(x, 16_000, "WAV", "PCM_16"))
    np.testing.assert_array_equal(got.samples, same.samples)
    header_only = bytes(data[: at + 8])
    with pytest.raises(NoSamplesError):
        load_audio(header_only)


def test_the_cli_analyses_a_flac_without_length_like_the_same_audio(tmp_path, capsys):
    import json

    from core.cli import main

    rng = np.random.default_rng(3)
    x = tone(220, 3.0, 16_000, amp=0.3) + 0.02 * rng.standard_normal(48_000)
    x = x.astype(np.float32)
    known = tmp_path / "known.flac"
    known.write_bytes(encode(x, 16_000, "FLAC", "PCM_16"))
    unknown = tmp_path / "piped.flac"
    unknown.write_bytes(without_length(known.read_bytes()))
    argv = ["analyze", str(known), str(unknown), "--model", "tssd1d", "--json", "--no-store",
            "--no-progress"]  # fmt: skip
    if main(argv) != 0:
        pytest.skip(f"tssd1d is not installed here: {capsys.readouterr().err.strip()}")
    a, b = json.loads(capsys.readouterr().out)
    assert b["duration"] == a["duration"] == 3.0
    (va,), (vb,) = a["models"], b["models"]
    assert vb["p_spoof"] == va["p_spoof"] and vb["windows"] == va["windows"]
