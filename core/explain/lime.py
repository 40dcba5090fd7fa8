"""LIME (Ribeiro et al., KDD 2016, arXiv 1602.04938) with Captum's Lime.

Samples: the instance itself, then coalitions with each feature kept with probability
1/2 (removed features take the reference, see core.explain.reference). Weights: an exponential kernel
exp(-d^2 / width^2) on the cosine distance d between the coalition's binary vector and
the all-ones vector of the instance. Surrogate: weighted ridge regression (alpha 1, the
reference's default) of the target's log-odds (the quantity SHAP explains, window.py) on
the binary vectors. The values are the surrogate's coefficients.

Fidelity: quality["r2"] is the weighted R^2 on the samples the surrogate was fitted to;
quality["r2_heldout"] is the weighted R^2 of 5-fold cross-validation (each fold predicted
by a surrogate fitted without it), the honest measure of how well a linear model
describes the detector around this window. The coalitions are the window's cached ones
(window.py), so LIME after SHAP on the same window costs few or no model calls.

Kernel width: 0.25 in the reference's lime_image is very local (the instance and its
near neighbours dominate); ``python -m benchmarks shapley`` measures the agreement with
exact Shapley values for each width on MiniSpoof dev clips (README), and the default
(width 1, 8 samples per feature) is the choice made there.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import Lime
from torch.utils.data import DataLoader, TensorDataset

from core.explain.base import Explainer, MethodResult
from core.explain.shapley import CAPTUM_BATCH, Game, torch_game
from core.explain.window import Window, arch_setting, seeded

# chosen on MiniSpoof dev clips with `python -m benchmarks shapley` (8 features, median
# Spearman against exact Shapley values): N = 3F + 2 = 26 gave 0.69-0.90 whatever the
# width; N = 8F = 64 at width 1 gave 0.83 (Res-TSSDNet 1D), 0.95 (CQT), 0.98 (AASIST),
# held-out R^2 0.65, 0.99, 0.75; width 0.25 (the reference's) 0.83, 0.95, 0.98 with
# lower held-out R^2 on two models
KERNEL_WIDTH = 1.0
RIDGE_ALPHA = 1.0
FOLDS = 5
SAMPLES_PER_FEATURE = 8


def samples_for(n_features: int, spec=None) -> int:
    """LIME's default N: the model's samples per feature (core.detectors.archs) x F, plus 2"""
    per = int(arch_setting(spec, "lime_samples_per_feature", SAMPLES_PER_FEATURE))
    return per * n_features + (2 if per < SAMPLES_PER_FEATURE else 0)


def default_n_samples(window) -> int:
    return samples_for(window.n_features, window.spec)


def weighted_r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    mean = float(np.sum(w * y) / np.sum(w))
    ss_tot = float(np.sum(w * (y - mean) ** 2))
    if ss_tot <= 0:
        return float("nan")
    return 1.0 - float(np.sum(w * (y - pred) ** 2)) / ss_tot


def heldout_r2(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float, seed: int) -> float:
    """weighted R^2 of k-fold cross-validated ridge predictions (NaN if too few samples)"""
    from sklearn.linear_model import Ridge

    n = len(y)
    if n < 2 * FOLDS:
        return float("nan")
    folds = np.random.default_rng(seed).permutation(n) % FOLDS
    pred = np.empty(n)
    for k in range(FOLDS):
        test = folds == k
        model = Ridge(alpha=alpha).fit(x[~test], y[~test], sample_weight=w[~test])
        pred[test] = model.predict(x[test])
    return weighted_r2(y, pred, w)


class ScoredRidge(SkLearnRidge):
    """Captum's sklearn ridge surrogate, keeping its weighted R^2 (fitted and held out)"""

    r2: float = float("nan")
    r2_heldout: float = float("nan")
    intercept: float = float("nan")
    seed: int = 0

    def fit(self, train_data: DataLoader, **kwargs):
        x, y, w = (torch.cat(parts) for parts in zip(*train_data))
        out = super().fit(
            DataLoader(TensorDataset(x, y, w), batch_size=len(x)), **kwargs
        )
        pred = self.linear(x.float()).reshape(-1).detach().double().numpy()
        xn = x.double().numpy()
        yn, wn = y.reshape(-1).double().numpy(), w.reshape(-1).double().numpy()
        self.r2 = weighted_r2(yn, pred, wn)
        self.r2_heldout = heldout_r2(xn, yn, wn, RIDGE_ALPHA, self.seed)
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
        yield torch.ones(1, n, dtype=torch.float64)
        gen = torch.Generator().manual_seed(seed)
        while True:
            yield (torch.rand(1, n, generator=gen) < 0.5).double()

    return sample


def lime_values(
    game: Game, m: int, n_samples: int, seed: int = 0, width: float = KERNEL_WIDTH
) -> tuple[np.ndarray, ScoredRidge]:
    """(surrogate coefficients (m,), the fitted surrogate) for a game on m features"""
    surrogate = ScoredRidge(alpha=RIDGE_ALPHA)
    surrogate.seed = seed
    explainer = Lime(
        torch_game(game),
        interpretable_model=surrogate,
        similarity_func=exponential_kernel(width),
        perturb_func=coalitions(seed),
    )
    ones = torch.ones(1, m, dtype=torch.float64)
    with seeded(seed):  # torch's DataLoader draws a seed from the global generator
        coefs = explainer.attribute(
            ones,
            baselines=torch.zeros_like(ones),
            n_samples=n_samples,
            perturbations_per_eval=CAPTUM_BATCH,
            return_input_shape=False,
        )
    return coefs.detach().double().reshape(-1).numpy(), surrogate


def lime(
    window: Window, *, n_samples: int, seed: int = 0, progress=None
) -> MethodResult:
    before = window.n_evals
    values, surrogate = lime_values(window.game, window.n_features, n_samples, seed)
    quality = {
        "r2": surrogate.r2,
        "r2_heldout": surrogate.r2_heldout,
        "intercept": surrogate.intercept,
        "output": "log-odds",
        "kernel": f"exponential, cosine distance, width {KERNEL_WIDTH}",
        "surrogate": f"weighted ridge, alpha {RIDGE_ALPHA}",
        "baseline": window.baseline_name,
    }
    return MethodResult(
        values=values, dense=None, n_evals=window.n_evals - before, quality=quality
    )


EXPLAINER = Explainer(
    name="lime",
    version="3",  # 3: the reference (real speech by default) is a parameter
    fn=lime,
    default_n_samples=default_n_samples,
    description="LIME surrogate coefficients of the target's log-odds, Captum Lime, "
    "exponential kernel",
    label="LIME",
    cost="Runs the model on tens of coalitions, each once per reference window (fewer "
    "after SHAP on the same window), then the deletion curves.",
    exclusive=False,  # only model calls through Window: one turn per batch
)
