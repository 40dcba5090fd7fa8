"""AASIST and AASIST-L (Jung et al., ICASSP 2022, arXiv 2110.01200).

State-dict compatible with the published checkpoints of clovaai/aasist, so they load
with strict=True. Changes from the published code that do not touch the weights:
every activation, dropout and residual sum is out-of-place when autograd is on (in-place
ops break Captum's backward hooks; without autograd the encoder folds batch norm into
the convolution before it and works in place), the (1, 3) max-pools and, without
autograd, the (3, 3) one are maxima of strided slices (same values, faster), the sinc
filters are a non-persistent buffer, frequency augmentation is gone from ``forward`` (no
randomness at inference), and ``forward`` returns the logits only. Output index 1 is
bona fide, index 0 is spoof.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class AASISTConfig:
    nb_samp: int = 64_600  # input samples at 16 kHz (~4.04 s)
    first_conv: int = 128  # sinc filter length (made odd: 129)
    filts: tuple = (70, (1, 32), (32, 32), (32, 64), (64, 64))  # sinc bands, then blocks
    gat_dims: tuple = (64, 32)
    pool_ratios: tuple = (0.5, 0.7, 0.5, 0.5)
    temperatures: tuple = (2.0, 2.0, 100.0, 100.0)


AASIST_CONFIG = AASISTConfig()
AASIST_L_CONFIG = AASISTConfig(
    filts=(70, (1, 32), (32, 32), (32, 24), (24, 24)),
    gat_dims=(24, 32),
    pool_ratios=(0.4, 0.5, 0.7, 0.5),
)


def _mel(hz):
    return 2595 * np.log10(1 + hz / 700)


def _hz(mel):
    return 700 * (10 ** (mel / 2595) - 1)


def sinc_band_edges(n_rows: int, n_filters: int = 70, sample_rate: int = 16_000):
    """
    Hz edges of the rows of AASIST's encoder map (the Grad-CAM layer's H axis): the sinc
    front end has n_filters mel-spaced bands over 0 to sample_rate / 2, max-pooled in
    groups -> np.ndarray, shape = (n_rows, 2)
    """
    edges = _hz(np.linspace(0, _mel(sample_rate / 2), n_filters + 1))
    group = n_filters // n_rows
    return np.stack(
        [edges[: n_rows * group : group], edges[group : n_rows * group + 1 : group]], 1
    )


class SincConv(nn.Module):
    """Fixed mel-spaced band-pass sinc filters (no learnable weights)."""

    def __init__(self, out_channels: int, kernel_size: int, sample_rate: int = 16_000):
        super().__init__()
        if kernel_size % 2 == 0:
            kernel_size += 1
        f = (sample_rate // 2) * np.linspace(0, 1, 257)  # 512-point FFT grid
        fmel = _mel(f)
        edges = _hz(np.linspace(fmel.min(), fmel.max(), out_channels + 1))
        t = np.arange(-(kernel_size - 1) / 2, (kernel_size - 1) / 2 + 1)
        bank = np.zeros((out_channels, kernel_size), dtype=np.float32)
        for i in range(out_channels):
            lo, hi = edges[i], edges[i + 1]
            h_hi = (2 * hi / sample_rate) * np.sinc(2 * hi * t / sample_rate)
            h_lo = (2 * lo / sample_rate) * np.sinc(2 * lo * t / sample_rate)
            bank[i] = np.hamming(kernel_size).astype(np.float32) * (h_hi - h_lo).astype(
                np.float32
            )
        self.register_buffer("filters", torch.from_numpy(bank)[:, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : (B, 1, T) -> (B, C, T - kernel + 1)"""
        return F.conv1d(x, self.filters)


class MaxPoolW3(nn.Module):
    """
    nn.MaxPool2d((1, 3)) (no padding, floor mode) as the maximum of three strided
    slices: the same values, about 1.7x faster on CPU for the large encoder maps; no
    parameters, so the published state dict is unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1] // 3 * 3
        if n == 0:
            return F.max_pool2d(x, (1, 3))
        return torch.maximum(torch.maximum(x[..., 0:n:3], x[..., 1:n:3]), x[..., 2:n:3])


def max_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(x, (3, 3)) (no padding, floor mode): the maximum over each group of
    three rows, then of three strided column slices; same values, no indices"""
    h, w = x.shape[-2] // 3 * 3, x.shape[-1] // 3 * 3
    if h == 0 or w == 0:
        return F.max_pool2d(x, (3, 3))
    rows = x[..., :h, :w].unflatten(-2, (h // 3, 3)).amax(dim=-2)
    return torch.maximum(torch.maximum(rows[..., 0::3], rows[..., 1::3]), rows[..., 2::3])


def _unhooked(*modules: nn.Module) -> bool:
    return not any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor, *, fold: bool) -> torch.Tensor:
    """
    bn(conv(x)); with ``fold`` (inference, running statistics, nobody hooking either
    module) as one convolution with the batch norm folded into its weights and bias:
    the same values up to float rounding, one pass over the largest activation less.
    """
    if not (fold and not bn.training and _unhooked(conv, bn)):
        return bn(conv(x))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    w = (conv.weight * scale[:, None, None, None]).contiguous(memory_format=torch.channels_last)
    b = (conv.bias - bn.running_mean) * scale + bn.bias
    return F.conv2d(x, w, b, conv.stride, conv.padding)


class ResidualBlock(nn.Module):
    def __init__(self, nb_filts, first: bool = False):
        super().__init__()
        self.first = first
        if not first:
            self.bn1 = nn.BatchNorm2d(nb_filts[0])
        self.conv1 = nn.Conv2d(nb_filts[0], nb_filts[1], kernel_size=(2, 3), padding=(1, 1))
        self.bn2 = nn.BatchNorm2d(nb_filts[1])
        self.conv2 = nn.Conv2d(nb_filts[1], nb_filts[1], kernel_size=(2, 3), padding=(0, 1))
        self.downsample = nb_filts[0] != nb_filts[1]
        if self.downsample:
            self.conv_downsample = nn.Conv2d(
                nb_filts[0], nb_filts[1], kernel_size=(1, 3), padding=(0, 1)
            )
        self.mp = MaxPoolW3()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the published block computes selu(bn1(x)) and then convolves x, not that
        # result; the weights were trained that way, so bn1 stays unused here too.
        # Without autograd (scoring, SHAP, LIME) nothing keeps these intermediate maps,
        # so the batch norm is folded into conv1 and SELU and the residual sum work in
        # place; with autograd (training, Grad-CAM) every op is out of place, as
        # Captum's hooks need.
        fast = not torch.is_grad_enabled()
        out = conv_bn(self.conv1, self.bn2, x, fold=fast)
        out = F.selu(out, inplace=fast)
        out = self.conv2(out)
        identity = self.conv_downsample(x) if self.downsample else x
        out = out.add_(identity) if fast else out + identity
        return self.mp(out)


def _xavier(*size) -> nn.Parameter:
    p = nn.Parameter(torch.empty(*size))
    nn.init.xavier_normal_(p)
    return p


def _bn_nodes(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """batch norm over the feature axis of (B, N, D) node features"""
    shape = x.shape
    return bn(x.reshape(-1, shape[-1])).reshape(shape)


class GraphAttentionLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _xavier(out_dim, 1)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.temp = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : (B, N, in_dim) -> (B, N, out_dim)"""
        x = self.input_drop(x)
        pair = x.unsqueeze(2) * x.unsqueeze(1)  # (B, N, N, D)
        att = torch.matmul(torch.tanh(self.att_proj(pair)), self.att_weight)
        att = F.softmax(att / self.temp, dim=-2).squeeze(-1)  # (B, N, N)
        x = self.proj_with_att(torch.matmul(att, x)) + self.proj_without_att(x)
        return F.selu(_bn_nodes(self.bn, x))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous attention over temporal + spectral nodes, with a master node."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = _xavier(out_dim, 1)
        self.att_weight22 = _xavier(out_dim, 1)
        self.att_weight12 = _xavier(out_dim, 1)
        self.att_weightM = _xavier(out_dim, 1)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.temp = temperature

    def forward(self, x1, x2, master):
        """x1 : (B, N1, D), x2 : (B, N2, D), master : (B or 1, 1, D)"""
        n1, n2 = x1.size(1), x2.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)
        x = self.input_drop(x)

        pair = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, D')
        # block-wise attention weights: type1-type1, type2-type2, and across types
        w = torch.cat(
            [
                torch.cat(
                    [
                        torch.matmul(pair[:, :n1, :n1], self.att_weight11),
                        torch.matmul(pair[:, :n1, n1:], self.att_weight12),
                    ],
                    dim=2,
                ),
                torch.cat(
                    [
                        torch.matmul(pair[:, n1:, :n1], self.att_weight12),
                        torch.matmul(pair[:, n1:, n1:], self.att_weight22),
                    ],
                    dim=2,
                ),
            ],
            dim=1,
        )
        att = F.softmax(w / self.temp, dim=-2).squeeze(-1)  # (B, N, N)

        # master node update uses the nodes before this layer's projection
        att_m = torch.matmul(torch.tanh(self.att_projM(x * master)), self.att_weightM)
        att_m = F.softmax(att_m / self.temp, dim=-2).squeeze(-1)  # (B, N)
        master = self.proj_with_attM(
            torch.matmul(att_m.unsqueeze(1), x)
        ) + self.proj_without_attM(master)

        x = self.proj_with_att(torch.matmul(att, x)) + self.proj_without_att(x)
        x = F.selu(_bn_nodes(self.bn, x))
        return x[:, :n1], x[:, n1 : n1 + n2], master


class GraphPool(nn.Module):
    def __init__(self, k: float, in_dim: int, p: float):
        super().__init__()
        self.k = k
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(p=p) if p > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """keep the top k fraction of nodes by a learned score; (B, N, D) -> (B, N', D)"""
        scores = torch.sigmoid(self.proj(self.drop(h)))  # (B, N, 1)
        n_keep = max(int(h.size(1) * self.k), 1)
        _, idx = torch.topk(scores, n_keep, dim=1)
        return torch.gather(h * scores, 1, idx.expand(-1, -1, h.size(2)))


class AASIST(nn.Module):
    def __init__(self, config: AASISTConfig = AASIST_CONFIG):
        super().__init__()
        self.config = config
        filts, gat, pools, temps = (
            config.filts,
            config.gat_dims,
            config.pool_ratios,
            config.temperatures,
        )
        self.conv_time = SincConv(filts[0], config.first_conv)
        self.first_bn = nn.BatchNorm2d(1)
        self.drop = nn.Dropout(0.5)
        self.drop_way = nn.Dropout(0.2)
        self.encoder = nn.Sequential(
            nn.Sequential(ResidualBlock(filts[1], first=True)),
            nn.Sequential(ResidualBlock(filts[2])),
            nn.Sequential(ResidualBlock(filts[3])),
            nn.Sequential(ResidualBlock(filts[4])),
            nn.Sequential(ResidualBlock(filts[4])),
            nn.Sequential(ResidualBlock(filts[4])),
        )
        n_spec = filts[0] // 3  # 23 spectral nodes after the (3, 3) max-pool
        self.pos_S = nn.Parameter(torch.randn(1, n_spec, filts[-1][-1]))
        self.master1 = nn.Parameter(torch.randn(1, 1, gat[0]))
        self.master2 = nn.Parameter(torch.randn(1, 1, gat[0]))
        self.GAT_layer_S = GraphAttentionLayer(filts[-1][-1], gat[0], temps[0])
        self.GAT_layer_T = GraphAttentionLayer(filts[-1][-1], gat[0], temps[1])
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(gat[0], gat[1], temps[2])
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(gat[1], gat[1], temps[2])
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(gat[0], gat[1], temps[2])
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(gat[1], gat[1], temps[2])
        self.pool_S = GraphPool(pools[0], gat[0], 0.3)
        self.pool_T = GraphPool(pools[1], gat[0], 0.3)
        self.pool_hS1 = GraphPool(pools[2], gat[1], 0.3)
        self.pool_hT1 = GraphPool(pools[2], gat[1], 0.3)
        self.pool_hS2 = GraphPool(pools[2], gat[1], 0.3)
        self.pool_hT2 = GraphPool(pools[2], gat[1], 0.3)
        self.out_layer = nn.Linear(5 * gat[1], 2)
        # channels-last convolutions run about a third faster on CPU (oneDNN) and give
        # the same values; load_state_dict copies into these tensors and keeps the layout
        self.encoder.to(memory_format=torch.channels_last)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """
        x : (B, nb_samp) waveform -> (B, C, 23, T') encoder map (spectral x temporal)
        """
        x = self.conv_time(x.unsqueeze(1)).unsqueeze(1)  # (B, 1, 70, T)
        x = torch.abs(x)
        # (B, 1, 23, T/3); without autograd as row maxima then strided slices: the same
        # values, ~8x faster than max_pool2d on this map (which computes indices too)
        x = F.max_pool2d(x, (3, 3)) if torch.is_grad_enabled() else max_pool_3x3(x)
        x = F.selu(self.first_bn(x))
        return self.encoder(x.contiguous(memory_format=torch.channels_last))

    def _branch(self, out_T, out_S, master, layer1, layer2, pool_S, pool_T):
        out_T1, out_S1, m1 = layer1(out_T, out_S, master)
        out_S1 = pool_S(out_S1)
        out_T1 = pool_T(out_T1)
        t_aug, s_aug, m_aug = layer2(out_T1, out_S1, m1)
        return out_T1 + t_aug, out_S1 + s_aug, m1 + m_aug

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : (B, nb_samp) -> logits (B, 2); index 1 = bona fide"""
        e = self.encode(x)
        e_S = torch.amax(torch.abs(e), dim=3).transpose(1, 2) + self.pos_S  # (B, 23, C)
        out_S = self.pool_S(self.GAT_layer_S(e_S))
        e_T = torch.amax(torch.abs(e), dim=2).transpose(1, 2)  # (B, T', C)
        out_T = self.pool_T(self.GAT_layer_T(e_T))

        t1, s1, m1 = self._branch(
            out_T, out_S, self.master1, self.HtrgGAT_layer_ST11,
            self.HtrgGAT_layer_ST12, self.pool_hS1, self.pool_hT1,
        )  # fmt: skip
        t2, s2, m2 = self._branch(
            out_T, out_S, self.master2, self.HtrgGAT_layer_ST21,
            self.HtrgGAT_layer_ST22, self.pool_hS2, self.pool_hT2,
        )  # fmt: skip
        out_T = torch.maximum(self.drop_way(t1), self.drop_way(t2))
        out_S = torch.maximum(self.drop_way(s1), self.drop_way(s2))
        master = torch.maximum(self.drop_way(m1), self.drop_way(m2))
        if master.size(0) != out_T.size(0):
            master = master.expand(out_T.size(0), -1, -1)

        hidden = torch.cat(
            [
                torch.amax(torch.abs(out_T), dim=1),
                out_T.mean(dim=1),
                torch.amax(torch.abs(out_S), dim=1),
                out_S.mean(dim=1),
                master.squeeze(1),
            ],
            dim=1,
        )
        return self.out_layer(self.drop(hidden))
