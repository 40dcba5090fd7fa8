"""`python -m core train`: train (or fine-tune) a detector on an ASVspoof-style protocol.

Everything architecture-specific comes from ``ARCHS[arch]`` (core.registry): the network
(``build(default_config)``), the label order, the front end (what a training item is,
how it is cropped and cached) and the recipe defaults (``recipe``), each overridable on
the command line. A runtime-registered architecture trains the same way.

Recipe:

* every file is decoded once and kept in memory; each epoch draws one random crop per
  file at the model's input length, tiling short files from a random phase (both papers
  tile instead of zero-padding);
* the CQT model's spectrogram is computed once per whole file (its front end caches it
  under cache/cqt/) and cropped to 401 frames in the spectrogram domain: recomputing
  the CQT at every step would cost more than the network;
* class imbalance: cross-entropy weighted by inverse class frequency;
* Adam with cosine decay over all steps (Res-TSSDNet: Hua et al. 2021 use Adam at 1e-3;
  AASIST: Jung et al. 2022 use Adam 1e-4, weight decay 1e-4, cosine annealing);
* labels in each architecture's own order (``ARCHS[arch].spoof_index``);
* after each epoch: EER on the dev protocol from one deterministic crop per file (the
  first window, tiled), and a resumable checkpoint (weights/runs/NAME.last.pt);
* the best dev epoch (lowest EER, ties broken by dev loss) is written as a plain state
  dict to --out, plus a JSON sidecar with the data, recipe, dev EER, SHA-256, code
  revision and the exact command.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import ProtocolEntry, TrainData, class_weights, count_labels, parse_protocol
from .detect import p_spoof_from_logits
from .metrics import compute_eer
from .registry import ARCHS, PROJECT_ROOT, default_device, file_sha256

CACHE_DIR = PROJECT_ROOT / "cache"  # front ends cache whole-file features under it
RUNS_DIR_NAME = "runs"  # next to --out; git-ignored under weights/


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
    augment: bool = False  # light RawBoost-style noise/filtering (waveform models)
    crop: int | None = None  # training crop in samples (default: the model's input length)
    resume: bool = False
    lr_min_ratio: float = 0.01
    command: str = ""


def load_train_data(
    arch: str,
    entries: list[ProtocolEntry],
    audio_dir: str | Path,
    *,
    crop: int | None = None,
    progress: bool = False,
) -> TrainData:
    """crop: input length in samples (default: the model's); dev data keeps the default"""
    a = ARCHS[arch]
    fe = a.front_end
    items = fe.load_items(entries, audio_dir, cache_dir=CACHE_DIR, progress=progress)
    is_spoof = np.array([e.is_spoof for e in entries], dtype=bool)
    targets = np.where(is_spoof, a.spoof_index, 1 - a.spoof_index).astype(np.int64)
    return TrainData(
        items=items,
        targets=targets,
        length=fe.crop_length(crop),
        is_spoof=is_spoof,
        front_end=fe,
    )


def build_net(arch: str) -> nn.Module:
    """an untrained network of the architecture, from its default config"""
    a = ARCHS[arch]
    return a.build(a.default_config)


def apply_freeze(net: nn.Module, prefixes: tuple[str, ...]) -> None:
    """no gradients for parameters under the prefixes, and their BatchNorms in eval mode"""

    def under(name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    for name, p in net.named_parameters():
        if under(name):
            p.requires_grad_(False)
    for name, m in net.named_modules():
        if name and under(name):
            m.eval()


def run_epoch(
    net: nn.Module,
    data: TrainData,
    opt: torch.optim.Optimizer,
    sched,
    *,
    batch_size: int,
    rng: np.random.Generator,
    weights: torch.Tensor,
    device: torch.device,
    freeze: tuple[str, ...] = (),
    augment: bool = False,
    progress: bool = False,
    desc: str = "train",
) -> float:
    """One pass over the data in random order; returns the mean training loss."""
    net.train()
    apply_freeze(net, freeze)
    order = rng.permutation(len(data.items))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    it = batches
    if progress:
        from tqdm import tqdm

        it = tqdm(batches, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
    total, n = 0.0, 0
    weights = weights.to(device)
    for idx in it:
        x, y = data.batch(idx, rng, augment=augment)
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(net(x), y, weight=weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        total += float(loss.detach()) * len(idx)
        n += len(idx)
        if progress:
            it.set_postfix(loss=f"{total / n:.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
    return total / max(n, 1)


@torch.no_grad()
def evaluate_crops(
    net: nn.Module,
    data: TrainData,
    *,
    spoof_index: int,
    weights: torch.Tensor,
    device: torch.device,
    batch_size: int = 16,
) -> tuple[float, float]:
    """(EER, weighted CE loss) from one deterministic crop per file; eval mode"""
    net.eval()
    p, losses = [], []
    for i in range(0, len(data.items), batch_size):
        idx = np.arange(i, min(i + batch_size, len(data.items)))
        x, y = data.batch(idx, None)
        logits = net(x.to(device)).float().cpu()
        losses.append(F.cross_entropy(logits, y, weight=weights, reduction="sum").item())
        p.append(p_spoof_from_logits(logits, spoof_index).numpy())
    scores = np.concatenate(p)
    eer = compute_eer(scores[~data.is_spoof], scores[data.is_spoof]).eer
    # weighted-mean normalisation, as F.cross_entropy's default reduction
    norm = float(weights[torch.from_numpy(data.targets)].sum())
    return eer, sum(losses) / norm


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


def checkpoint_path(out: Path) -> Path:
    return out.parent / RUNS_DIR_NAME / f"{out.stem}.last.pt"


def sidecar_path(out: Path) -> Path:
    return out.with_suffix(".json")


def train(cfg: TrainConfig, *, progress: bool = True, log=print) -> dict:
    """
    Train per ``cfg``; returns the sidecar dict of the best dev checkpoint.

    Writes cfg.out (state dict of the best dev epoch), its .json sidecar, and a resumable
    checkpoint under runs/ next to cfg.out, updated after every epoch.
    """
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown arch {cfg.arch!r}; known: {', '.join(ARCHS)}")
    torch.manual_seed(cfg.seed)
    device = default_device()
    arch = ARCHS[cfg.arch]
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt_path = checkpoint_path(out)

    train_entries = parse_protocol(cfg.protocol)
    dev_entries = parse_protocol(cfg.dev_protocol)
    dev_dir = cfg.dev_audio_dir or cfg.audio_dir
    log(f"train: {count_labels(train_entries)}  dev: {count_labels(dev_entries)}")
    t0 = time.perf_counter()
    train_data = load_train_data(
        cfg.arch, train_entries, cfg.audio_dir, crop=cfg.crop, progress=progress
    )
    dev_data = load_train_data(cfg.arch, dev_entries, dev_dir, progress=progress)
    log(f"data ready in {time.perf_counter() - t0:.0f} s on {device}")

    net = build_net(cfg.arch)
    init_sha = None
    if cfg.init:
        state = torch.load(cfg.init, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        init_sha = file_sha256(Path(cfg.init))
    net.to(device)
    apply_freeze(net, cfg.freeze)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_data.items) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=cfg.epochs * steps_per_epoch, eta_min=cfg.lr * cfg.lr_min_ratio
    )
    weights = class_weights(train_data)

    start_epoch, history = 0, []
    best = {"eer": math.inf, "loss": math.inf, "epoch": -1}
    if cfg.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck["arch"] != cfg.arch:
            raise ValueError(f"{ckpt_path} is a {ck['arch']} run, not {cfg.arch}")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, history, best = ck["epoch"], ck["history"], ck["best"]
        log(f"resumed from {ckpt_path} after epoch {start_epoch}")
    elif cfg.resume:
        log(f"--resume: no checkpoint at {ckpt_path}, starting afresh")

    sidecar = None
    for epoch in range(start_epoch, cfg.epochs):
        # per-epoch seeds: a resumed run draws the same crops and dropout masks
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        t_ep = time.perf_counter()
        train_loss = run_epoch(
            net, train_data, opt, sched,
            batch_size=cfg.batch_size, rng=rng, weights=weights, device=device,
            freeze=cfg.freeze, augment=cfg.augment, progress=progress,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
        )  # fmt: skip
        dev_eer, dev_loss = evaluate_crops(
            net, dev_data, spoof_index=arch.spoof_index, weights=weights, device=device
        )
        record = {
            "epoch": epoch + 1,
            "train_loss": round(train_loss, 6),
            "dev_eer": round(dev_eer, 6),
            "dev_loss": round(dev_loss, 6),
            "lr_end": opt.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t_ep, 1),
        }
        history.append(record)
        improved = (dev_eer, dev_loss) < (best["eer"], best["loss"])
        log(
            f"epoch {epoch + 1}/{cfg.epochs}  train loss {train_loss:.4f}  "
            f"dev EER {100 * dev_eer:.2f} %  dev loss {dev_loss:.4f}  "
            f"({record['seconds']:.0f} s){'  * best' if improved else ''}"
        )
        if improved:
            best = {"eer": dev_eer, "loss": dev_loss, "epoch": epoch + 1}
            state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            torch.save(state, out)
        sidecar = write_sidecar(
            cfg, out, best=best, history=history, train_entries=train_entries,
            dev_entries=dev_entries, init_sha=init_sha,
        )  # fmt: skip
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "arch": cfg.arch,
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch + 1,
                "history": history,
                "best": best,
            },
            tmp,
        )
        tmp.replace(ckpt_path)
    if sidecar is None:  # nothing left to train (resumed a finished run)
        sidecar = json.loads(sidecar_path(out).read_text())
    return sidecar


def write_sidecar(
    cfg: TrainConfig,
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
        "augment": "RawBoost-style FIR + coloured noise" if cfg.augment else "none",
        "freeze": list(cfg.freeze),
        "seed": cfg.seed,
        "dev_scoring": "first window of each file (tiled if short)",
    }
    sidecar = {
        "arch": cfg.arch,
        "config": arch.default_config,
        "spoof_index": arch.spoof_index,
        "n_samples": arch.input_length,  # sidecar name kept: existing sidecars use it
        "data": {
            "train_protocol": str(cfg.protocol),
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
        "history": history,
        "sha256": file_sha256(out) if out.exists() else None,
        "code_revision": code_revision(),
        "command": cfg.command,
        "device": str(default_device()),
        "torch": torch.__version__,
    }
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def command_line(args) -> str:
    """the train command as parsed (options given on the command line, canonical order)"""
    parts = ["python", "-m", "core", "train"]
    for name in ("arch", "protocol", "audio_dir", "dev_protocol", "dev_audio_dir", "out",
                 "epochs", "seed", "lr", "batch_size", "weight_decay", "crop", "init"):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            parts += ["--" + name.replace("_", "-"), str(value)]
    for prefix in args.freeze or ():
        parts += ["--freeze", prefix]
    for flag in ("augment", "resume"):
        if getattr(args, flag):
            parts.append("--" + flag)
    if args.threads:
        parts += ["--threads", str(args.threads)]
    return shlex.join(parts)


def cmd_train(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    d = ARCHS[args.arch].recipe
    cfg = TrainConfig(
        arch=args.arch,
        protocol=args.protocol,
        audio_dir=args.audio_dir,
        dev_protocol=args.dev_protocol,
        dev_audio_dir=args.dev_audio_dir,
        out=args.out,
        epochs=args.epochs or d.epochs,
        lr=args.lr or d.lr,
        batch_size=args.batch_size or d.batch_size,
        weight_decay=d.weight_decay if args.weight_decay is None else args.weight_decay,
        seed=args.seed,
        init=args.init,
        freeze=tuple(args.freeze or ()),
        augment=args.augment,
        crop=args.crop or d.crop,
        resume=args.resume,
        lr_min_ratio=d.lr_min_ratio,
        command=command_line(args),
    )
    try:
        sidecar = train(cfg, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"best dev EER {100 * sidecar['dev_eer']:.2f} % at epoch {sidecar['best_epoch']}; "
        f"wrote {cfg.out} (sha256 {sidecar['sha256']}) and {sidecar_path(Path(cfg.out))}"
    )
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("train", help="train or fine-tune a detector on a protocol")
    p.add_argument("--arch", required=True, choices=list(ARCHS))
    p.add_argument("--protocol", required=True, help="training protocol (ASVspoof 2019 LA)")
    p.add_argument("--audio-dir", required=True, help="directory of FILE_ID.flac")
    p.add_argument("--dev-protocol", required=True, help="dev protocol for model selection")
    p.add_argument("--dev-audio-dir", help="dev audio directory (default: --audio-dir)")
    p.add_argument("--out", required=True, help="weights/NAME.pt (state dict) + NAME.json")
    p.add_argument("--epochs", type=int, help="default per arch: ARCHS[arch].recipe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--init", metavar="PATH", help="start from this state dict (fine-tune)")
    p.add_argument(
        "--freeze", action="append", metavar="PREFIX",
        help="keep the modules under this name prefix fixed (repeatable), e.g. encoder.0",
    )  # fmt: skip
    p.add_argument("--augment", action="store_true", help="RawBoost-style noise/filtering")
    p.add_argument(
        "--crop", type=int, metavar="SAMPLES",
        help="training crop length (default: the model's input); dev and evaluate keep it",
    )  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from runs/NAME.last.pt")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)
