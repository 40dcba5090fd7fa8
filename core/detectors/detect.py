"""Whole-file scoring: sliding windows, batched inference, one verdict per model.

Windows have each model's native length (AASIST 64 600 samples, Res-TSSDNet 96 000,
the CQT model 102 400) and a hop of half a window (50 % overlap); the last window is
aligned to the end of the file so no tail goes unscored, and a file shorter than one
window is tiled up to it, as both papers do at evaluation.

File score = mean of the windows' P(spoof). Label = "spoof" when the file score is at
least THRESHOLD (0.5), else "bonafide". The most suspicious window (max P(spoof)) is
reported too, so a partly synthetic file is visible on the timeline even when its mean
stays below the threshold.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from core.audio.decode import (
    SAMPLE_RATE,
    Audio,
    cut_windows,
    frame_windows,
    window_starts,
)
from core.detectors.precision import autocast, scoring_precision
from core.detectors.registry import MODELS, ModelSpec, load_model
from core.detectors.scheduler import SHORT_JOB_SECONDS, compute_lock, shared_locks

THRESHOLD = 0.5  # on P(spoof); not calibrated for any particular operating point
BATCH_SIZE = 8  # windows per forward pass; AASIST's activations bound it on CPU
# One turn on the shared network (core.detectors.scheduler) is at most this long: as many windows
# as the model's measured time per window allows, between 1 and BATCH_SIZE. On 2 CPU
# cores an AASIST window takes ~0.25 s alone and ~0.27 s in a batch of 8, so batching
# buys little there while 8-window turns would keep short jobs waiting ~2 s each.
TURN_SECONDS = 0.3
# A job with at most this much work left on a model does it in one turn (up to
# BATCH_SIZE windows): a 6-s upload's two AASIST windows then wait for one turn, not two.
SHORT_WORK_SECONDS = 1.0
# A job with at most core.detectors.scheduler.SHORT_JOB_SECONDS of work left on the models after
# this one keeps the shared lock for its next model
# (core.detectors.scheduler.FairLock.release(keep_for=...)): a 6-s upload then waits for someone
# else's turn once, not once per model. Kept at most KEEP_SECONDS: if the job does not
# come back by then (its next verdict was stored, or it waits for another request's
# computation of it), the queue goes on. 0.1 s was too short under load: storing one
# verdict and claiming the next is a few ms alone but, with a dozen threads taking turns
# at the interpreter, sometimes took longer (benchmarks load, README).
KEEP_SECONDS = 0.3


@dataclass(frozen=True)
class WindowScore:
    start: float  # seconds
    end: float  # seconds (capped at the file's end; a tiled window ends there)
    p_spoof: float
    index: int = -1  # position among all the file's windows; -1: its place in the verdict


@dataclass(frozen=True)
class Verdict:
    model: str
    weights_sha256: str
    p_spoof: float  # file score: mean of window P(spoof)
    label: str  # "spoof" | "bonafide"
    max_p_spoof: float  # most suspicious window
    max_window: int  # its index
    windows: list[WindowScore] = field(default_factory=list)  # the scored ones
    seconds: float = 0.0  # wall time to score
    n_windows: int = 0  # windows the file has (0: every one was scored)
    # the mean over the scored windows of the model's embedding (the input of its
    # Arch.embedding_layer); None for verdicts stored before it was recorded
    embedding: tuple[float, ...] | None = None

    def __post_init__(self):
        # windows made without an index (rows stored before the cap, hand-made verdicts)
        # are every window of the file, so each one's index is its position
        if any(w.index < 0 for w in self.windows):
            fixed = [dataclasses.replace(w, index=i) if w.index < 0 else w
                     for i, w in enumerate(self.windows)]  # fmt: skip
            object.__setattr__(self, "windows", fixed)

    @property
    def total_windows(self) -> int:
        return max(self.n_windows, len(self.windows))

    @property
    def coverage(self) -> float:
        """share of the file's windows that were scored (1.0: all of them)"""
        return len(self.windows) / self.total_windows if self.windows else 1.0

    def window_at(self, index: int) -> WindowScore | None:
        """the scored window with this index among all the file's windows"""
        for w in self.windows:
            if w.index == index:
                return w
        return None

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "p_spoof": self.p_spoof,
            "label": self.label,
            "max_p_spoof": self.max_p_spoof,
            "max_window": self.max_window,
            "windows": [w.__dict__ for w in self.windows],
            "seconds": self.seconds,
            "n_windows": self.total_windows,
            **({} if self.embedding is None else
               {"embedding": [float(f"{v:.6g}") for v in self.embedding]}),  # fmt: skip
        }


def p_spoof_from_logits(logits: torch.Tensor, spoof_index: int) -> torch.Tensor:
    """softmax probability of the spoof class, whatever the logit order; (B, 2) -> (B,)"""
    return torch.softmax(logits.double(), dim=-1)[:, spoof_index]  # float64: fewer ties at 1.0


class Detector:
    """A loaded model plus its front end: windows of audio in, P(spoof) out."""

    def __init__(self, spec: ModelSpec, net: nn.Module, device: torch.device | None = None):
        self.spec = spec
        self.net = net.eval()
        self.device = device or next(net.parameters()).device
        # turns on the shared network, taken per batch (core.detectors.scheduler)
        self.lock = compute_lock(spec.key, self.device)
        # a kept turn only helps where the next model takes turns on the same lock
        self.keeps_turns = shared_locks(self.device)
        self.seconds_per_window: float | None = None  # measured (moving average)
        # "bf16" or "fp32" (core.detectors.precision): the arithmetic of logits(), so of verdicts
        self.precision = scoring_precision(spec, self.device)
        self.embedding_module = embedding_module(self.net, getattr(spec, "architecture", None))

    @classmethod
    def load(cls, key: str, **kwargs) -> "Detector":
        spec = MODELS[key]
        net = load_model(spec, **kwargs)
        return cls(spec, net)

    def frontend(self, windows: np.ndarray) -> torch.Tensor:
        """
        windows : np.ndarray, shape = (n, spec.input_length), 16 kHz
        returns the network input, spec.front_end.transform(windows): (n, input_length)
        waveform or (n, 1, 432, frames) CQT dB
        """
        return self.spec.front_end.transform(windows)

    def logits(
        self,
        inputs: torch.Tensor,
        *,
        remaining: int | None = None,
        work_after: float = 0.0,
        embeddings: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """
        network inputs (front end applied) -> logits (n, 2), on CPU. Each slice of
        turn_size() inputs is one turn on the model's lock, so other jobs interleave
        (core.detectors.scheduler). The priority of those turns is the caller's job's remaining
        work: ``remaining`` windows on this model, these included (default: these), times
        the measured seconds per window, plus ``work_after`` seconds on other models.
        ``embeddings``: a list that receives the (n, d) float32 embeddings of these inputs.
        """
        outs = []
        left = len(inputs) if remaining is None else max(int(remaining), len(inputs))
        with torch.inference_mode(), autocast(self.precision):
            i = 0
            while i < len(inputs):
                part = inputs[i : i + self.turn_size(left)]
                work = left * (self.seconds_per_window or 0.0) + work_after
                last = len(part) >= left  # this model's last turn for the job
                short = 0 < work_after <= SHORT_JOB_SECONDS
                keep = KEEP_SECONDS if last and short and self.keeps_turns else 0.0
                with self.lock.turn(work=work, keep_for=keep):
                    t0 = time.perf_counter()
                    outs.append(self._forward(part, embeddings))
                    self._measured(time.perf_counter() - t0, len(part))
                i, left = i + len(part), left - len(part)
        return torch.cat(outs)

    def _forward(self, part: torch.Tensor, embeddings: list | None) -> torch.Tensor:
        """one forward pass (inside a turn: nobody else runs the network meanwhile)"""
        if embeddings is None or self.embedding_module is None:
            return self.net(part.to(self.device)).float().cpu()

        def keep(module, args):
            embeddings.append(args[0].detach().float().reshape(len(args[0]), -1).cpu())

        hook = self.embedding_module.register_forward_pre_hook(keep)
        try:
            return self.net(part.to(self.device)).float().cpu()
        finally:
            hook.remove()

    def turn_size(self, left: int | None = None) -> int:
        """
        windows per turn: about TURN_SECONDS of work, 1 to BATCH_SIZE; a job with at
        most SHORT_WORK_SECONDS of windows ``left`` does them in one (fewer waits)
        """
        per = self.seconds_per_window
        if not per:
            return 1  # not measured yet: one window, then the measurement decides
        n = int(min(BATCH_SIZE, max(1, TURN_SECONDS // per)))
        if left is not None and left * per <= SHORT_WORK_SECONDS:
            n = max(n, min(left, BATCH_SIZE))
        return n

    def _measured(self, seconds: float, n: int) -> None:
        per = seconds / max(1, n)
        old = self.seconds_per_window
        self.seconds_per_window = per if old is None else 0.8 * old + 0.2 * per

    def p_spoof(
        self,
        windows: np.ndarray,
        *,
        remaining: int | None = None,
        work_after: float = 0.0,
        embeddings: list[torch.Tensor] | None = None,
    ) -> np.ndarray:
        logits = self.logits(self.frontend(windows), remaining=remaining, work_after=work_after,
                             embeddings=embeddings)  # fmt: skip
        return p_spoof_from_logits(logits, self.spec.spoof_index).numpy()

    def windows(self, samples: np.ndarray) -> tuple[np.ndarray, list[int]]:
        return frame_windows(samples, self.spec.input_length, self.spec.window_hop)

    def score(
        self,
        audio: Audio | np.ndarray,
        *,
        progress: Callable[[int, int], None] | None = None,
        max_windows: int | None = None,
        work_after: float = 0.0,
    ) -> Verdict:
        """
        Score the file's windows: every one, or with ``max_windows`` at most that many,
        evenly spread from the first to the last (select_windows). Windows are cut,
        transformed and scored BATCH_SIZE at a time, so memory beyond the decoded audio
        does not grow with the file's length; ``progress(done, total)`` is called after
        each batch. ``work_after``: seconds of work the caller's job has after this
        (other models), for the priority of its turns (core.detectors.scheduler).
        """
        t0 = time.perf_counter()
        samples = audio.samples if isinstance(audio, Audio) else audio
        starts = window_starts(len(samples), self.spec.input_length, self.spec.window_hop)
        chosen = select_windows(len(starts), max_windows)
        p = np.empty(len(chosen))
        emb: list[torch.Tensor] = []
        for i in range(0, len(chosen), BATCH_SIZE):
            part = [starts[j] for j in chosen[i : i + BATCH_SIZE]]
            windows = cut_windows(samples, part, self.spec.input_length)
            p[i : i + len(part)] = self.p_spoof(
                windows, remaining=len(chosen) - i, work_after=work_after, embeddings=emb
            )
            if progress is not None:
                progress(i + len(part), len(chosen))
        v = verdict_from_windows(
            self.spec, p, [starts[j] for j in chosen], len(samples),
            seconds=time.perf_counter() - t0, indices=chosen, n_windows=len(starts),
        )  # fmt: skip
        if not emb:
            return v
        mean = torch.cat(emb).double().mean(dim=0)
        return dataclasses.replace(v, embedding=tuple(float(x) for x in mean))


def embedding_module(net: nn.Module, arch=None) -> nn.Module | None:
    """the module whose input is the embedding: arch.embedding_layer, else the last nn.Linear"""
    name = getattr(arch, "embedding_layer", None)
    if name:
        try:
            return net.get_submodule(name)
        except AttributeError:  # another network under this arch (a test's stand-in)
            pass
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def expected_seconds(detectors, n_samples: int, max_windows: int | None = None) -> float:
    """the compute a file of n_samples needs on these detectors, at their measured pace"""
    total = 0.0
    for det in detectors:
        per = getattr(det, "seconds_per_window", None) or 0.0  # 0 until measured
        n = n_windows(det.spec, n_samples)
        total += per * (n if max_windows is None else min(n, max_windows))
    return total


def n_windows(spec: ModelSpec, n_samples: int) -> int:
    """how many windows a file of n_samples has for this model"""
    return len(window_starts(n_samples, spec.input_length, spec.window_hop))


def select_windows(n: int, max_windows: int | None) -> list[int]:
    """
    Indices of the windows to score: all n, or for a cap below n, max_windows indices
    evenly spread over 0..n-1 (the first and the last always among them).
    """
    if max_windows is None or n <= max_windows:
        return list(range(n))
    if max_windows < 2:
        raise ValueError(f"max_windows must be at least 2, not {max_windows}")
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, max_windows)})


def verdict_from_windows(
    spec: ModelSpec,
    p: np.ndarray,
    starts: list[int],
    file_length: int,
    *,
    seconds: float = 0.0,
    indices: list[int] | None = None,
    n_windows: int | None = None,
) -> Verdict:
    """
    Aggregate window scores into the file verdict (the rule in this module's doc);
    starts are the scored windows' starts and file_length the file's length, in
    samples; ``indices`` their positions among the file's ``n_windows`` windows
    (default: every window was scored).
    """
    indices = list(range(len(starts))) if indices is None else list(indices)
    wins = [
        WindowScore(
            start=s / SAMPLE_RATE,
            end=min(s + spec.input_length, file_length) / SAMPLE_RATE,
            p_spoof=float(v),
            index=int(j),
        )
        for s, v, j in zip(starts, p, indices)
    ]
    score = float(np.mean(p))
    return Verdict(
        model=spec.key,
        weights_sha256=spec.sha256,
        p_spoof=score,
        label="spoof" if score >= THRESHOLD else "bonafide",
        max_p_spoof=float(np.max(p)),
        max_window=int(indices[int(np.argmax(p))]),
        windows=wins,
        seconds=seconds,
        n_windows=int(n_windows or len(starts)),
    )
