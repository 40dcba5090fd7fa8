"""AASIST forward speed against the published code's computation, at equal outputs.

    python -m benchmarks aasist [--model aasist] [--batch 1,8] [--repeats 5] [--threads N]

The published code's encoder block runs conv1 -> batch norm -> SELU -> conv2, adds the
identity (or a 1x3 conv of it) and max-pools (1, 3), every op out of place, on
channels-first tensors. ``published_like(net)`` builds exactly that computation over
the same weights (a copy of our network whose encoder blocks run those ops in that
order); ours runs channels-last, folds the batch norm into conv1 and works in place
when no autograd is needed (core.detectors.networks.aasist). Both are timed interleaved (so load on
the machine hits both alike), best of ``--repeats``, in inference mode, and the largest
difference between their logits is printed.
"""

from __future__ import annotations

import argparse
import copy
import time
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.detectors.registry import MODELS, load_model, weights_status


def _published_block(self, x: torch.Tensor) -> torch.Tensor:
    out = self.conv2(F.selu(self.bn2(self.conv1(x))))
    identity = self.conv_downsample(x) if self.downsample else x
    return F.max_pool2d(out + identity, (1, 3))


def _published_encode(self, x: torch.Tensor) -> torch.Tensor:
    x = self.conv_time(x.unsqueeze(1)).unsqueeze(1)
    x = F.max_pool2d(torch.abs(x), (3, 3))
    return self.encoder(F.selu(self.first_bn(x)))


def published_like(net: nn.Module) -> nn.Module:
    """a copy of an AASIST net that computes its forward the way the published code does"""
    ref = copy.deepcopy(net)
    ref.encoder.to(memory_format=torch.contiguous_format)
    for seq in ref.encoder:
        seq[0].forward = types.MethodType(_published_block, seq[0])
    ref.encode = types.MethodType(_published_encode, ref)
    return ref.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks aasist", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="aasist", help="an AASIST-family registry key")
    ap.add_argument("--batch", default="1,8", help="windows per forward pass, comma-separated")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = MODELS[args.model]
    if weights_status(spec) != "ok":
        print(f"{args.model}: weights not installed (python -m core models)")
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ours = load_model(spec, device=device).eval()
    ref = published_like(ours)
    print(f"{args.model} on {device} ({torch.get_num_threads()} threads), "
          f"{spec.input_length} samples per window, best of {args.repeats}")  # fmt: skip
    for b in [int(v) for v in args.batch.split(",") if v]:
        x = 0.1 * torch.randn(b, spec.input_length, generator=torch.Generator().manual_seed(b))
        x = x.to(device)
        best = {"ours": float("inf"), "published": float("inf")}
        with torch.inference_mode():
            diff = float((ours(x) - ref(x)).abs().max())
            for _ in range(args.repeats):
                for name, net in (("published", ref), ("ours", ours)):
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    net(x)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    best[name] = min(best[name], time.perf_counter() - t0)
        print(f"batch {b:>3}: published-style {1000 * best['published'] / b:7.1f} ms/window, "
              f"ours {1000 * best['ours'] / b:7.1f} ms/window, speed-up "
              f"{best['published'] / best['ours']:.2f}x, max |logit diff| {diff:.1e}")  # fmt: skip
    return 0
