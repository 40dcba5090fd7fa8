"""What an analysis adds to the per-model verdicts: input quality and the combined verdict.

    q, c = assess_analysis(samples_or_stored_quality, verdicts, specs, calibration)

The signal measurements (core.audio.quality) are made once per audio and stored with it; the
window warnings depend on the models and the combined verdict (core.judgement.combined) on the
calibration file, so both are rebuilt whenever an analysis is shown: a few
milliseconds, no model runs.

The calibration file lives next to the weights (``calibration.json`` plus its
``.sha256``, both moved by $DEEPFAKE_WEIGHTS_DIR) and is read once per change of its
modification time. A file that fails its checksum or version check is refused: the
combined verdict then says "not calibrated" and why, never a silent guess.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Mapping

from core.audio.quality import InputQuality, with_windows
from core.detectors.detect import Verdict
from core.detectors.registry import weights_dir
from core.judgement.calibration import CalibrationFileError
from core.judgement.calibration_file import CalibrationFile
from core.judgement.combined import Combined, combine
from core.judgement.familiarity import Familiarity, FamiliarityError

CALIBRATION_NAME = "calibration.json"
METRICS_NAME = "calibration.metrics.json"  # held-out measurements (calibrate --eval-protocol)

_CACHE: dict[str, tuple[int, CalibrationFile | None, str | None]] = {}
_FAMILIARITY: dict[tuple[str, str], tuple[Familiarity | None, str | None]] = {}
_CACHE_LOCK = threading.Lock()


def calibration_path(directory: str | Path | None = None) -> Path:
    return Path(directory or weights_dir()) / CALIBRATION_NAME


def calibration_metrics_path(directory: str | Path | None = None) -> Path:
    return Path(directory or weights_dir()) / METRICS_NAME


def load_calibration(
    path: str | Path | None = None,
) -> tuple[CalibrationFile | None, str | None]:
    """(calibration, None), or (None, one-line reason) when absent or refused."""
    path = Path(path) if path is not None else calibration_path()
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None, f"no calibration file ({path.name}): run python -m core calibrate"
    with _CACHE_LOCK:
        hit = _CACHE.get(str(path))
        if hit is not None and hit[0] == mtime:
            return hit[1], hit[2]
        try:
            cal, problem = CalibrationFile.load(path), None
        except (CalibrationFileError, ValueError, KeyError, TypeError) as e:
            cal, problem = None, f"calibration refused: {' '.join(str(e).split())}"
        _CACHE[str(path)] = (mtime, cal, problem)
        return cal, problem


def load_familiarity(
    cal: CalibrationFile | None, directory: str | Path | None = None
) -> tuple[Familiarity | None, str | None]:
    """the Gaussians the calibration names, checked against its SHA-256; (None, why) if refused"""
    entry = (cal.familiarity if cal is not None else None) or {}
    if not entry.get("sha256"):
        return None, None
    path = Path(directory or weights_dir()) / Path(str(entry.get("file", ""))).name
    key = (str(path), entry["sha256"])
    with _CACHE_LOCK:
        if key not in _FAMILIARITY:
            try:
                _FAMILIARITY[key] = (Familiarity.load(path, entry["sha256"]), None)
            except FamiliarityError as e:
                _FAMILIARITY[key] = (None, f"unfamiliarity not measured: {e}")
        return _FAMILIARITY[key]


def assess_analysis(
    signal: InputQuality | None,
    verdicts: Mapping[str, Verdict],
    input_lengths: Mapping[str, int],
    calibration: tuple[CalibrationFile | None, str | None],
) -> tuple[InputQuality | None, Combined]:
    """
    signal : the stored signal measurements (core.audio.quality.assess without windows)
    input_lengths : model key -> its window length in samples (to tell tiled audio)
    """
    quality = None
    if signal is not None:
        n_windows = {k: len(v.windows) for k, v in verdicts.items()}
        lengths = {k: int(input_lengths[k]) for k in verdicts if k in input_lengths}
        totals = {k: v.total_windows for k, v in verdicts.items()}
        quality = with_windows(signal, n_windows, lengths, totals)
    cal, problem = calibration
    fam, fam_problem = load_familiarity(cal)
    combined = combine(verdicts, quality, cal, calibration_problem=problem, familiarity=fam)
    if fam_problem:
        combined = dataclasses.replace(combined, reasons=(*combined.reasons, fam_problem))
    return quality, combined
