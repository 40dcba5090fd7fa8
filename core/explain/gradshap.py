"""Dense expected-gradients map with Captum's GradientShap (Lundberg & Lee 2017;
Erion et al., Nature MI 2021, arXiv 1906.10670).

Each of the n_samples draws takes a reference input drawn from the set (core.explain.
reference: real-speech windows by default), a random point on the straight line from it
to the input, the gradient of P(target) there, times (input - reference); the map is
their mean, on the input grid: (input_length,) for waveform models, (bins, frames) for
the CQT model. Its total approximates P(target | x) - mean P(target | reference), the
completeness gap is reported as for SHAP, and
the feature values are the map's sums over each feature. Draws are made in chunks sized
to the memory budget (backward keeps every activation) under a seeded forked generator.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import GradientShap

from core.explain.base import Explainer, MethodResult
from core.explain.shap import completeness
from core.explain.window import Window, batch_size, seeded

BACKWARD_FACTOR = 3.0  # activations kept for backward + their gradients, per input


def default_n_samples(window) -> int:
    return 16


def gradient_shap(
    window: Window, *, n_samples: int, seed: int = 0, progress=None
) -> MethodResult:
    net, device = window.net, window.detector.device
    x, base = window.x.to(device), window.baseline.to(device)
    chunk = batch_size(window.activation_bytes, device, factor=BACKWARD_FACTOR)
    explainer = GradientShap(lambda inp: torch.softmax(net(inp), dim=-1))
    total = torch.zeros_like(window.x, dtype=torch.float64)
    done = 0
    with seeded(seed):
        while done < n_samples:
            n = min(chunk, n_samples - done)
            attr = explainer.attribute(
                x, baselines=base, n_samples=n, target=window.target
            )
            total += attr.detach().double().cpu() * n
            done += n
            window.n_evals += n
            if window.on_evals is not None:
                window.on_evals(n)
    # (1, *input_shape) -> the input grid: (input_length,) or (bins, frames)
    dense = window.spec.front_end.to_grid(total / n_samples)
    dense = dense.numpy().astype(np.float32)
    values = window.region_sum(dense)
    quality = completeness(values, window.p_target, window.p_reference_target)
    quality.update(baseline=window.baseline_name, chunk=chunk)
    return MethodResult(values=values, dense=dense, n_evals=n_samples, quality=quality)


EXPLAINER = Explainer(
    name="gradshap",
    version="2",  # 2: the reference set (real speech by default) as baselines
    fn=gradient_shap,
    default_n_samples=default_n_samples,
    description="expected gradients of P(target) from the baseline, Captum "
    "GradientShap",
    label="Expected gradients (GradientSHAP)",
    cost="Sixteen forward and backward passes, then the deletion curves (each coalition "
    "once per reference window).",
)
