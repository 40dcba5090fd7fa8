"""Coalitions are sent to the model once per window: the random-order deletion baseline
and the coalitions SHAP, LIME and the deletion curves share are paid for once, whatever
the number of methods that explain the window."""

from __future__ import annotations

import numpy as np

from core.detectors.detect import Detector
from core.explain import explain
from core.explain.window import clear_coalition_tables


def counting(det: Detector) -> list[int]:
    """wrap det.logits so every network input it is given is counted"""
    calls = [0]
    inner = det.logits

    def logits(x):
        calls[0] += len(x)
        return inner(x)

    det.logits = logits
    return calls


def test_three_methods_on_one_window_pay_for_the_random_baseline_once():
    det = Detector.load("tssd1d")
    calls = counting(det)
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16_000 * 3)).astype(np.float32)
    segments, orders = 8, 3
    runs = {m: explain(det, x, method=m, window=0, segments=segments, random_orders=orders)
            for m in ("gradcam", "shap", "lime")}  # fmt: skip
    evals = [runs[m].quality["n_evals_deletion"] for m in ("gradcam", "shap", "lime")]
    own = segments - 1  # the method's own removal order: F - 1 inner points
    # each coalition is sent once per input of the reference (real speech: its windows)
    k = runs["shap"].quality["reference_size"]
    assert k > 1 and all(r.quality["n_evals_deletion"] % k == 0 for r in runs.values())
    # Grad-CAM came first: its own curve, the random orders and P(everything removed)
    assert evals[0] <= ((1 + orders) * own + 1) * k
    assert evals[0] >= (orders * own - orders) * k  # random orders may share a prefix
    # SHAP (exact at 8 segments for this model) evaluated every coalition: LIME and the
    # deletion curves after it cost no model call
    assert runs["shap"].quality["estimator"] == "exact"
    assert runs["shap"].quality["n_evals"] <= 2**segments * k
    assert evals[1] == evals[2] == runs["lime"].quality["n_evals"] == 0
    base = runs["gradcam"].deletion_random
    for m in ("shap", "lime"):
        np.testing.assert_array_equal(runs[m].deletion_random, base)
    # the counts are the model's own: every network input the methods sent (plus one
    # forward per prepare_window and the window scan) is in them
    made = sum(r.quality["n_evals"] + r.quality["n_evals_deletion"] for r in runs.values())
    assert calls[0] >= made and calls[0] - made <= 3 * 3  # 3 x (scan + prepare forward)
    assert made <= 2**segments * k + 1  # the whole table and one Grad-CAM pass, at most
    # another seed draws other random orders (new coalitions only where not yet asked)
    other = explain(det, x, method="shap", window=0, segments=segments, seed=1,
                    random_orders=orders)  # fmt: skip
    assert other.quality["n_evals"] == other.quality["n_evals_deletion"] == 0
    # and the cached values equal a fresh computation
    clear_coalition_tables(det)
    fresh = explain(det, x, method="lime", window=0, segments=segments, random_orders=orders)
    np.testing.assert_allclose(fresh.deletion_random, base, atol=1e-6)
    np.testing.assert_allclose(fresh.values, runs["lime"].values, atol=1e-6)
