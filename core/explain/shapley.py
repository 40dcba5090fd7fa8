"""Shapley values of a coalition game: exact enumeration, or paired-sampling KernelSHAP.

A game is ``v(keep) -> values``: keep is a bool array (n, F) of coalitions (True = the
feature is present), values a float64 array (n,). In the explanations it is a window's
``Window.game`` (the target's log-odds, cached per coalition); the accuracy benchmark
passes a table of precomputed values instead, so both run the same estimators.

Estimators
----------
exact : all 2^F coalitions, phi_i = sum over S without i of |S|! (F - |S| - 1)! / F!
    (v(S + i) - v(S)) (Shapley 1953). Used whenever 2^F is within the sample budget.
kernel_paired : Captum's KernelShap (Lundberg & Lee 2017: coalition sizes drawn from the
    Shapley kernel, a weighted linear regression with the empty and full coalitions
    pinned) with each drawn coalition followed by its complement (paired or antithetic
    sampling; Covert & Lee, AISTATS 2021, arXiv 2012.01536, measured it to cut the
    variance several-fold). The budget is split into two independent halves, each a
    full estimate; the values are their mean and the per-feature uncertainty is the
    standard error of that mean, |a - b| / 2. Duplicate coalitions cost no model call
    (the game is cached), so n_samples bounds the model calls from above.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from captum.attr import KernelShap

from core.explain.window import seeded

Game = Callable[[np.ndarray], np.ndarray]
# coalitions handed to the game per call: the game batches for the model itself
CAPTUM_BATCH = 64


def all_coalitions(m: int) -> np.ndarray:
    """(2^m, m) bool; row c holds the bits of c (feature i present iff bit i is set)"""
    codes = np.arange(2**m)
    return ((codes[:, None] >> np.arange(m)) & 1).astype(bool)


def exact(game: Game, m: int) -> np.ndarray:
    """exact Shapley values (m,) from all 2^m coalitions"""
    keep = all_coalitions(m)
    v = np.asarray(game(keep), dtype=np.float64)
    size = keep.sum(axis=1)
    weight = np.array(
        [math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m) for k in range(m)]
    )
    codes = np.arange(2**m)
    phi = np.empty(m)
    for i in range(m):
        without = codes[(codes >> i) & 1 == 0]
        phi[i] = np.sum(weight[size[without]] * (v[without | (1 << i)] - v[without]))
    return phi


class PairedKernelShap(KernelShap):
    """Captum's KernelShap, each sampled coalition followed by its complement"""

    def kernel_shap_perturb_generator(self, original_inp, **kwargs):
        draws = super().kernel_shap_perturb_generator(original_inp, **kwargs)
        yield next(draws)  # every feature present
        yield next(draws)  # none
        for z in draws:
            yield z
            yield 1 - z


def torch_game(game: Game) -> Callable[[torch.Tensor], torch.Tensor]:
    """the game as a forward function on binary inputs (B, F) for Captum"""

    def forward(z: torch.Tensor) -> torch.Tensor:
        keep = z.detach().cpu().numpy() > 0.5
        return torch.from_numpy(np.asarray(game(keep), dtype=np.float64))

    return forward


def kernel_half(
    game: Game, m: int, n_samples: int, seed: int, *, paired: bool = True
) -> np.ndarray:
    """one KernelSHAP estimate (m,) from n_samples coalitions (paired, or Captum's own)"""
    ones = torch.ones(1, m, dtype=torch.float64)
    method = PairedKernelShap if paired else KernelShap
    with seeded(seed):
        coefs = method(torch_game(game)).attribute(
            ones,
            baselines=torch.zeros_like(ones),
            n_samples=max(int(n_samples), 4),
            perturbations_per_eval=CAPTUM_BATCH,
            return_input_shape=False,
        )
    return coefs.detach().double().reshape(-1).numpy()


def kernel_paired(
    game: Game, m: int, n_samples: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, standard errors, the two half estimates (2, m)) from n_samples draws"""
    halves = np.stack(
        [kernel_half(game, m, n_samples // 2, 2 * seed + h) for h in (0, 1)]
    )
    return halves.mean(axis=0), np.abs(halves[0] - halves[1]) / 2.0, halves


def top_k_stable(halves: np.ndarray, k: int = 3) -> bool:
    """do both halves name the same k features as the largest? (trivially for F <= k)"""
    k = min(k, halves.shape[1])
    tops = [set(np.argsort(-h, kind="stable")[:k].tolist()) for h in halves]
    return tops[0] == tops[1]


def rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two value vectors (1.0 when both are constant)"""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.ptp(a) == np.ptp(b) else 0.0
    return float(spearmanr(a, b).statistic)


def estimate(game: Game, m: int, n_samples: int, seed: int = 0) -> dict:
    """
    Shapley values with the budget n_samples: exact when 2^m <= n_samples, else
    paired-sampling KernelSHAP. Returns {"values", "uncertainty" (per-feature standard
    error, zeros for exact), "estimator", "stability" (Spearman between the halves, 1
    for exact), "top3_stable"}.
    """
    if 2**m <= n_samples:
        values = exact(game, m)
        return {"values": values, "uncertainty": np.zeros(m), "estimator": "exact",
                "stability": 1.0, "top3_stable": True}  # fmt: skip
    values, se, halves = kernel_paired(game, m, n_samples, seed)
    return {
        "values": values,
        "uncertainty": se,
        "estimator": "kernel-paired",
        "stability": rank_agreement(halves[0], halves[1]),
        "top3_stable": top_k_stable(halves),
    }
