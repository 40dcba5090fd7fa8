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

Agreement with exact Shapley values (``python -m benchmarks shapley``, 8 features, 5
MiniSpoof dev clips, median Spearman of the feature means; 6 eval clips in brackets):
Res-TSSDNet 1D 0.88 [0.93] at RSM4 (0.74 [0.69] at RSM3, 0.83 [0.92] without the ReLU);
AASIST 0.26 [0.55] at encoder.5; the CQT model 0.05 [0.17] at RSM4 and 0.05-0.19
[0.23-0.41] at RSM3, with or without the ReLU. So neither the layer nor the sign explains the CQT model's
disagreement: its last blocks see 27 x 25 cells, each with a receptive field spanning
most of the 432 bins, and the channel-mean gradient weights tell where the features that
raise the score are large, not what replacing a patch by the window's mean spectrum
(the masking game SHAP and LIME play) changes. On the CQT model and AASIST (0.26 [0.55])
Grad-CAM is shown with that caveat (``caveat``) and should be read as "where the net's last-block features were
active", not as a ranking of patches.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerGradCam

from core.explain.base import Explainer, MethodResult
from core.explain.window import Window, log_odds


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


# median Spearman of Grad-CAM's feature means against exact Shapley values of the
# shipped weights, 8 features, (5 dev clips, 6 eval clips): python -m benchmarks shapley
AGREEMENT = {"tssd1d": (0.88, 0.93), "tssd2d": (0.05, 0.17), "aasist": (0.26, 0.55)}
AGREEMENT_OK = 0.8


def caveat(spec) -> str | None:
    """the measured disagreement with Shapley values where it is large"""
    measured = AGREEMENT.get(getattr(spec, "arch", ""))
    if measured is None or measured[0] >= AGREEMENT_OK:
        return None
    dev, ev = measured
    return (
        f"On this architecture Grad-CAM does not rank segments the way SHAP does "
        f"(measured with its shipped weights: median Spearman {dev:.2f} on MiniSpoof dev "
        f"clips and {ev:.2f} on eval clips against exact Shapley values; another layer "
        f"or sign does not fix it): read it as "
        f"where the last block's features were active, and use SHAP for what the verdict "
        f"depends on."
    )


EXPLAINER = Explainer(
    name="gradcam",
    version="2",  # 2: deletion curves against the reference (real speech by default)
    fn=gradcam,
    description="Grad-CAM on the last convolutional block (Captum LayerGradCam), ReLU, "
    "upsampled to the input grid; score = target log-odds",
    label="Grad-CAM",
    cost="One forward and one backward pass for the map, then the deletion curves: "
    "(1 + 3 random orders) x (features - 1) coalitions, each once per reference "
    "window, which cost far more than the map.",
    caveat=caveat,
    relative=False,  # an activation map: it never compares the window with the reference
)
