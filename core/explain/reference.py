"""The reference an explanation is read against: what a removed feature is replaced by.

SHAP, LIME, the deletion curves and expected gradients all compare the window with a
reference input in which features are "removed". Their values explain the score
*against that reference*, so the reference must be something an analyst can picture.

References (``REFERENCES``; the name is an explanation parameter, so part of its key)
---------------------------------------------------------------------------------
speech (default) : real speech. ``REFERENCE_WINDOWS`` windows of bona fide speech from
    the MiniSpoof *train* split (never dev or eval), shipped in
    weights/reference_speech.npz (int16, checked against its .sha256 sidecar on load).
    A removed feature takes the same feature of each reference window in turn and the
    coalition's value is the mean of the target's log-odds over the set: the expected
    value over a background set, as SHAP intends (Lundberg & Lee, NeurIPS 2017,
    "interventional" Shapley values). Values then say how the window differs from
    real speech, and sum to log-odds(window) - mean log-odds(reference windows).
blank : the front end's own baseline (silence for waveform models, the window's mean
    spectrum for the CQT model), one input. Kept for comparison: a model may score a
    blank as more "spoof" than any clip (the 2D Res-TSSDNet gives the mean spectrum
    log-odds of about +13), and then "evidence for bona fide" means "less spoof than a
    blank".

Rebuild the shipped set (deterministic, byte for byte; core.explain.reference_build):

    python -m core.explain.reference_build --minispoof ../shared/data/minispoof

Layer 3 (core.explain): imports core.detectors and core.audio only.
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import numpy as np
import torch

from core.audio.decode import fit_length
from core.detectors.registry import PROJECT_ROOT, weights_dir

DEFAULT_REFERENCE = "speech"
REFERENCE_FILE = "reference_speech.npz"
# 6.4 s at 16 kHz: the longest shipped input (the CQT model's), so one stored window
# serves every model; a model with a longer input gets it tiled (core.audio.decode)
REFERENCE_SAMPLES = 102_400
# windows in the set: each coalition is sent to the model once per window, so the cost
# of SHAP, LIME and the deletion curves grows with it (README, "Reading an explanation")
REFERENCE_WINDOWS = 4
INT16_SCALE = 32_768.0


class ReferenceError(RuntimeError):
    """The reference set is missing or damaged: fail, never explain against another."""


# explanation parameter values; the first is the default
REFERENCES = ("speech", "blank")


def reference_names() -> tuple[str, ...]:
    return REFERENCES


def check_reference(name: str) -> str:
    if name not in reference_names():
        raise ValueError(
            f"unknown reference {name!r}; known: {', '.join(reference_names())}"
        )
    return name


def reference_path() -> Path:
    """weights/reference_speech.npz: the weights directory's, else the project's"""
    own = weights_dir() / REFERENCE_FILE
    return own if own.exists() else PROJECT_ROOT / "weights" / REFERENCE_FILE


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


_SET_LOCK = threading.Lock()
_SETS: dict[tuple[str, str], np.ndarray] = {}  # (path, sha256) -> windows


def speech_set(path: Path | None = None) -> tuple[str, np.ndarray]:
    """
    The shipped real-speech windows, checked against their sidecar: (sha256, windows)

    windows : np.ndarray, shape = (REFERENCE_WINDOWS, REFERENCE_SAMPLES), float32 in [-1, 1)
    """
    path = Path(path or reference_path())
    if not path.exists() or not sidecar(path).exists():
        raise ReferenceError(
            f"the real-speech reference {path} (or its .sha256) is missing: rebuild it "
            "with `python -m core.explain.reference_build --minispoof DIR`"
        )
    data = path.read_bytes()
    expected = sidecar(path).read_text().split()[0]
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ReferenceError(
            f"{path.name} does not match {sidecar(path).name} (sha256 {actual[:12]}... "
            f"vs {expected[:12]}...): the reference set is damaged; rebuild it"
        )
    key = (str(path), actual)
    with _SET_LOCK:
        if key not in _SETS:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                audio = z["audio"]
            _SETS[key] = (audio.astype(np.float32) / INT16_SCALE).copy()
        return actual, _SETS[key]


def reference_size(name: str) -> int:
    """K, the inputs of a reference: 1 for blank, the set's windows for speech"""
    return 1 if check_reference(name) == "blank" else len(speech_set()[1])


def speech_windows(path: Path | None = None) -> np.ndarray:
    """the windows of speech_set (checked against their sidecar)"""
    return speech_set(path)[1]


def fit_window(x: np.ndarray, n: int) -> np.ndarray:
    """the centre n samples of a stored window, or the window tiled up to n"""
    if len(x) < n:
        return fit_length(x, n)
    start = (len(x) - n) // 2
    return x[start : start + n]


def reference_inputs(name: str, detector, x: torch.Tensor) -> tuple[torch.Tensor, str]:
    """
    The reference inputs of one window and the reference in words.

    x : torch.Tensor, shape = (1, *input_shape), the window's network input
    Returns (refs, label): refs shape = (K, *input_shape), K = 1 for "blank"
    """
    front_end = detector.spec.front_end
    if check_reference(name) == "blank":
        return front_end.baseline(x), front_end.baseline_name
    n = int(detector.spec.input_length)
    sha, windows = speech_set()
    # the set's network inputs depend only on the model: one front end pass per process
    cache = detector.__dict__.setdefault("_reference_inputs", {})
    if (n, sha) not in cache:
        fitted = np.stack([fit_window(w, n) for w in windows])
        cache[(n, sha)] = detector.frontend(fitted).detach().cpu().contiguous()
    refs = cache[(n, sha)]
    label = f"real speech ({len(refs)} bona fide windows of MiniSpoof train)"
    return refs, label
