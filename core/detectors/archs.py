"""The architectures (ARCHS): what each network is and how it is fed and trained.

An ``Arch`` carries its builder, default config, front end (core.detectors.frontends), label
order, Grad-CAM layer, training recipe, and the public implementation whose parameter
names its port keeps. Models (weights of an architecture) are in core.detectors.registry, which
also re-exports everything here; add an architecture at run time with
``core.detectors.registry.register_arch``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch.nn as nn

from core.audio.features import CQT_N_SAMPLES
from core.detectors.frontends import CQTFrontEnd, FrontEnd, WaveformFrontEnd
from core.detectors.networks.aasist import (
    AASIST,
    AASIST_CONFIG,
    AASIST_L_CONFIG,
    AASISTConfig,
    sinc_band_edges,
)
from core.detectors.networks.inc_tssdnet import INC_TSSD_N_SAMPLES, IncTSSDNet
from core.detectors.networks.tssdnet import TSSD1D_N_SAMPLES, CQTResTSSDNet, ResTSSDNet


@dataclass(frozen=True)
class Recipe:
    """Training defaults of an architecture (`python -m core train` overrides each)."""

    lr: float
    batch_size: int
    weight_decay: float
    epochs: int
    lr_min_ratio: float = 0.01  # cosine decays to lr * this
    crop: int | None = None  # training crop in samples; None = the input length


@dataclass(frozen=True)
class Arch:
    build: Callable[[dict], nn.Module]  # config -> untrained network, logits (B, 2)
    front_end: FrontEnd  # input transform and its geometry; front_end.input_length
    spoof_index: int  # which of the two logits means spoof
    gradcam_layer: str  # dotted module path of the last convolutional block
    recipe: Recipe
    paper: str = ""
    default_config: dict = field(default_factory=dict)  # JSON-able, for build
    # Hz edges (n_rows, 2) of the rows of a 2-D Grad-CAM map on a waveform model, given
    # n_rows (AASIST: sinc bands); None when the rows are not frequency bands
    cam_bands: Callable[[int], np.ndarray] | None = None
    # the public implementation whose parameter names the port keeps, and (regex,
    # replacement) rules from other published names to ours; a checkpoint is renamed
    # before the strict load (core.detectors.checkpoints.normalise)
    reference: str = ""
    key_renames: tuple[tuple[str, str], ...] = ()
    # model calls the default SHAP explanation may make (exact when 2^F fits, see
    # core.explain.shap): chosen per model by `python -m benchmarks shapley` on dev clips
    # as the smallest budget with median Spearman >= 0.95, rel. L2 <= 0.1 and the top 3
    # stable on >= 80 % of clips; 256 = exact at the default 8 segments (Res-TSSDNet 1D
    # and AASIST needed it: sampling at 192 left the top 3 unstable on 3 of 5 clips)
    shap_budget: int = 256
    # LIME's default samples per feature (core.explain.lime), chosen the same way
    # (median Spearman >= 0.8 against exact Shapley values on dev)
    lime_samples_per_feature: int = 8
    # score in bfloat16 on a CPU with native support (core.detectors.precision): set where it was
    # measured to move P(spoof) by at most ~0.025 (AASIST: ~2x faster; AASIST-L moved a
    # window by up to 0.055 and the CQT model a file by 0.047, so they stay float32)
    cpu_bf16: bool = False
    # the module whose INPUT is the model's embedding of a window (the layer before the
    # classifier; core.judgement.familiarity measures how far a file's embedding lies from
    # training); None: the input of the network's last nn.Linear
    embedding_layer: str | None = None

    @property
    def input_length(self) -> int:
        """native input length in samples at 16 kHz"""
        return self.front_end.input_length


def _aasist(config: dict) -> nn.Module:
    return AASIST(AASISTConfig(**{k: _tuples(v) for k, v in config.items()}))


def _tuples(v):
    return tuple(_tuples(i) for i in v) if isinstance(v, (list, tuple)) else v


_AASIST_PAPER = (
    "Jung et al., AASIST: Audio Anti-Spoofing using Integrated "
    "Spectro-Temporal Graph Attention Networks, ICASSP 2022"
)
_TSSD_PAPER = "Hua, Teoh, Zhang, Towards End-to-End Synthetic Speech Detection, IEEE SPL 28, 2021"
_TSSD_CODE = "ghua-ac/end-to-end-synthetic-speech-detection models.py"
_AASIST_CODE = "clovaai/aasist @a04c986 models/AASIST.py Model"

# recipes: Res-TSSDNet, Hua et al. 2021 (Adam 1e-3); AASIST, Jung et al. 2022 (Adam
# 1e-4, weight decay 1e-4); epochs are this project's (see weights/MODEL_CARD.md)
ARCHS: dict[str, Arch] = {
    "tssd1d": Arch(
        build=lambda config: ResTSSDNet(),
        front_end=WaveformFrontEnd(TSSD1D_N_SAMPLES),
        spoof_index=1,
        gradcam_layer="RSM4",
        recipe=Recipe(lr=1e-3, batch_size=16, weight_decay=0.0, epochs=20),
        paper=f"{_TSSD_PAPER} (Res-TSSDNet)",
        reference=f"{_TSSD_CODE} SSDNet1D",
        embedding_layer="fc1",  # the 128 globally max-pooled channels
    ),
    "tssd2d": Arch(
        build=lambda config: CQTResTSSDNet(),
        front_end=CQTFrontEnd(CQT_N_SAMPLES),
        spoof_index=1,
        gradcam_layer="RSM4",
        recipe=Recipe(lr=1e-3, batch_size=16, weight_decay=0.0, epochs=10),
        paper="Hua, Teoh, Zhang, IEEE SPL 28, 2021 (2D Res-TSSDNet on CQT log power)",
        reference=f"{_TSSD_CODE} SSDNet2D",
        embedding_layer="fc1",  # the 128 globally averaged channels
        # dev, 8 features: paired sampling at 96 draws (~52 calls) already reaches
        # Spearman 0.98, rel. L2 0.02, top 3 stable on 4 of 5 clips; exact costs 5x more
        shap_budget=96,
        # dev: LIME at 3F + 2 = 26 samples already ranks with Spearman 0.91 (0.95 at 64)
        lime_samples_per_feature=3,
    ),
    "aasist": Arch(
        build=_aasist,
        front_end=WaveformFrontEnd(AASIST_CONFIG.nb_samp),
        spoof_index=0,  # published convention: index 1 = bona fide
        gradcam_layer="encoder.5",
        recipe=Recipe(lr=1e-4, batch_size=8, weight_decay=1e-4, epochs=5),
        paper=_AASIST_PAPER,
        default_config=asdict(AASIST_CONFIG),
        cam_bands=sinc_band_edges,
        reference=_AASIST_CODE,
        cpu_bf16=True,
        embedding_layer="out_layer",  # the 160-dim graph readout
    ),
    "aasist-l": Arch(
        build=_aasist,
        front_end=WaveformFrontEnd(AASIST_L_CONFIG.nb_samp),
        spoof_index=0,
        gradcam_layer="encoder.5",
        recipe=Recipe(lr=1e-4, batch_size=8, weight_decay=1e-4, epochs=10),
        paper=_AASIST_PAPER,
        default_config=asdict(AASIST_L_CONFIG),
        cam_bands=sinc_band_edges,
        reference=_AASIST_CODE,
        embedding_layer="out_layer",
    ),
    # no weights shipped: add the published checkpoint with `weights add --arch inc-tssdnet`
    "inc-tssdnet": Arch(
        build=lambda config: IncTSSDNet(),
        front_end=WaveformFrontEnd(INC_TSSD_N_SAMPLES),
        spoof_index=1,
        gradcam_layer="DCM4",
        recipe=Recipe(lr=1e-3, batch_size=16, weight_decay=0.0, epochs=20),
        paper=f"{_TSSD_PAPER} (Inc-TSSDNet)",
        reference=f"{_TSSD_CODE} DilatedNet",
    ),
}
