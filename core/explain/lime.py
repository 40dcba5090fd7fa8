"""LIME (Ribeiro et al., KDD 2016, arXiv 1602.04938) with Captum's Lime.

Samples: the instance itself, then coalitions with each feature kept with probability
1/2 (removed features take the baseline, see window.py). Weights: an exponential kernel
exp(-d^2 / width^2) on the cosine distance d between the coalition's binary vector and
the all-ones vector of the instance, width 0.25, as the reference implementation's
lime_image. Surrogate: weighted ridge regression (alpha 1, the reference's default) of
P(target) on the binary vectors. The result's values are the surrogate's coefficients;
quality["r2"] is its weighted R^2 on the samples it was fitted to.
"""

from __future__ import annotations

import math

import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import Lime
from torch.utils.data import DataLoader, TensorDataset

from .base import Explainer, MethodResult
from .window import Window, seeded

KERNEL_WIDTH = 0.25
RIDGE_ALPHA = 1.0


def default_n_samples(n_features: int) -> int:
    return 3 * n_features + 2


class ScoredRidge(SkLearnRidge):
    """Captum's sklearn ridge surrogate, keeping its weighted R^2 and intercept"""

    r2: float = float("nan")
    intercept: float = float("nan")

    def fit(self, train_data: DataLoader, **kwargs):
        x, y, w = (torch.cat(parts) for parts in zip(*train_data))
        out = super().fit(
            DataLoader(TensorDataset(x, y, w), batch_size=len(x)), **kwargs
        )
        pred = self.linear(x.float()).reshape(-1).detach().double()
        y, w = y.reshape(-1).double(), w.reshape(-1).double()
        mean = (w * y).sum() / w.sum()
        ss_res = float((w * (y - pred) ** 2).sum())
        ss_tot = float((w * (y - mean) ** 2).sum())
        self.r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        self.intercept = float(self.linear.bias.detach().reshape(-1)[0])
        return out


def exponential_kernel(width: float = KERNEL_WIDTH):
    """similarity of a coalition z (1, F) to the instance (all ones), in (0, 1]"""

    def similarity(_inputs, _perturbed, z: torch.Tensor, **kwargs) -> torch.Tensor:
        k, n = float(z.sum()), z.numel()
        d = 1.0 - math.sqrt(k / n)  # cosine distance between z and the ones vector
        return torch.tensor([math.exp(-(d**2) / width**2)])

    return similarity


def coalitions(seed: int):
    """perturb_func: the instance, then Bernoulli(1/2) vectors, seeded"""

    def sample(_inputs, **kwargs):
        n = int(kwargs["num_interp_features"])
        yield torch.ones(1, n, dtype=torch.long)
        gen = torch.Generator().manual_seed(seed)
        while True:
            yield (torch.rand(1, n, generator=gen) < 0.5).long()

    return sample


def lime(
    window: Window, *, n_samples: int, seed: int = 0, progress=None
) -> MethodResult:
    before = window.n_evals
    surrogate = ScoredRidge(alpha=RIDGE_ALPHA)
    explainer = Lime(
        window.probabilities,
        interpretable_model=surrogate,
        similarity_func=exponential_kernel(),
        perturb_func=coalitions(seed),
    )
    with seeded(seed):  # torch's DataLoader draws a seed from the global generator
        coefs = explainer.attribute(
            window.x,
            baselines=window.baseline,
            target=window.target,
            feature_mask=window.feature_mask,
            n_samples=n_samples,
            perturbations_per_eval=window.batch,
            return_input_shape=False,
        )
    values = coefs.detach().double().reshape(-1).numpy()
    quality = {
        "r2": surrogate.r2,
        "intercept": surrogate.intercept,
        "kernel": f"exponential, cosine distance, width {KERNEL_WIDTH}",
        "surrogate": f"weighted ridge, alpha {RIDGE_ALPHA}",
        "baseline": window.baseline_name,
    }
    return MethodResult(
        values=values, dense=None, n_evals=window.n_evals - before, quality=quality
    )


EXPLAINER = Explainer(
    name="lime",
    version="1",
    fn=lime,
    default_n_samples=default_n_samples,
    description="LIME surrogate coefficients of P(target), Captum Lime, exponential "
    "kernel",
    label="LIME",
    cost="Runs the model tens of times: up to a minute on CPU.",
)
