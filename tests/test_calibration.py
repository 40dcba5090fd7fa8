"""Calibration, fusion, bands and the combined verdict against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit

from core.audio.quality import InputQuality, QualityWarning
from core.detectors.detect import Verdict
from core.judgement.assessment import load_calibration
from core.judgement.calibration import (
    Bands,
    CalibrationFileError,
    choose_bands,
    cllr,
    ece,
    fit_calibration,
    fit_fusion,
)
from core.judgement.calibration_file import CalibrationFile, fit_calibration_file
from core.judgement.combined import MAX_WIDEN, combine
from core.training.calibrate import widening

LN3 = math.log(3.0)


def two_point_set():
    """
    raw log-odds +1 for 3 spoof + 1 bona fide, -1 for 1 spoof + 3 bona fide. With each
    class weighing the same, the spoof share is 3/4 at +1 and 1/4 at -1, so the
    maximum-likelihood map is logit(3/4) = ln 3 at +1 and -ln 3 at -1: slope ln 3,
    intercept 0.
    """
    x = np.array([1, 1, 1, 1, -1, -1, -1, -1], dtype=float)
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    return expit(x), y


def test_platt_calibration_reproduces_the_closed_form():
    p, y = two_point_set()
    cal = fit_calibration(p, y, smooth=False)
    assert cal.slope == pytest.approx(LN3, abs=1e-6)
    assert cal.intercept == pytest.approx(0.0, abs=1e-6)
    assert cal.apply(expit(1.0)) == pytest.approx(0.75, abs=1e-6)


def test_fusion_ignores_an_uninformative_model_and_fits_every_subset():
    p, y = two_point_set()
    flat = np.full_like(p, 0.5)  # raw log-odds 0 for every file: carries nothing
    fusion = fit_fusion({"a": p, "b": flat}, y, smooth=False)
    assert set(fusion.subsets) == {("a",), ("b",), ("a", "b")}
    both = fusion.subsets[("a", "b")]
    assert both.weights == pytest.approx((LN3, 0.0), abs=1e-6)
    assert both.bias == pytest.approx(0.0, abs=1e-6)
    # b alone: a constant predictor of a balanced set is 0.5
    assert fusion.apply({"b": 0.5}) == pytest.approx(0.5, abs=1e-6)
    # a missing model picks the subset fit of those present
    assert fusion.apply({"a": expit(1.0), "b": None}) == pytest.approx(0.75, abs=1e-6)


def test_bands_leave_at_most_the_allowed_error_outside():
    # spoof scores 0.6..0.95, bona fide 0.05..0.4 plus one bona fide at 0.7
    spoof = np.array([0.6, 0.65, 0.8, 0.9, 0.95])
    bona = np.array([0.05, 0.1, 0.2, 0.4, 0.7])
    p = np.concatenate([spoof, bona])
    y = np.array([1] * 5 + [0] * 5)
    b = choose_bands(p, y, max_error=0.0)
    # above 0.7 only spoofs (0.8, 0.9, 0.95); below 0.6 only bona fide: lo = 0.5 is
    # the largest candidate <= 0.5 with no spoof below it
    assert b.hi == pytest.approx(0.7) and b.lo == pytest.approx(0.5)


def test_metrics_on_hand_made_scores():
    y = np.array([1, 0])
    # Cllr of p = 0.5 for everything is exactly 1 bit
    assert cllr(np.array([0.5, 0.5]), y) == pytest.approx(1.0)
    # perfectly confident and right -> ECE 0; always 0.5 on a balanced set -> ECE 0 too
    assert ece(np.array([1.0, 0.0]), y) == pytest.approx(0.0)
    assert ece(np.array([0.5, 0.5]), y) == pytest.approx(0.0)
    # p = 0.9 for both: bin 9 holds both files, observed balanced frequency 0.5
    assert ece(np.array([0.9, 0.9]), y) == pytest.approx(0.4)


def test_widening_is_the_log_odds_gap_and_saturates():
    assert widening(Bands(0.2, 0.8), Bands(0.2, 0.8)) == 0.0
    by = widening(Bands(0.2, 0.8), Bands(0.1, 0.9))
    assert by == pytest.approx(math.log(9) - math.log(4))
    assert widening(Bands(0.2, 0.8), Bands(0.0, 0.9)) == MAX_WIDEN


def verdict(model: str, p: float, sha: str = "w" * 64, n_windows: int = 3) -> Verdict:
    return Verdict(model, sha, p, "spoof" if p >= 0.5 else "bonafide", p, 0, [], 0.0)


def quality(*codes: str, too_short: bool = False) -> InputQuality:
    warnings = tuple(QualityWarning(c, c, 1.0, 2.0) for c in codes)
    return InputQuality(6.0, 16_000, "FLAC", 8000.0, None, False, 0.0, 4.0, 0.67, 40.0,
                        None, warnings, too_short)  # fmt: skip


@pytest.fixture
def calibration(tmp_path):
    p, y = two_point_set()
    rng = np.random.default_rng(0)
    q = np.clip(p + rng.normal(0, 0.05, p.size), 0.01, 0.99)
    cal = fit_calibration_file(
        {"a": p, "b": q}, y, weights_sha256={"a": "w" * 64, "b": "w" * 64},
        fitted_on={"n": 8}, max_error=0.3,
    )  # fmt: skip
    cal = CalibrationFile(cal.models, cal.fusion, cal.fitted_on, cal.version, {"low_snr": 1.0})
    path = tmp_path / "calibration.json"
    cal.save(path)
    return path


def test_combined_verdict_bands_disagreement_and_left_out_models(calibration):
    cal, problem = load_calibration(calibration)
    assert problem is None and cal.widen == {"low_snr": 1.0}
    sure = combine({"a": verdict("a", 0.99), "b": verdict("b", 0.99)}, quality(), cal)
    assert sure.band == "likely_spoof" and not sure.models_disagree and sure.models == ("a", "b")
    assert sure.p_spoof == pytest.approx(cal.fusion.apply({"a": 0.99, "b": 0.99}))
    split = combine({"a": verdict("a", 0.99), "b": verdict("b", 0.01)}, quality(), cal)
    assert split.models_disagree
    # a model whose weights changed is left out and says so; the other's fit is used
    changed = combine({"a": verdict("a", 0.99), "b": verdict("b", 0.99, sha="x" * 64)},
                      quality(), cal)  # fmt: skip
    assert changed.models == ("a",) and any("weights changed" in r for r in changed.reasons)
    # too little speech: never a confident band, whatever the score
    short = combine({"a": verdict("a", 0.99), "b": verdict("b", 0.99)}, quality(too_short=True), cal)
    assert short.band == "too_short" and not short.confident
    # a warning measured to hurt widens the band by its log-odds
    noisy = combine({"a": verdict("a", 0.5), "b": verdict("b", 0.5)}, quality("low_snr"), cal)
    assert noisy.widen == 1.0
    plain = combine({"a": verdict("a", 0.5), "b": verdict("b", 0.5)}, quality(), cal)
    assert noisy.hi > plain.hi and noisy.lo < plain.lo


def test_a_changed_calibration_file_is_refused(calibration):
    calibration.write_text(calibration.read_text().replace('"version": 1', '"version": 1 '))
    cal, problem = load_calibration(calibration)
    assert cal is None and "refused" in problem
    c = combine({"a": verdict("a", 0.99)}, quality(), cal, calibration_problem=problem)
    assert c.band == "uncalibrated" and c.p_spoof is None and "refused" in c.reasons[0]
    with pytest.raises(CalibrationFileError):
        CalibrationFile.load(calibration)


def test_pooled_fit_is_the_fit_on_clean_and_degraded_dev_concatenated(monkeypatch):
    """calibrate --pool: one fit on every condition's dev scores, labels repeated"""
    import types

    from core.audio.protocol import ProtocolEntry
    from core.training import calibrate

    p, y = two_point_set()
    entries = [ProtocolEntry("S", f"F{i}", "M01" if k else "-", "spoof" if k else "bonafide", i + 1)
               for i, k in enumerate(y)]  # fmt: skip
    rng = np.random.default_rng(1)
    noisy = np.clip(p + rng.normal(0, 0.2, p.size), 0.01, 0.99)
    by_condition = {"clean": p, "noise:10db": noisy}
    monkeypatch.setattr(
        calibrate, "cached_outputs",
        lambda det, ents, d, cond="clean", **kw: (
            by_condition[cond] * (1 if det.k == "a" else 0.9), None),
    )  # fmt: skip
    det = {k: types.SimpleNamespace(k=k, spec=types.SimpleNamespace(sha256=k * 64)) for k in "ab"}
    cal = calibrate.fit(det, entries, ".", degrade=(), pool=("clean", "noise:10db"), log=lambda *a: None)
    want = fit_calibration_file(
        {"a": np.concatenate([p, noisy]), "b": 0.9 * np.concatenate([p, noisy])},
        np.concatenate([y, y]), weights_sha256={"a": "a" * 64, "b": "b" * 64}, fitted_on={},
    )  # fmt: skip
    for subset, f in want.fusion.subsets.items():
        got = cal.fusion.subsets[subset]
        assert np.allclose(got.weights, f.weights) and got.bias == pytest.approx(f.bias)
        assert got.bands == f.bands
    assert cal.fitted_on["pool"] == ["clean", "noise:10db"]
    assert (cal.fitted_on["n_bonafide"], cal.fitted_on["n_spoof"]) == (4, 4)  # dev files, once
    # clean only (the default) is a different fit
    clean = calibrate.fit(det, entries, ".", degrade=(), log=lambda *a: None)
    assert not np.allclose(clean.fusion.subsets[("a",)].weights, cal.fusion.subsets[("a",)].weights)


def test_each_attack_is_scored_by_a_fusion_fitted_without_it():
    from core.audio.protocol import ProtocolEntry
    from core.judgement.calibration import as_labels, cllr_from_llr
    from core.training.held_out import attack_folds, held_out_attacks, held_out_llr

    rng = np.random.default_rng(3)
    entries, shift = [], {"A1": 3.0, "A2": 2.5, "A3": 0.0}  # A3 looks bona fide
    for s in range(6):
        entries += [ProtocolEntry(f"b{s}", f"B{s}{i}", "-", "bonafide", 0) for i in range(4)]
    for a in shift:
        entries += [ProtocolEntry("tts", f"{a}{i}", a, "spoof", 0) for i in range(8)]
    lo = np.array([shift.get(e.system, 0.0) for e in entries])
    scores = {m: np.tile(expit(lo + rng.normal(0, 1, lo.size)), 2) for m in ("m1", "m2")}  # 2 conditions

    fold, attacks = attack_folds(entries, seed=0)
    assert attacks == ["A1", "A2", "A3"]
    for f, a in enumerate(attacks):  # each fold: its attack and two whole bona fide speakers
        members = [e for e, k in zip(entries, fold) if k == f]
        assert {e.system for e in members if e.key == "spoof"} == {a}
        assert len({e.speaker for e in members if e.key == "bonafide"}) == 2
    llr, y = held_out_llr(scores, entries, seed=0)
    y1 = as_labels([e.key for e in entries])
    for f in range(3):
        out = np.tile(fold == f, 2)
        fused = fit_fusion({m: s[~out] for m, s in scores.items()}, np.tile(y1, 2)[~out])
        assert np.allclose(llr[out], fused.select(("m1", "m2")).llr({m: s[out] for m, s in scores.items()}))
    # fitted with A3 in, the fusion is better on the fitting data than any fold on its own
    full = fit_fusion(scores, y).select(("m1", "m2"))
    held = held_out_attacks(scores, entries, seed=0)
    assert held["cllr"] == pytest.approx(cllr_from_llr(llr, y))
    assert held["cllr"] > cllr_from_llr(full.llr(scores), y)


def test_ece_interval_brackets_the_estimate_and_is_exact_where_nothing_varies():
    from core.judgement.calibration import ece, ece_interval

    # every file at 0.9, half of each class: ECE 0.4 whichever files are drawn
    y = np.array([0, 1] * 20)
    assert ece(np.full(40, 0.9), y) == pytest.approx(0.4)
    assert ece_interval(np.full(40, 0.9), y) == pytest.approx((0.4, 0.4))
    # a calibrated score on 300 files: the point estimate lies inside a non-empty
    # interval, and a fixed seed gives the same interval again
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 300)
    y = (rng.uniform(0, 1, 300) < p).astype(int)
    lo, hi = ece_interval(p, y, n_boot=300)
    assert 0.0 <= lo < ece(p, y) < hi < 0.25
    assert ece_interval(p, y, n_boot=300) == (lo, hi)
    assert ece_interval(p, y, n_boot=300, seed=1) != (lo, hi)
