"""How many model evaluations an explanation makes, before it is made (for time estimates).

An estimate multiplies these counts by a cost per evaluation measured on the server
(core.engine.explaining): the counts are upper bounds that follow the code, so a new
setting (segments, a bigger reference set, more random orders) moves the estimate too.

Counts are in forward passes of one window: a coalition sent through ``Window.game``
costs one per reference input; a gradient (Grad-CAM, expected gradients) costs a forward
and a backward, counted as GRADIENT_COST forwards. The deletion curves cost
(1 + random_orders) x (F - 1) coalitions plus the empty one, nothing after an exact SHAP
(every coalition is then in the window's table).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from core.explain.faithfulness import DEFAULT_RANDOM_ORDERS
from core.explain.window import DEFAULT_BANDS, DEFAULT_SEGMENTS

# a backward pass keeps every activation and costs about two forwards (Captum docs; the
# benchmark's ratio column for gradshap)
GRADIENT_COST = 3


def n_features(
    spec, *, segments: int = DEFAULT_SEGMENTS, bands: int = DEFAULT_BANDS
) -> int:
    """F: the interpretable features of one window of this model"""
    front_end = spec.front_end
    _, bounds = front_end.features(
        torch.zeros(1, *front_end.input_shape), segments=segments, bands=bands
    )
    return len(bounds)


def expected_evals(
    explainer,
    spec,
    *,
    references: int,
    segments: int = DEFAULT_SEGMENTS,
    bands: int = DEFAULT_BANDS,
    random_orders: int = DEFAULT_RANDOM_ORDERS,
) -> dict:
    """
    At most how many forward-pass equivalents an explanation with its default N makes.

    explainer : core.explain.base.Explainer; references : K, reference inputs per coalition
    Returns {"attribution": int, "deletion": int, "total": int}
    """
    f = n_features(spec, segments=segments, bands=bands)
    n = None
    if explainer.uses_n_samples:
        n = int(explainer.default_n_samples(SimpleNamespace(n_features=f, spec=spec)))
    deletion = ((1 + random_orders) * max(f - 1, 0) + 1) * references
    if not explainer.exclusive:  # coalitions through the window's game (SHAP, LIME)
        attribution = min(n, 2**f - 1) * references
        if explainer.name == "shap" and 2**f <= n:
            deletion = 0  # exact: the deletion curves' coalitions are all in the table
    else:  # gradients: Grad-CAM one, expected gradients N draws
        attribution = GRADIENT_COST * (n or 1)
    return {
        "attribution": attribution,
        "deletion": deletion,
        "total": attribution + deletion,
    }
