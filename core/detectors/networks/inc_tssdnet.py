"""Inc-TSSDNet: the Inception-style time-domain synthetic speech detection net.

G. Hua, A. B. J. Teoh, H. Zhang, "Towards End-to-End Synthetic Speech Detection",
IEEE Signal Processing Letters 28, 2021 (arXiv 2106.06341), the paper of Res-TSSDNet.
Same stem, pooling and head as Res-TSSDNet 1D (core.detectors.networks.tssdnet); each ResNet-style
stage is replaced by an Inception-style one: four parallel 3-tap convolutions with
dilations 1, 2, 4 and 8, each giving a quarter of the channels, concatenated.

The attribute names are those of the authors' public implementation ("DilatedNet" and
"DilatedCovModule" in ghua-ac/end-to-end-synthetic-speech-detection, models.py: ``conv1``,
``bn1``, ``DCM1``-``DCM4`` with ``cv1/cv2/cv4/cv8`` and ``bn1/bn2/bn4/bn8``, ``fc1``,
``fc2``, ``out``), so its published checkpoint loads with strict=True. Input: 6 s of
16 kHz waveform; output index 1 is spoof (the reference code encodes bona fide as 0).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

INC_TSSD_N_SAMPLES = 96_000  # 6 s at 16 kHz, as Res-TSSDNet 1D
DILATIONS = (1, 2, 4, 8)  # one branch each; the names cv{d} / bn{d} carry the dilation


class DilatedStage(nn.Module):
    """
    Inception-style stage: parallel dilated 3-tap convolutions, batch norm and ReLU
    each, concatenated on the channel axis. (B, c_in, T) -> (B, c_out, T)
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        assert c_out % len(DILATIONS) == 0, f"c_out {c_out} must split into {len(DILATIONS)}"
        c_branch = c_out // len(DILATIONS)
        for d in DILATIONS:
            conv = nn.Conv1d(c_in, c_branch, kernel_size=3, dilation=d, padding=d, bias=False)
            setattr(self, f"cv{d}", conv)
        for d in DILATIONS:
            setattr(self, f"bn{d}", nn.BatchNorm1d(c_branch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            F.relu(getattr(self, f"bn{d}")(getattr(self, f"cv{d}")(x))) for d in DILATIONS
        ]
        return torch.cat(branches, dim=1)


class IncTSSDNet(nn.Module):
    """
    Inc-TSSDNet on the raw waveform, 92,658 parameters (the paper: 0.09 M).

    x : (B, n_samples) or (B, 1, n_samples) -> logits (B, 2), index 1 = spoof
    """

    pool = 4  # max-pool after the first conv and after stages 1-3

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 16, kernel_size=7, padding=3, bias=False)
        self.bn1 = nn.BatchNorm1d(16)
        self.DCM1 = DilatedStage(16, 32)
        self.DCM2 = DilatedStage(32, 64)
        self.DCM3 = DilatedStage(64, 128)
        self.DCM4 = DilatedStage(128, 128)
        self.fc1 = nn.Linear(128, 64)
        self.fc2 = nn.Linear(64, 32)
        self.out = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)  # (B, 1, T)
        x = F.max_pool1d(F.relu(self.bn1(self.conv1(x))), self.pool)
        x = F.max_pool1d(self.DCM1(x), self.pool)
        x = F.max_pool1d(self.DCM2(x), self.pool)
        x = F.max_pool1d(self.DCM3(x), self.pool)
        x = self.DCM4(x)  # (B, 128, T/256): the Grad-CAM layer
        # global max-pool over time (the reference pools 375 frames: 6 s exactly)
        x = torch.amax(x, dim=-1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.out(x)
