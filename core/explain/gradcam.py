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
feature. The upsampling belongs to the front end (``spec.front_end.cam_to_grid``), the
band edges to the architecture (``spec.cam_bands``, None when rows are not bands).
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerGradCam

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
    """layer map -> the input grid: (input_length,) waveform, (bins, frames) CQT"""
    return window.spec.front_end.cam_to_grid(cam)


def gradcam(
    window: Window, *, n_samples=None, seed: int = 0, progress=None
) -> MethodResult:
    cam = layer_cam(window)
    dense = upsample(cam, window).astype(np.float32)
    quality = {"layer": window.spec.gradcam_layer, "layer_shape": list(cam.shape[2:])}
    bands = window.spec.cam_bands
    if cam.dim() == 4 and bands is not None:
        quality["band_hz"] = bands(cam.shape[-2]).round(1).tolist()
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
    label="Grad-CAM",
    cost="One forward and one backward pass: about a second.",
)
