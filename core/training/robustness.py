"""Scoring a protocol under fixed degradations: ``python -m core evaluate --degrade``.

Each file is decoded once and scored under every condition (core.training.augment.degrade
strings such as ``mp3:32k``, ``telephone``, ``noise:10db``). Random conditions are
seeded per (file id, condition) by condition_seed, so a rerun gives identical scores.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from core.audio.decode import AudioError, load_audio
from core.audio.protocol import ProtocolEntry, audio_path, check_audio
from core.training.augment import parse_degradation


def parse_conditions(text: str) -> list[str]:
    """'mp3:32k, telephone' -> ['mp3:32k', 'telephone']; ValueError on an unknown one"""
    out: list[str] = []
    for raw in text.split(","):
        cond = raw.strip().lower()
        if not cond:
            continue
        parse_degradation(cond)  # fail before any scoring
        if cond not in out:
            out.append(cond)
    if not out:
        raise ValueError(f"--degrade {text!r} names no condition")
    return out


def condition_seed(file_id: str, condition: str) -> int:
    """the seed of one file's degradation: first 8 bytes of sha256(file_id, condition)"""
    digest = hashlib.sha256(f"{file_id}\0{condition}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def score_degraded(
    detector,
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    conditions: list[str],
    *,
    progress: bool = True,
) -> dict[str, list]:
    """{condition: [ScoredFile, ...] in protocol order}, scored as score_protocol does"""
    import numpy as np

    from core.training.evaluate import ScoredFile

    check_audio(entries, audio_dir)
    funcs = {c: parse_degradation(c) for c in conditions}
    out: dict[str, list] = {c: [] for c in conditions}
    it = entries
    if progress:
        from tqdm import tqdm

        desc = f"scoring ({detector.spec.key}, {len(conditions)} conditions)"
        it = tqdm(entries, desc=desc, unit="file", dynamic_ncols=True)
    for e in it:
        path = audio_path(audio_dir, e)
        try:
            samples = load_audio(path).samples
        except AudioError as err:
            raise AudioError(f"{path}: {err}") from err
        for cond, f in funcs.items():
            rng = np.random.default_rng(condition_seed(e.file_id, cond))
            v = detector.score(f(samples, rng))
            out[cond].append(ScoredFile(e.file_id, e.system, e.key, float(v.p_spoof),
                                        source=e.speaker,
                                        embedding=getattr(v, "embedding", None)))  # fmt: skip
    return out


def condition_scores_path(path: str | Path, condition: str) -> Path:
    """scores.txt + 'mp3:32k' -> scores.mp3-32k.txt (one score file per condition)"""
    path = Path(path)
    slug = re.sub(r"[^a-z0-9.+-]+", "-", condition.lower()).strip("-")
    return path.with_name(f"{path.stem}.{slug}{path.suffix}")


def format_conditions(summaries: dict[str, dict], format_summary) -> str:
    """one block per condition, each as evaluate's summary table"""
    blocks = []
    for cond, summary in summaries.items():
        blocks.append(f"[{cond}]\n{format_summary(summary)}")
    return "\n\n".join(blocks)
