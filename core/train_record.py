"""A training run's record: the JSON sidecar written next to the weights (NAME.json).

It says what the weights were trained on (protocols, counts per attack system), how
(recipe, augmentation, seed, freeze), from what (init and its SHA-256), what dev measured
per epoch, and which code and torch made them; core.calibration, the Models page and the
model card tests read it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .augment import AugmentConfig
from .data import ProtocolEntry, count_labels
from .registry import ARCHS, PROJECT_ROOT, default_device, file_sha256

if TYPE_CHECKING:
    from .train import TrainConfig


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
    cfg: "TrainConfig",
    out: Path,
    *,
    best: dict,
    history: list[dict],
    train_entries: list[ProtocolEntry],
    dev_entries: list[ProtocolEntry],
    init_sha: str | None,
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
    return "core.augment.Augmenter per crop, seeded by (seed, epoch, file): " + ", ".join(on)
