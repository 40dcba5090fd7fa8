"""`train`: train or fine-tune a detector on ASVspoof-format protocols (core.training.train);
``--register KEY`` adds the best checkpoint as a user model (core.detectors.user_weights)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import torch

from core.cli.common import one_line, print_err
from core.detectors.registry import ARCHS, WeightsError
from core.detectors.user_weights import add_weights, check_key
from core.training.train import TrainConfig, sidecar_path, train


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
    for protocol, audio_dir in args.extra or ():
        parts += ["--extra", protocol, audio_dir]
    for protocol, audio_dir in args.matched_dev or ():
        parts += ["--matched-dev", protocol, audio_dir]
    if args.dev_degrade:
        parts += ["--dev-degrade", ",".join(args.dev_degrade)]
    for flag in ("augment", "resume"):
        if getattr(args, flag):
            parts.append("--" + flag)
    if args.threads:
        parts += ["--threads", str(args.threads)]
    return shlex.join(parts)


def cmd_train(args) -> int:
    if args.register:
        try:  # before training, not after hours of it
            check_key(args.register)
        except WeightsError as e:
            print_err(f"--register: {one_line(e)}")
            return 1
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
        extra=tuple(tuple(pair) for pair in args.extra or ()),
        matched_dev=tuple(tuple(pair) for pair in args.matched_dev or ()),
        crop=args.crop or d.crop,
        dev_degrade=tuple(args.dev_degrade or ()),
        resume=args.resume,
        lr_min_ratio=d.lr_min_ratio,
        command=command_line(args),
    )
    try:
        sidecar = train(cfg, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    chosen = ""
    if sidecar["data"].get("matched_dev"):
        chosen = (f" (chosen by the mean of clean + degraded dev and the matched dev EER, "
                  f"{100 * sidecar['dev_select']:.2f} %)")  # fmt: skip
    elif sidecar.get("dev_degrade"):
        chosen = f" (chosen by mean clean + degraded dev EER {100 * sidecar['dev_select']:.2f} %)"
    print(
        f"best dev EER {100 * sidecar['dev_eer']:.2f} % at epoch {sidecar['best_epoch']}{chosen}; "
        f"wrote {cfg.out} (sha256 {sidecar['sha256']}) and {sidecar_path(Path(cfg.out))}"
    )
    if args.register:
        try:
            spec = add_weights(args.register, arch=cfg.arch, file=Path(cfg.out))
        except WeightsError as e:
            print_err(f"--register: {one_line(e)}; the weights stay at {cfg.out}")
            return 1
        print(f"registered as model {spec.key}: {spec.provenance}")
    return 0


def conditions(text: str) -> list[str]:
    """argparse type of --dev-degrade: a list of core.training.augment conditions, clean excluded"""
    import argparse

    from core.training.robustness import parse_conditions

    try:
        return [c for c in parse_conditions(text) if c != "clean"]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


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
    p.add_argument(
        "--augment", action="store_true",
        help="on-the-fly augmentation of every crop: convolutive, impulsive and coloured "
        "noise, codecs, telephone band, gain (core.training.augment)",
    )  # fmt: skip
    p.add_argument(
        "--extra", nargs=2, action="append", metavar=("PROTOCOL", "AUDIO_DIR"),
        help="more training data, e.g. core.training.vocode output (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--matched-dev", nargs=2, action="append", metavar=("PROTOCOL", "AUDIO_DIR"),
        help="another dev set whose first column is the source (DemoSpoof): its matched "
        "EER (per source, mean over sources) joins the epoch choice, half and half (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--crop", type=int, metavar="SAMPLES",
        help="training crop length (default: the model's input); dev and evaluate keep it",
    )  # fmt: skip
    p.add_argument(
        "--dev-degrade", type=conditions, metavar="CONDITIONS",
        help="also score dev under these conditions (as evaluate --degrade, e.g. "
        "noise:15db,mp3:32k,telephone) and keep the epoch with the lowest mean dev EER "
        "over clean and degraded dev",
    )  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from runs/NAME.last.pt")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--register", metavar="KEY",
        help="when done, add the best checkpoint as user model KEY (`weights add`), "
        "with the sidecar as its provenance and card",
    )  # fmt: skip
    p.set_defaults(func=cmd_train)
