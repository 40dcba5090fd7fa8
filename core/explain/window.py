"""The window an explanation is about: its network input, features, reference and target.

Everything that depends on the model's input (the feature grid, the blank reference, the map
geometry) comes from its front end, ``spec.front_end`` (core.detectors.frontends); this module
only picks the window and the target and counts model evaluations.

Interpretable features
----------------------
Waveform models (Res-TSSDNet 1D, AASIST, AASIST-L): ``segments`` contiguous time
segments of equal length over the window. The CQT model: patches of its (432, frames)
input, a grid of ``segments // bands`` time segments by ``bands`` frequency bands (108
bins = 2.25 octaves each for the default 4 bands), so ``segments`` is about the number
of features for every model and the cost of SHAP and LIME does not depend on the
front end.

References (what a removed feature is replaced by)
--------------------------------------------------
``reference`` (core.explain.reference): "speech" (default), a set of K real-speech
windows: a removed feature takes that feature of each reference window in turn, and a
coalition's value is the mean of the target's log-odds over the K inputs (the expected
value over a background set); "blank", the front end's baseline: silence (0.0) for
waveform models, the window's mean spectrum in dB for the CQT model (silence in log
power is -300 dB, far outside anything the net saw in training). ``baseline`` holds the
K reference inputs, (K, *input_shape).

Model outputs explained
-----------------------
SHAP and LIME explain the target's log-odds, logit[t] - logit[1 - t] = log P(t)/P(1-t)
(``Window.game``), so Shapley values add up to log-odds(x) - log-odds(reference), the
latter the mean over the reference set: P(target)
saturates (AASIST often gives 0.9999), and in P the values of a saturated window all but
vanish. The deletion curves use P(target) (``Window.evaluate``), the quantity a reader
knows, as the sigmoid of the coalition's mean log-odds.

Coalitions are evaluated once
-----------------------------
Every method asks the model about coalitions (which features are kept). The answers
depend only on the window (weights, audio, window, features, reference), never on the
method or the target, so the detector object keeps them in a small LRU of tables keyed
by the window's input, reference inputs and features (``coalition_table``): SHAP, LIME, the
deletion curves and the random-order baseline of one window share them, the forward
pass that picked the window fills in the full coalition, and ``Window.n_evals`` counts
only the model calls a method really made.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from core.audio.decode import SAMPLE_RATE
from core.detectors.detect import THRESHOLD, p_spoof_from_logits
from core.detectors.scheduler import turn_of
from core.explain.coalitions import (  # noqa: F401  (clear_coalition_tables: re-export)
    clear_coalition_tables,
    coalition_codes,
    coalition_table,
)
from core.explain.reference import DEFAULT_REFERENCE, reference_inputs

TARGET_LABELS = ("spoof", "bonafide")
# 8 features: small enough that SHAP can enumerate every coalition (2^8 = 256 model
# calls) on the Res-TSSDNets, so the default explanation is exact, and LIME and the
# deletion curves after it cost no model call; `python -m benchmarks shapley` measures
# what sampling costs in accuracy at other counts (README)
DEFAULT_SEGMENTS = 8
DEFAULT_BANDS = 4  # CQT frequency bands: 432 bins / 4 = 108 bins = 2.25 octaves each
MEMORY_BUDGET = 768 * 2**20  # bytes of activations one batch of perturbations may use
# perturbations per forward call, whatever the budget allows: on CPU, batches above 4
# cost more per window (Res-TSSDNet 1D 0.08 s at 4 vs 0.19 s at 8, CQT 0.38 vs 0.70 s)
MAX_BATCH = 4
# the table entry that keeps each reference input's own logit margin (not a coalition:
# coalition keys are bytes)
REFERENCE_MARGINS = "reference margins"

Progress = Callable[[float, str], None]


@dataclass
class Window:
    """
    One window of a file, prepared for attribution.

    x : torch.Tensor, shape = (1, *spec.front_end.input_shape):
        (1, input_length) waveform, (1, 1, 432, frames) CQT
    baseline : torch.Tensor, shape = (K, *spec.front_end.input_shape), the reference
        inputs (K = 1 for the blank reference)
    feature_mask : torch.Tensor (int64), same shape as x: feature id 0..F-1 per element
    feature_bounds : np.ndarray, shape = (F, 2) [t0, t1] s or (F, 4) [t0, t1, f0, f1]
        s and Hz; times are seconds in the file (window start included)
    """

    detector: object  # core.detectors.detect.Detector (duck-typed: spec, net, device, logits)
    index: int
    start: float  # seconds
    end: float  # seconds, capped at the file's end
    samples: np.ndarray  # (input_length,) the window's audio at 16 kHz
    x: torch.Tensor
    baseline: torch.Tensor
    baseline_name: str  # the reference in words
    feature_mask: torch.Tensor
    feature_bounds: np.ndarray
    feature_kind: str  # "time" | "time-frequency"
    target: int
    target_label: str
    p_target: float
    activation_bytes: int  # per window, one inference forward (sum over leaf modules)
    batch: int  # perturbations per forward call (memory-sized)
    reference: str = DEFAULT_REFERENCE  # core.explain.reference name
    n_evals: int = 0  # model evaluations made through this object
    on_evals: Callable[[int], None] | None = None
    # coalition (packed bits) -> mean over the reference inputs of logit[0] - logit[1];
    # REFERENCE_MARGINS -> each reference input's own; shared by every Window of the same
    # window (see coalition_table), so a coalition is sent to the model once
    table: dict = field(default_factory=dict, repr=False)

    @property
    def n_features(self) -> int:
        return len(self.feature_bounds)

    @property
    def spec(self):
        return self.detector.spec

    @property
    def net(self) -> nn.Module:
        return self.detector.net

    @property
    def n_references(self) -> int:
        return len(self.baseline)

    def compose(self, keep: torch.Tensor, refs: torch.Tensor | None = None) -> torch.Tensor:
        """
        keep : bool (n, F), True = feature present; refs : int (n,), the reference input
        each row's removed features take (default: the first) -> network inputs (n, ...)
        """
        full = keep[:, self.feature_mask[0].reshape(-1)].reshape(
            len(keep), *self.x.shape[1:]
        )
        if refs is None:
            refs = torch.zeros(len(keep), dtype=torch.long)
        return torch.where(full, self.x, self.baseline[refs])

    def _margins(self, keep: np.ndarray) -> np.ndarray:
        """
        logit[0] - logit[1] for each coalition, the mean over the reference inputs,
        from the table or the model: each missing coalition is sent once per reference
        input, ``batch`` inputs per forward call
        """
        keep = np.asarray(keep, dtype=bool).reshape(-1, self.n_features)
        codes = coalition_codes(keep)
        missing = list(dict.fromkeys(c for c in codes if c not in self.table))
        if missing:
            rows = {c: i for i, c in enumerate(codes)}
            todo = torch.as_tensor(keep[[rows[c] for c in missing]])
            k = self.n_references
            flat = torch.arange(len(todo) * k)  # input j: coalition j // k, reference j % k
            margins = np.empty(len(flat))
            for i in range(0, len(flat), self.batch):
                part = flat[i : i + self.batch]
                logits = self.detector.logits(self.compose(todo[part // k], part % k))
                logits = logits.double()
                margins[i : i + len(part)] = (logits[:, 0] - logits[:, 1]).cpu().numpy()
                self.n_evals += len(part)
                if self.on_evals is not None:
                    self.on_evals(len(part))
            per_input = margins.reshape(len(missing), k)
            for c, m in zip(missing, per_input):
                self.table[c] = float(m.mean())
                if not np.any(np.frombuffer(c, np.uint8)):  # every feature removed
                    self.table[REFERENCE_MARGINS] = tuple(float(v) for v in m)
        return np.array([self.table[c] for c in codes], dtype=np.float64)

    def game(self, keep: np.ndarray) -> np.ndarray:
        """the target's log-odds for each coalition; keep : bool (n, F) -> (n,) float64"""
        sign = 1.0 if self.target == 0 else -1.0
        return sign * self._margins(keep)

    def evaluate(self, keep: np.ndarray) -> np.ndarray:
        """P(target) for each coalition; keep : bool (n, F) -> (n,) float64"""
        return 1.0 / (1.0 + np.exp(-self.game(keep)))

    @property
    def log_odds_target(self) -> float:
        """the target's log-odds on the whole window (every feature kept)"""
        return float(self.game(np.ones((1, self.n_features), bool))[0])

    @property
    def log_odds_baseline(self) -> float:
        """the target's log-odds with every feature removed"""
        return float(self.game(np.zeros((1, self.n_features), bool))[0])

    @property
    def p_baseline(self) -> float:
        """P(target) with every feature removed (sigmoid of the mean log-odds)"""
        return float(self.evaluate(np.zeros((1, self.n_features), bool))[0])

    def reference_margins(self) -> np.ndarray:
        """(K,) logit[0] - logit[1] of each reference input (every feature removed)"""
        if REFERENCE_MARGINS not in self.table:
            self.table.pop(coalition_codes(np.zeros((1, self.n_features), bool))[0], None)
            self._margins(np.zeros((1, self.n_features), bool))
        return np.asarray(self.table[REFERENCE_MARGINS], dtype=np.float64)

    @property
    def reference_p_spoof(self) -> float:
        """the model's P(spoof) of the reference inputs themselves, mean over the set"""
        m = self.reference_margins()
        spoof_margin = m if self.spec.spoof_index == 0 else -m
        return float(np.mean(1.0 / (1.0 + np.exp(-spoof_margin))))

    @property
    def p_reference_target(self) -> float:
        """P(target) of the reference inputs, mean over the set (expected gradients)"""
        p = self.reference_p_spoof
        return p if self.target_label == "spoof" else 1.0 - p

    def region_mean(self, dense: np.ndarray) -> np.ndarray:
        """mean of a map on the input grid over each feature -> (F,)"""
        ids = self.feature_mask[0].reshape(-1).numpy()
        sums = np.bincount(
            ids,
            weights=np.asarray(dense, np.float64).reshape(-1),
            minlength=self.n_features,
        )
        return sums / np.maximum(np.bincount(ids, minlength=self.n_features), 1)

    def region_sum(self, dense: np.ndarray) -> np.ndarray:
        """sum of a map on the input grid over each feature -> (F,)"""
        ids = self.feature_mask[0].reshape(-1).numpy()
        weights = np.asarray(dense, np.float64).reshape(-1)
        return np.bincount(ids, weights=weights, minlength=self.n_features)


def arch_setting(spec, name: str, default):
    """a per-architecture explanation setting (core.detectors.archs.Arch), or the default for
    specs without an architecture (test doubles)"""
    return getattr(getattr(spec, "architecture", None), name, default)


def target_index(spec, label: str) -> int:
    """logit index of "spoof" or "bonafide" for this model's output order"""
    if label not in TARGET_LABELS:
        raise ValueError(f"target must be 'spoof', 'bonafide' or None, not {label!r}")
    return spec.spoof_index if label == "spoof" else 1 - spec.spoof_index


def prepare_window(
    detector,
    samples: np.ndarray,
    *,
    window: int | None = None,
    target: str | None = None,
    segments: int = DEFAULT_SEGMENTS,
    bands: int = DEFAULT_BANDS,
    reference: str = DEFAULT_REFERENCE,
) -> Window:
    """
    Pick the window (None = most suspicious, max P(spoof)), compute the network input,
    the features and the reference inputs (core.explain.reference), and resolve the
    target (None = predicted class).
    """
    spec = detector.spec
    front_end = spec.front_end
    batch, starts = detector.windows(np.asarray(samples, dtype=np.float32))
    # `window` is an index (explain()'s public keyword); the Window object is built last
    index = window
    if index is None:
        index = int(np.argmax(detector.p_spoof(batch))) if len(batch) > 1 else 0
    if not 0 <= index < len(batch):
        raise ValueError(
            f"window {index} out of range: the file has {len(batch)} windows"
        )
    start = starts[index] / SAMPLE_RATE
    end = min(starts[index] + spec.input_length, len(samples)) / SAMPLE_RATE
    x = detector.frontend(batch[index : index + 1])

    logits, act_bytes = _logits_and_activation_bytes(detector, x)
    p_spoof = float(p_spoof_from_logits(logits, spec.spoof_index)[0])
    label = target or ("spoof" if p_spoof >= THRESHOLD else "bonafide")
    target_idx = target_index(spec, label)
    p_target = p_spoof if label == "spoof" else 1.0 - p_spoof

    mask, bounds = front_end.features(x, segments=segments, bands=bands)
    bounds[:, :2] += start
    baseline, baseline_name = reference_inputs(reference, detector, x)
    mask = mask.reshape(x.shape)
    table = coalition_table(detector, index, x, baseline, mask)
    # every feature kept is x itself: the forward above already answered it
    (full,) = coalition_codes(np.ones((1, len(bounds)), bool))
    table.setdefault(full, float(logits[0, 0].double() - logits[0, 1].double()))
    return Window(
        detector=detector,
        index=index,
        start=start,
        end=end,
        samples=batch[index].copy(),  # not a view: the other windows can go
        x=x,
        baseline=baseline,
        baseline_name=baseline_name,
        reference=reference,
        feature_mask=mask,
        feature_bounds=bounds,
        feature_kind=front_end.feature_kind,
        target=target_idx,
        target_label=label,
        p_target=p_target,
        activation_bytes=act_bytes,
        batch=batch_size(act_bytes, detector.device),
        table=table,
    )


def _logits_and_activation_bytes(detector, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """one inference forward; also sums the bytes of every leaf module's output"""
    total = [0]

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            total[0] += output.numel() * output.element_size()

    leaves = [m for m in detector.net.modules() if not list(m.children())]
    with turn_of(detector):  # nobody else's forward may run through these hooks
        handles = [m.register_forward_hook(hook) for m in leaves]
        try:
            logits = detector.logits(x)
        finally:
            for h in handles:
                h.remove()
    return logits, max(total[0] // len(x), 1)


def memory_budget(device: torch.device | str | None) -> int:
    """bytes one batch may use: MEMORY_BUDGET, or less when the machine is short"""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(min(4 * MEMORY_BUDGET, free // 2))
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: line.split()[1] for line in f}
        available = int(info["MemAvailable"]) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        available = 4 * MEMORY_BUDGET
    return int(min(MEMORY_BUDGET, available // 4))


def batch_size(per_item_bytes: int, device, *, factor: float = 1.0) -> int:
    """how many inputs fit the memory budget, each needing factor * per_item_bytes"""
    n = memory_budget(device) // max(int(per_item_bytes * factor), 1)
    return int(np.clip(n, 1, MAX_BATCH))


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """(B, 2) logits -> (B, 2): column t is logit[t] - logit[1 - t] = log P(t)/P(1-t)"""
    return logits - logits.flip(-1)


@contextmanager
def seeded(seed: int):
    """
    Captum's samplers draw from the global generators (KernelShap: torch; GradientShap:
    numpy): seed both for the duration, then restore them for everyone else
    """
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)
