"""Build the real-speech reference set (core.explain.reference) from MiniSpoof train.

    python -m core.explain.reference_build --minispoof ../shared/data/minispoof

The clips: MiniSpoof train bona fide only (never dev or eval, which measure the models),
at least REFERENCE_SAMPLES long, one per speaker, the first REFERENCE_WINDOWS by file id
(file ids are random digits, so this is an unbiased draw anyone can repeat); the centre
REFERENCE_SAMPLES of each, as int16. The zip members carry a fixed date, so a rebuild is
byte for byte the shipped file and its .sha256 sidecar does not change.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from core.audio.decode import SAMPLE_RATE, load_audio
from core.audio.protocol import audio_path, parse_protocol
from core.detectors.registry import PROJECT_ROOT
from core.explain.reference import (
    INT16_SCALE,
    REFERENCE_FILE,
    REFERENCE_SAMPLES,
    REFERENCE_WINDOWS,
    fit_window,
    sidecar,
)


def choose_clips(minispoof: Path, k: int = REFERENCE_WINDOWS) -> list:
    """(protocol entry, samples) of the set's k clips (this module's doc)"""
    entries = parse_protocol(minispoof / "protocols" / "minispoof.train.txt")
    chosen, speakers = [], set()
    for e in sorted(
        (e for e in entries if e.key == "bonafide"), key=lambda e: e.file_id
    ):
        if e.speaker in speakers:
            continue
        samples = load_audio(audio_path(minispoof / "flac", e)).samples
        if len(samples) < REFERENCE_SAMPLES:
            continue
        speakers.add(e.speaker)
        chosen.append((e, samples))
        if len(chosen) == k:
            return chosen
    raise ValueError(f"only {len(chosen)} train bona fide clips are long enough")


def _member(z: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, buf.getvalue(), compresslevel=9)


def build_reference(minispoof: Path, out: Path, k: int = REFERENCE_WINDOWS) -> Path:
    """write the set (an .npz np.load reads; fixed zip dates, so the bytes repeat) and its
    sidecar; returns the file's path"""
    clips = choose_clips(Path(minispoof), k)
    audio = np.stack([fit_window(x, REFERENCE_SAMPLES) for _, x in clips])
    pcm = np.clip(np.round(audio * INT16_SCALE), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        _member(z, "audio", pcm)
        _member(z, "file_ids", np.array([e.file_id for e, _ in clips]))
        _member(z, "speakers", np.array([e.speaker for e, _ in clips]))
        _member(z, "sample_rate", np.array(SAMPLE_RATE))
    data = buf.getvalue()
    out = Path(out)
    out.write_bytes(data)
    sidecar(out).write_text(f"{hashlib.sha256(data).hexdigest()}  {out.name}\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m core.explain.reference",
        description="rebuild the real-speech reference set from MiniSpoof train",
    )
    parser.add_argument("--minispoof", required=True, type=Path)
    parser.add_argument(
        "--out", type=Path, default=PROJECT_ROOT / "weights" / REFERENCE_FILE
    )
    parser.add_argument("--windows", type=int, default=REFERENCE_WINDOWS)
    args = parser.parse_args(argv)
    path = build_reference(args.minispoof, args.out, args.windows)
    print(f"{path} ({path.stat().st_size} bytes), sha256 in {sidecar(path).name}")


if __name__ == "__main__":
    main()
