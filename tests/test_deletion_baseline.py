"""The random-order deletion baseline does not depend on the method: computed once per
window and shared by every method that explains it."""

from __future__ import annotations

import numpy as np

from core.detect import Detector
from core.explain import explain
from core.explain.faithfulness import clear_random_cache


def test_three_methods_on_one_window_pay_for_the_random_baseline_once():
    clear_random_cache()
    det = Detector.load("tssd1d")
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16_000 * 3)).astype(np.float32)
    segments, orders = 8, 3
    runs = {m: explain(det, x, method=m, window=0, segments=segments, random_orders=orders)
            for m in ("gradcam", "shap", "lime")}  # fmt: skip
    evals = [runs[m].quality["n_evals_deletion"] for m in ("gradcam", "shap", "lime")]
    own = segments - 1  # the method's own removal order: F - 1 inner points
    # (+1 where the method had not yet evaluated P(target | everything removed))
    assert evals[0] in ((1 + orders) * own, (1 + orders) * own + 1)
    assert all(e in (own, own + 1) for e in evals[1:])
    base = runs["gradcam"].deletion_random
    for m in ("shap", "lime"):
        np.testing.assert_array_equal(runs[m].deletion_random, base)
    # a different target or seed is another baseline
    other = explain(det, x, method="shap", window=0, segments=segments, seed=1,
                    random_orders=orders)  # fmt: skip
    assert other.quality["n_evals_deletion"] >= (1 + orders) * own
    # and the cached baseline equals a fresh computation
    clear_random_cache()
    fresh = explain(det, x, method="lime", window=0, segments=segments, random_orders=orders)
    np.testing.assert_allclose(fresh.deletion_random, base, atol=1e-6)
