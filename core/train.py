"""Training (`python -m core train`, CLI in core.cli.train): train (or fine-tune) a detector on an ASVspoof-style protocol.

Everything architecture-specific comes from ``ARCHS[arch]`` (core.registry): the network
(``build(default_config)``), the label order, the front end (what a training item is,
how it is cropped and cached) and the recipe defaults (``recipe``), each overridable on
the command line. A runtime-registered architecture trains the same way.

Recipe:

* every file is decoded once and kept in memory; each epoch draws one random crop per
  file at the model's input length, tiling short files from a random phase (both papers
  tile instead of zero-padding);
* the CQT model's spectrogram is computed once per whole file (cached under cache/cqt/)
  and cropped in the spectrogram domain; with --augment every crop is a waveform,
  augmented (core.augment: channel, impulsive and coloured noise, codecs, telephone
  band, gain, each with its probability, seeded by seed/epoch/file), then transformed;
* ``--extra PROTOCOL DIR`` adds training data (e.g. core.vocode copy-synthesis);
* class imbalance: cross-entropy weighted by inverse class frequency;
* Adam with cosine decay over all steps (Res-TSSDNet: Hua et al. 2021 use Adam at 1e-3;
  AASIST: Jung et al. 2022 use Adam 1e-4, weight decay 1e-4, cosine annealing);
* labels in each architecture's own order (``ARCHS[arch].spoof_index``);
* after each epoch: EER on the dev protocol from one deterministic crop per file (the
  first window, tiled), and a resumable checkpoint (weights/runs/NAME.last.pt);
* the best dev epoch (lowest EER, ties broken by dev loss) is written as a plain state
  dict to --out, plus a JSON sidecar with the data, recipe, dev EER, SHA-256, code
  revision and the exact command;
* ``--dev-degrade noise:15db,mp3:32k,telephone`` scores dev also under those conditions
  (each file degraded once, seeded by its id as ``evaluate --degrade`` does) and picks
  the epoch by the mean EER over clean and degraded dev: a dev-only rule that rewards
  robustness, since clean in-domain dev favours models that break on other channels.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import AugmentConfig, Augmenter
from .dev_selection import load_degraded_dev, selection_score
from .checkpoints import fit, normalise, read_checkpoint
from .data import (
    ProtocolEntry,
    TrainData,
    class_weights,
    count_labels,
    load_waveforms,
    parse_protocol,
)
from .detect import p_spoof_from_logits
from .metrics import compute_eer
from .registry import ARCHS, PROJECT_ROOT, default_device, file_sha256
from .train_record import sidecar_path, write_sidecar

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
    augment: bool = False  # on-the-fly core.augment.Augmenter on every training crop
    extra: tuple[tuple[str, str], ...] = ()  # more (protocol, audio dir) training data
    crop: int | None = None  # training crop in samples (default: the model's input length)
    # degraded copies of dev (core.augment conditions, seeded per file): the epoch is
    # chosen by the mean dev EER over clean and these, not by clean dev alone
    dev_degrade: tuple[str, ...] = ()
    resume: bool = False
    lr_min_ratio: float = 0.01
    command: str = ""


def load_train_data(
    arch: str,
    groups: list[tuple[list[ProtocolEntry], str | Path]],
    *,
    crop: int | None = None,
    raw: bool = False,
    progress: bool = False,
) -> TrainData:
    """
    groups : (entries, audio dir) pairs, concatenated in order
    crop : input length in samples (default: the model's); dev data keeps the default
    raw : keep waveforms even for a feature front end (on-the-fly augmentation computes
        the features per crop instead of cropping cached ones)
    """
    a = ARCHS[arch]
    fe = a.front_end
    entries = [e for group, _ in groups for e in group]
    items: list[np.ndarray] = []
    for group, audio_dir in groups:
        if raw and not fe.raw_waveform:
            items += load_waveforms(group, audio_dir, progress=progress)
        else:
            items += fe.load_items(group, audio_dir, cache_dir=CACHE_DIR, progress=progress)
    is_spoof = np.array([e.is_spoof for e in entries], dtype=bool)
    targets = np.where(is_spoof, a.spoof_index, 1 - a.spoof_index).astype(np.int64)
    length = int(crop or fe.input_length) if raw else fe.crop_length(crop)
    return TrainData(
        items=items, targets=targets, length=length, is_spoof=is_spoof, front_end=fe,
        raw=raw,
    )  # fmt: skip


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
    augment: Augmenter | None = None,
    epoch: int = 0,
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
        x, y = data.batch(idx, rng, augment=augment, epoch=epoch)
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


def checkpoint_path(out: Path) -> Path:
    return out.parent / RUNS_DIR_NAME / f"{out.stem}.last.pt"


def epoch_path(out: Path, epoch: int) -> Path:
    """the state dict a run had after ``epoch`` (runs/NAME.epochNN.pt)"""
    return out.parent / RUNS_DIR_NAME / f"{out.stem}.epoch{epoch:02d}.pt"


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

    groups = [(parse_protocol(p), d) for p, d in ((cfg.protocol, cfg.audio_dir), *cfg.extra)]
    train_entries = [e for group, _ in groups for e in group]
    from .vocode import SELECTION_SYSTEMS

    held_out = sorted({e.system for e in train_entries} & SELECTION_SYSTEMS.keys())
    if held_out:
        raise ValueError(
            f"training data holds {', '.join(held_out)}: a selection-only system (its "
            "spoofs stand in for unseen attacks when choosing models), never for training"
        )
    dev_entries = parse_protocol(cfg.dev_protocol)
    dev_dir = cfg.dev_audio_dir or cfg.audio_dir
    log(f"train: {count_labels(train_entries)}  dev: {count_labels(dev_entries)}")
    t0 = time.perf_counter()
    train_data = load_train_data(
        cfg.arch, groups, crop=cfg.crop, raw=cfg.augment, progress=progress
    )
    dev_data = load_train_data(cfg.arch, [(dev_entries, dev_dir)], progress=progress)
    dev_degraded = load_degraded_dev(
        cfg.arch, dev_entries, dev_dir, cfg.dev_degrade, progress=progress
    )
    augmenter = Augmenter(AugmentConfig(), seed=cfg.seed) if cfg.augment else None
    log(f"data ready in {time.perf_counter() - t0:.0f} s on {device}")

    net = build_net(cfg.arch)
    init_sha = None
    if cfg.init:
        # the formats `weights add` reads: wrappers, DataParallel prefixes, renames
        state = normalise(read_checkpoint(Path(cfg.init)), renames=arch.key_renames,
                          source=cfg.init)  # fmt: skip
        net.load_state_dict(fit(net, state, arch=cfg.arch, source=cfg.init), strict=True)
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
    best = {"eer": math.inf, "loss": math.inf, "epoch": -1, "select": math.inf}
    if cfg.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck["arch"] != cfg.arch:
            raise ValueError(f"{ckpt_path} is a {ck['arch']} run, not {cfg.arch}")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, history, best = ck["epoch"], ck["history"], ck["best"]
        best.setdefault("select", best["eer"])  # checkpoints from before --dev-degrade
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
            freeze=cfg.freeze, augment=augmenter, epoch=epoch, progress=progress,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
        )  # fmt: skip
        dev_eer, dev_loss = evaluate_crops(
            net, dev_data, spoof_index=arch.spoof_index, weights=weights, device=device
        )
        degraded = {
            cond: evaluate_crops(
                net, data, spoof_index=arch.spoof_index, weights=weights, device=device
            )[0]
            for cond, data in dev_degraded.items()
        }
        select = selection_score(dev_eer, degraded)
        record = {
            "epoch": epoch + 1,
            "train_loss": round(train_loss, 6),
            "dev_eer": round(dev_eer, 6),
            "dev_loss": round(dev_loss, 6),
            "lr_end": opt.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t_ep, 1),
        }
        if degraded:
            record["dev_eer_degraded"] = {c: round(v, 6) for c, v in degraded.items()}
            record["dev_select"] = round(select, 6)
        history.append(record)
        improved = (select, dev_loss) < (best["select"], best["loss"])
        shown = "".join(f"  {c} {100 * v:.2f} %" for c, v in degraded.items())
        if degraded:
            shown += f"  mean {100 * select:.2f} %"
        log(
            f"epoch {epoch + 1}/{cfg.epochs}  train loss {train_loss:.4f}  "
            f"dev EER {100 * dev_eer:.2f} %{shown}  dev loss {dev_loss:.4f}  "
            f"({record['seconds']:.0f} s){'  * best' if improved else ''}"
        )
        if improved:
            best = {"eer": dev_eer, "loss": dev_loss, "epoch": epoch + 1, "select": select}
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
        # every epoch's weights too, for curves measured afterwards (never for choosing)
        torch.save(net.state_dict(), epoch_path(out, epoch + 1))
    if sidecar is None:  # nothing left to train (resumed a finished run)
        sidecar = json.loads(sidecar_path(out).read_text())
    return sidecar
