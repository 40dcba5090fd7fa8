"""Grad-CAM (Selvaraju et al., ICCV 2017, arXiv 1610.02391) with Captum's LayerGradCam.

The layer is each model's last convolutional block (``spec.gradcam_layer``): RSM4 of the
Res-TSSDNets, encoder.5 (the last residual block) of AASIST. Channel weights are the
spatial mean of the gradients of the score, the map is the weighted channel sum, ReLU'd,
and upsampled to the input grid with LayerAttribution.interpolate.

The score is the target's log-odds, logit[t] - logit[1 - t]: the pre-softmax quantity
that decides a two-class softmax (a single logit also moves with changes that cancel
in the softmax).

Maps: Res-TSSDNet 1D (1, 128, T/256) -> time, upsampled linearly to every sample;
CQT (1, 128, 27, 25) -> time x frequency, upsampled bilinearly to (432 bins, frames);
AASIST (1, C, 23, T') is spectral x temporal: its 23 rows are groups of three mel-spaced
sinc bands, so the dense output (per sample, as for every waveform model) is the mean
over rows, and the per-band profile (mean over time) goes to quality["band_cam"] with
the band edges in quality["band_hz"]. Feature values are the map's mean over each
feature.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam

from ..audio import SAMPLE_RATE
from .base import Explainer, MethodResult
from .window import Window, log_odds


def layer_cam(window: Window) -> torch.Tensor:
    """
    Grad-CAM at the layer's resolution (ReLU applied).

    Returns torch.Tensor, shape = (1, 1, T') or (1, 1, H', W'), detached, on CPU
    """
    net = window.net
    layer = net.get_submodule(window.spec.gradcam_layer)
    x = window.x.to(window.detector.device)
    cam = LayerGradCam(lambda inp: log_odds(net(inp)), layer).attribute(
        x, target=window.target, relu_attributions=True
    )
    window.n_evals += 1
    return cam.detach().float().cpu()


def upsample(cam: torch.Tensor, window: Window) -> np.ndarray:
    """layer map -> (n_samples,) for waveform models, (bins, frames) for CQT"""
    if cam.dim() == 3:  # (1, 1, T'): time only
        return LayerAttribution.interpolate(cam, window.x.shape[-1], "linear")[
            0, 0
        ].numpy()
    if window.spec.frontend == "cqt":  # (1, 1, H', W') -> (1, 1, bins, frames)
        return LayerAttribution.interpolate(
            cam, tuple(window.x.shape[-2:]), "bilinear"
        )[0, 0].numpy()
    # AASIST: (1, 1, 23, T') spectral x temporal: time to every sample, rows averaged
    up = LayerAttribution.interpolate(
        cam, (cam.shape[-2], window.x.shape[-1]), "bilinear"
    )
    return up[0, 0].mean(dim=0).numpy()


def sinc_band_edges(n_rows: int, n_filters: int = 70) -> np.ndarray:
    """
    Hz edges of AASIST's spectral rows: the sinc front end has n_filters mel-spaced
    bands over 0-8 kHz, max-pooled in threes -> (n_rows, 2)
    """
    mel_max = 2595 * np.log10(1 + (SAMPLE_RATE / 2) / 700)
    edges = 700 * (10 ** (np.linspace(0, mel_max, n_filters + 1) / 2595) - 1)
    group = n_filters // n_rows
    return np.stack(
        [edges[: n_rows * group : group], edges[group : n_rows * group + 1 : group]], 1
    )


def gradcam(
    window: Window, *, n_samples=None, seed: int = 0, progress=None
) -> MethodResult:
    cam = layer_cam(window)
    dense = upsample(cam, window).astype(np.float32)
    quality = {"layer": window.spec.gradcam_layer, "layer_shape": list(cam.shape[2:])}
    if cam.dim() == 4 and window.spec.frontend != "cqt":
        quality["band_hz"] = sinc_band_edges(cam.shape[-2]).round(1).tolist()
        quality["band_cam"] = cam[0, 0].mean(dim=-1).tolist()
    return MethodResult(
        values=window.region_mean(dense), dense=dense, n_evals=1, quality=quality
    )


EXPLAINER = Explainer(
    name="gradcam",
    version="1",
    fn=gradcam,
    description="Grad-CAM on the last convolutional block (Captum LayerGradCam), ReLU, "
    "upsampled to the input grid; score = target log-odds",
)
