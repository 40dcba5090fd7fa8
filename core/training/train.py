"""Training (`python -m core train`, CLI in core.cli.train): train or fine-tune a detector.

Everything architecture-specific comes from ``ARCHS[arch]`` (core.detectors.registry): the network
(``build(default_config)``), the label order, the front end (what a training item is,
how it is cropped and cached) and the recipe defaults (``recipe``), each overridable on
the command line. A runtime-registered architecture trains the same way.

Recipe:

* every file is decoded once and kept in memory; each epoch draws one random crop per
  file at the model's input length, tiling short files from a random phase (both papers
  tile instead of zero-padding);
* the CQT model's spectrogram is computed once per whole file (cached under cache/cqt/)
  and cropped in the spectrogram domain; with --augment every crop is a waveform,
  augmented (core.training.augment: channel, impulsive and coloured noise, codecs, telephone
  band, gain, each with its probability, seeded by seed/epoch/file), then transformed;
* ``--extra PROTOCOL DIR`` adds training data (e.g. core.training.vocode copy-synthesis);
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
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.audio.protocol import (
    count_labels,
    parse_protocol,
)
from core.detectors.checkpoints import fit, normalise, read_checkpoint
from core.detectors.registry import ARCHS, default_device, file_sha256
from core.training.augment import AugmentConfig, Augmenter
from core.training.data import CACHE_DIR, TrainData, class_weights, load_train_data  # noqa: F401
from core.training.dev_selection import (
    evaluate_crops,
    evaluate_matched,
    load_degraded_dev,
    load_matched_dev,
    selection_score,
)
from core.training.record import TrainConfig, sidecar_path, write_sidecar

RUNS_DIR_NAME = "runs"  # next to --out; git-ignored under weights/


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
    from core.training.vocode import SELECTION_SYSTEMS

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
    matched_dev = {
        str(p): load_matched_dev(cfg.arch, parse_protocol(p), d, progress=progress)
        for p, d in cfg.matched_dev
    }
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
        matched = {
            name: evaluate_matched(net, data, sources, spoof_index=arch.spoof_index, device=device)
            for name, (data, sources) in matched_dev.items()
        }
        select = selection_score(dev_eer, degraded, matched)
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
        if matched:
            record["dev_matched_eer"] = {n: round(v, 6) for n, v in matched.items()}
        if degraded or matched:
            record["dev_select"] = round(select, 6)
        history.append(record)
        improved = (select, dev_loss) < (best["select"], best["loss"])
        shown = "".join(f"  {c} {100 * v:.2f} %" for c, v in degraded.items())
        shown += "".join(f"  matched {Path(n).stem} {100 * v:.2f} %" for n, v in matched.items())
        if degraded or matched:
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
            dev_entries=dev_entries, init_sha=init_sha, train_groups=groups,
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
