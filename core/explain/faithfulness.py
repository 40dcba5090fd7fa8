"""Deletion curves: how fast P(target) falls when features are removed, best first.

Features are removed (set to the baseline) in decreasing order of their value (ties
broken by position), and P(target) is recorded after each removal: a curve of F + 1
points from P(target | x) to P(target | baseline). The same is done for
``random_orders`` random permutations (seeded) and their mean curve is the
reference. Areas are the mean height over the fraction removed (trapezoid rule,
0..1): a faithful attribution gives a smaller area than random, so
quality["deletion_gain"] = random area - area > 0.
Reference: Petsiuk et al., RISE, BMVC 2018 (arXiv 1806.07421), deletion metric.

The random orders depend only on the seed and the number of features, so their curves
depend on the window, never on the method: their coalitions are in the window's
coalition table (window.py) after the first method, and every later method that explains
the window gets them without a model call.
"""

from __future__ import annotations

import numpy as np

from core.explain.window import Window

DEFAULT_RANDOM_ORDERS = 3


def _curves(window: Window, orders: list[np.ndarray]) -> np.ndarray:
    """(orders, F + 1) P(target) after removing 0..F features in each order"""
    n = window.n_features
    keep = np.ones((len(orders), max(n - 1, 0), n), dtype=bool)
    for o, order in enumerate(orders):
        for k in range(1, n):
            keep[o, k - 1, order[:k]] = False
    # rows 1..F-1 of every order in one batched pass; the end points are known
    inner = window.evaluate(keep.reshape(-1, n)).reshape(len(orders), max(n - 1, 0))
    first = np.full((len(orders), 1), window.p_target)
    last = np.full((len(orders), 1), window.p_baseline)
    return np.concatenate([first, inner, last], axis=1)


def removal_order(values: np.ndarray) -> np.ndarray:
    """feature indices by decreasing value; ties keep position order"""
    return np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")


def deletion_curves(
    window: Window,
    values: np.ndarray,
    *,
    random_orders: int = DEFAULT_RANDOM_ORDERS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """
    Returns (curve, random_mean, quality): curve and random_mean have shape (F + 1,);
    random_mean is all NaN when random_orders is 0.
    """
    n = window.n_features
    rng = np.random.default_rng(seed)
    random = [rng.permutation(n) for _ in range(random_orders)]
    curve = _curves(window, [removal_order(values)])[0]
    random_mean = np.full(n + 1, np.nan)
    if random_orders:
        random_mean = _curves(window, random).mean(axis=0)
    auc = float(np.trapezoid(curve, dx=1.0 / n))
    quality = {"deletion_auc": auc, "random_orders": random_orders}
    if random_orders:
        auc_random = float(np.trapezoid(random_mean, dx=1.0 / n))
        quality.update(deletion_auc_random=auc_random, deletion_gain=auc_random - auc)
    return curve, random_mean, quality
