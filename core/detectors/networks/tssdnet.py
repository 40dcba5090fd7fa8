"""Res-TSSDNet (1D, raw waveform) and 2D Res-TSSDNet (CQT log power).

G. Hua, A. B. J. Teoh, H. Zhang, "Towards End-to-End Synthetic Speech Detection",
IEEE Signal Processing Letters 28, 2021 (arXiv 2106.06341). Output index 1 is spoof.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

TSSD1D_N_SAMPLES = 96_000  # 6 s at 16 kHz, the paper's input length


class ResidualStage(nn.Module):
    """ResNet-style module: three 3-tap convolutions and a 1x1 shortcut ("nin")."""

    def __init__(self, c_in: int, c_out: int, dims: int = 1):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        bn = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.conv1 = conv(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.conv2 = conv(c_out, c_out, kernel_size=3, padding=1, bias=False)
        self.conv3 = conv(c_out, c_out, kernel_size=3, padding=1, bias=False)
        self.bn1 = bn(c_out)
        self.bn2 = bn(c_out)
        self.bn3 = bn(c_out)
        self.nin = conv(c_in, c_out, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.conv3(y)
        return F.relu(self.bn3(self.nin(x) + y))


class _TSSDNet(nn.Module):
    dims = 1

    def __init__(self):
        super().__init__()
        conv = nn.Conv1d if self.dims == 1 else nn.Conv2d
        bn = nn.BatchNorm1d if self.dims == 1 else nn.BatchNorm2d
        self.conv1 = conv(1, 16, kernel_size=7, padding=3, bias=False)
        self.bn1 = bn(16)
        self.RSM1 = ResidualStage(16, 32, self.dims)
        self.RSM2 = ResidualStage(32, 64, self.dims)
        self.RSM3 = ResidualStage(64, 128, self.dims)
        self.RSM4 = ResidualStage(128, 128, self.dims)
        self.fc1 = nn.Linear(128, 64)
        self.fc2 = nn.Linear(64, 32)
        self.out = nn.Linear(32, 2)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.out(x)


class ResTSSDNet(_TSSDNet):
    """
    Res-TSSDNet on the raw waveform, ~0.35 M parameters.

    x : (B, n_samples) or (B, 1, n_samples) -> logits (B, 2), index 1 = spoof
    """

    dims = 1
    pool = 4  # max-pool after the first conv and after stages 1-3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        x = F.max_pool1d(F.relu(self.bn1(self.conv1(x))), self.pool)
        x = F.max_pool1d(self.RSM1(x), self.pool)
        x = F.max_pool1d(self.RSM2(x), self.pool)
        x = F.max_pool1d(self.RSM3(x), self.pool)
        x = self.RSM4(x)  # (B, 128, T/256): the Grad-CAM layer
        x = torch.amax(x, dim=-1)  # global max-pool over time, as the paper
        return self._head(x)


class CQTResTSSDNet(_TSSDNet):
    """
    2D Res-TSSDNet on a CQT log-power spectrogram, ~0.97 M parameters.

    x : (B, 1, 432, n_frames) dB -> logits (B, 2), index 1 = spoof
    """

    dims = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(self.RSM1(x), 2)
        x = F.max_pool2d(self.RSM2(x), 2)
        x = F.max_pool2d(self.RSM3(x), 2)
        x = self.RSM4(x)  # (B, 128, 27, 25) for 432 x 400: the Grad-CAM layer
        x = x.mean(dim=(-2, -1))  # global average pool, as the paper
        return self._head(x)
