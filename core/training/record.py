"""A training run's configuration (TrainConfig) and record: the JSON sidecar NAME.json.

It says what the weights were trained on (protocols, counts per attack system), how
(recipe, augmentation, seed, freeze), from what (init and its SHA-256), what dev measured
per epoch, and which code and torch made them; core.judgement.calibration, the Models page and the
model card tests read it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from core.audio.protocol import ProtocolEntry, count_labels
from core.detectors.registry import ARCHS, PROJECT_ROOT, default_device, file_sha256
from core.training.augment import AugmentConfig


@dataclass
class TrainConfig:
    arch: str
    protocol: str
    audio_dir: str
    dev_protocol: str
    out: str
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    seed: int = 0
    dev_audio_dir: str | None = None  # default: audio_dir
    init: str | None = None  # state dict to start from (fine-tuning)
    freeze: tuple[str, ...] = ()  # module-name prefixes kept fixed (eval mode, no grad)
    augment: bool = False  # on-the-fly core.training.augment.Augmenter on every training crop
    extra: tuple[tuple[str, str], ...] = ()  # more (protocol, audio dir) training data
    crop: int | None = None  # training crop in samples (default: the model's input length)
    # degraded copies of dev (core.training.augment conditions, seeded per file): the epoch is
    # chosen by the mean dev EER over clean and these, not by clean dev alone
    dev_degrade: tuple[str, ...] = ()
    resume: bool = False
    # more dev sets whose first column is the source (DemoSpoof): each scored by its
    # matched EER (core.judgement.metrics.matched_eer), which joins the selection mean
    matched_dev: tuple[tuple[str, str], ...] = ()
    lr_min_ratio: float = 0.01
    command: str = ""


def code_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() or None


def sidecar_path(out: Path) -> Path:
    return out.with_suffix(".json")


def write_sidecar(
    cfg: TrainConfig,
    out: Path,
    *,
    best: dict,
    history: list[dict],
    train_entries: list[ProtocolEntry],
    dev_entries: list[ProtocolEntry],
    init_sha: str | None,
    train_groups: list[tuple[list[ProtocolEntry], str]] = (),
) -> dict:
    arch = ARCHS[cfg.arch]
    recipe = {
        "lr": cfg.lr,
        "lr_schedule": f"cosine per step to {cfg.lr * cfg.lr_min_ratio:g}",
        "optimizer": "Adam",
        "weight_decay": cfg.weight_decay,
        "batch_size": cfg.batch_size,
        "loss": "cross-entropy weighted by inverse class frequency",
        "crop": f"one random crop of {cfg.crop or arch.input_length} samples per "
        "file per epoch; short files tiled from a random phase" + arch.front_end.crop_note,
        "augment": augment_note(AugmentConfig()) if cfg.augment else "none",
        "freeze": list(cfg.freeze),
        "seed": cfg.seed,
        "dev_scoring": "first window of each file (tiled if short)",
        "selection": (
            "lowest mean dev EER over clean and " + ", ".join(cfg.dev_degrade)
            + " (each dev file degraded once, seeded by its id)"
            if cfg.dev_degrade else "lowest clean dev EER"
        ) + (
            ", averaged with the matched EER (per source, mean over sources) of "
            + ", ".join(p for p, _ in cfg.matched_dev) if cfg.matched_dev else ""
        ) + "; ties broken by dev loss",
    }
    sidecar = {
        "arch": cfg.arch,
        "config": arch.default_config,
        "spoof_index": arch.spoof_index,
        "n_samples": arch.input_length,  # sidecar name kept: existing sidecars use it
        "data": {
            "train_protocol": str(cfg.protocol),
            "extra_train": [{"protocol": str(p), "audio_dir": str(d)} for p, d in cfg.extra],
            "dev_protocol": str(cfg.dev_protocol),
            "audio_dir": str(cfg.audio_dir),
            "dev_audio_dir": str(cfg.dev_audio_dir or cfg.audio_dir),
            "train_counts": count_labels(train_entries),
            "dev_counts": count_labels(dev_entries),
            "matched_dev": [{"protocol": str(p), "audio_dir": str(d)} for p, d in cfg.matched_dev],
            # every training protocol's first-column values (speakers, or DemoSpoof source
            # pages) and systems: what a leakage check against dev and eval reads
            "train_sources": {
                str(p): {"first_column": sorted({e.speaker for e in g}),
                         "systems": sorted({e.system for e in g if e.is_spoof})}
                for (g, _), p in zip(train_groups, [cfg.protocol, *(q for q, _ in cfg.extra)])
            },  # fmt: skip
        },
        "init": {"path": cfg.init, "sha256": init_sha} if cfg.init else None,
        "recipe": recipe,
        "epochs": cfg.epochs,
        "epochs_done": len(history),
        "best_epoch": best["epoch"],
        "dev_eer": best["eer"],
        "dev_loss": best["loss"],
        "dev_degrade": list(cfg.dev_degrade),
        "dev_select": best.get("select", best["eer"]),
        "history": history,
        "sha256": file_sha256(out) if out.exists() else None,
        "code_revision": code_revision(),
        "command": cfg.command,
        "device": str(default_device()),
        "torch": torch.__version__,
    }
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def augment_note(config: AugmentConfig) -> str:
    """the augmentation recipe in words, for the sidecar"""
    on = [f"{f.name} p={getattr(config, f.name):g}" for f in dataclasses.fields(config)]
    head = "core.training.augment.Augmenter per crop, seeded by (seed, epoch, file): "
    return head + ", ".join(on)
