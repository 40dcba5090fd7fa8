"""Which arithmetic scoring uses: float32, or bfloat16 where it is measured to be safe.

On a CPU with native bfloat16 (AVX512-BF16 or AMX: ``torch.ops.mkldnn``'s check), a
model whose ``Arch.cpu_bf16`` is set is scored under ``torch.autocast`` in bfloat16
(core.detectors.detect.Detector.logits: verdicts and the SHAP, LIME and deletion-curve model
calls): its convolutions, linear layers and matrix products run in bfloat16, element-wise
ops follow their inputs, and the logits come back as float32 (the softmax is float64).
Everything else stays float32: the front ends, the models without the flag, training,
and every gradient method (Grad-CAM, GradientSHAP call the network directly).

Measured against float32 on MiniSpoof dev and eval (540 files, 2 CPU cores, AMD EPYC
with AVX512-BF16, 2026-12-07; README, "Arithmetic"): AASIST scored about 1.9x faster
(dev 95 -> 49 s) with whole-file P(spoof) within 0.014 at the 99th percentile (0.024 at
most), no label flipped, the same dev EER and eval EER 24.6 -> 24.0 %. The CQT
Res-TSSDNet was only 1.5x faster and moved a file by up to 0.047 (7 eval labels
flipped), AASIST-L a window by up to 0.055, the 1-D Res-TSSDNet gained 1.15x: all three
stay float32.

``DEEPFAKE_PRECISION`` overrides: ``auto`` (default, the rule above), ``fp32`` (float32
everywhere, e.g. to reproduce a float32 number exactly), ``bf16`` (bfloat16 autocast for
every model on a CPU, even without native support: for measuring only). A GPU always
scores in float32.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

PRECISION_ENV = "DEEPFAKE_PRECISION"
CHOICES = ("auto", "fp32", "bf16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """whether oneDNN runs bfloat16 convolutions natively on this CPU"""
    try:
        mkldnn = torch.backends.mkldnn
        return bool(mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private check: absent in some builds
        return False


def requested() -> str:
    """the DEEPFAKE_PRECISION setting, checked: auto, fp32 or bf16"""
    value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{PRECISION_ENV}={value!r}: use one of {', '.join(CHOICES)}")
    return value


def scoring_precision(spec, device: torch.device | str) -> str:
    """
    "bf16" or "fp32" for scoring the model of ``spec`` (a core.detectors.registry.ModelSpec) on
    ``device``, under the rule in this module's doc; a hand-made spec without a
    registered architecture scores in float32
    """
    choice = requested()
    if torch.device(device).type != "cpu" or choice == "fp32":
        return "fp32"
    if choice == "bf16":
        return "bf16"
    allowed = getattr(getattr(spec, "architecture", None), "cpu_bf16", False)
    return "bf16" if allowed and cpu_has_native_bf16() else "fp32"


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """the context scoring runs in: bfloat16 autocast on the CPU, or nothing"""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(spec, device: torch.device | str) -> str:
    """the scoring arithmetic in words, for the Models page: "bfloat16" or "float32" (or
    what is wrong with DEEPFAKE_PRECISION)"""
    try:
        return {"bf16": "bfloat16", "fp32": "float32"}[scoring_precision(spec, device)]
    except ValueError as e:
        return str(e)
