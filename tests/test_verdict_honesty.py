"""A combined verdict that knows when it does not know: held-out sources choose the bands,
disagreement and unfamiliar audio widen them by measured amounts, user models are fused
only once calibrated, and the unfamiliarity measure sees what it was built to see."""

from __future__ import annotations

import types

import numpy as np
import pytest
from scipy.special import expit

from core.audio.protocol import ProtocolEntry
from core.detectors.detect import Verdict
from core.judgement.calibration import widened
from core.judgement.calibration_file import CalibrationFile, fit_calibration_file
from core.judgement.combined import combine
from core.judgement.familiarity import Familiarity, FamiliarityError, fit_gaussian, unfamiliarity
from core.training import calibrate
from core.training.calibrate import DevSet


def verdict(model: str, p: float, sha: str = "w" * 64, embedding=None) -> Verdict:
    return Verdict(model, sha, p, "spoof" if p >= 0.5 else "bonafide", p, 0, [], 0.0,
                   embedding=embedding)  # fmt: skip


def _cal(widen: dict, familiarity: dict | None = None, models=("a", "b")) -> CalibrationFile:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    raw = {m: expit(3 * (2 * y - 1) + rng.normal(0, 1.5, y.size)) for m in models}
    cal = fit_calibration_file(raw, y, weights_sha256={m: "w" * 64 for m in models},
                               fitted_on={}, max_error=0.05)  # fmt: skip
    return CalibrationFile(cal.models, cal.fusion, cal.fitted_on, cal.version, widen,
                           familiarity or {})  # fmt: skip


def test_disagreement_widens_the_band_by_the_measured_amount_and_says_so():
    cal = _cal({"models_disagree": 2.0})
    bands = cal.fusion.select(("a", "b")).bands
    agree = combine({"a": verdict("a", 0.97), "b": verdict("b", 0.97)}, None, cal)
    split = combine({"a": verdict("a", 0.999), "b": verdict("b", 0.2)}, None, cal)
    assert not agree.models_disagree and agree.widen == 0.0 and agree.warnings == ()
    assert split.models_disagree and split.widen == pytest.approx(2.0)
    (w,) = split.warnings
    assert w["code"] == "models_disagree" and "The models disagree" in w["message"]
    assert w["unit"] and "stronger evidence" in w["message"]
    assert split.hi == pytest.approx(widened(bands, 2.0).hi)
    # the same fused score without the widening would have been confident
    unwidened = _cal({})
    plain = combine({"a": verdict("a", 0.999), "b": verdict("b", 0.2)}, None, unwidened)
    assert plain.widen == 0.0 and split.hi > plain.hi
    assert "widened" not in " ".join(split.reasons + (w["message"],))  # plain words only


def test_a_user_model_is_left_out_with_its_reason_until_calibrate_includes_it():
    before = _cal({}, models=("a", "b"))
    verdicts = {"a": verdict("a", 0.9), "b": verdict("b", 0.9), "mine": verdict("mine", 0.9)}
    c = combine(verdicts, None, before)
    assert c.models == ("a", "b")
    assert c.left_out == {"mine": "not in the combined verdict: run python -m core calibrate"}
    after = _cal({}, models=("a", "b", "mine"))
    c2 = combine(verdicts, None, after)
    assert c2.models == ("a", "b", "mine") and c2.left_out == {}
    assert c2.to_json()["left_out"] == {}


def _fake_outputs(monkeypatch, table):
    """cached_outputs served from table[(model, set name, condition)] = (scores, embeddings)"""

    def fake(det, entries, audio_dir, condition="clean", *, progress=True, cache_dir=None,
             embeddings=False):  # fmt: skip
        s, e = table[(det.k, str(audio_dir), condition)]
        return s[: len(entries)], (e[: len(entries)] if embeddings else None)

    monkeypatch.setattr(calibrate, "cached_outputs", fake)


def _sources_case(monkeypatch):
    """three sources; the models separate two of them and are wrong on the third"""
    rng = np.random.default_rng(4)
    sets, table = [], {}
    for name, sep in (("s1", 4.0), ("s2", 4.0), ("s3", -1.0)):
        y = np.repeat([0, 1], 30)
        entries = [ProtocolEntry(name, f"{name}{i}", "-" if k == 0 else "X", "spoof" if k else
                                 "bonafide", i) for i, k in enumerate(y)]  # fmt: skip
        sets.append(DevSet(name, entries, name))
        for m in ("a", "b"):
            s = expit(sep * (2 * y - 1) / 2 + rng.normal(0, 1, y.size))
            table[(m, name, "clean")] = (s, rng.normal(0, 1, (y.size, 4)))
    dets = {m: types.SimpleNamespace(k=m, spec=types.SimpleNamespace(sha256=m * 64))
            for m in ("a", "b")}  # fmt: skip
    _fake_outputs(monkeypatch, table)
    return dets, sets


def test_bands_come_from_held_out_sources_and_the_numbers_per_source_are_written(monkeypatch):
    dets, sets = _sources_case(monkeypatch)
    report: dict = {}
    held = calibrate.fit(dets, sets, degrade=(), report=report, log=lambda *a: None)
    # in-sample bands (every source seen by the fit) against held-out-source bands
    y = np.concatenate([[e.key == "spoof" for e in d.entries] for d in sets]).astype(int)
    scores = {m: np.concatenate([calibrate.cached_outputs(dets[m], d.entries, d.audio_dir)[0]
                                 for d in sets]) for m in ("a", "b")}  # fmt: skip
    insample = fit_calibration_file(scores, y, weights_sha256={m: m * 64 for m in "ab"},
                                    fitted_on={}, max_error=0.05)  # fmt: skip
    b_held = held.fusion.select(("a", "b")).bands
    b_in = insample.fusion.select(("a", "b")).bands
    assert b_held.hi >= b_in.hi and b_held.lo <= b_in.lo and b_held != b_in
    assert set(report["held_out_sources"]) == {"s1", "s2", "s3"}
    s3 = report["held_out_sources"]["s3"]
    assert s3["n"] == 60 and s3["eer"] > 0.3  # the source the models get wrong
    assert report["held_out_sources"]["s1"]["eer"] < 0.2
    assert held.fitted_on["sources"] == ["s1", "s2", "s3"]


def test_familiarity_gaussian_distance_save_and_checksum(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (500, 6)) @ np.diag([1, 2, 3, 0.5, 1, 1]) + 5
    g = fit_gaussian(train)
    assert np.median(g.distance(train)) == pytest.approx(0.95, abs=0.15)  # ~1 per dimension
    far = train[:10] + 20
    assert (g.distance(far) > 5).all()
    fam = Familiarity({"m": ("s" * 64, g)})
    sha = fam.save(tmp_path / "f.npz")
    back = Familiarity.load(tmp_path / "f.npz", sha)
    d = back.distances({"m": tuple(far[0])}, {"m": "s" * 64})
    assert d["m"] == pytest.approx(float(g.distance(far[0])))
    assert back.distances({"m": tuple(far[0])}, {"m": "other"}) == {}  # other weights: no
    with pytest.raises(FamiliarityError, match="does not match"):
        Familiarity.load(tmp_path / "f.npz", "0" * 64)
    assert unfamiliarity({"m": 3.0, "n": 1.0}, {"m": 1.5, "n": 2.0}) == pytest.approx(2.0)
    assert unfamiliarity({}, {"m": 1.0}) is None
    with pytest.raises(ValueError):
        fit_gaussian(train[:5])


def test_unfamiliar_audio_widens_and_warns_with_value_and_threshold():
    rng = np.random.default_rng(1)
    g = fit_gaussian(rng.normal(0, 1, (300, 4)))
    fam = Familiarity({"a": ("w" * 64, g), "b": ("w" * 64, g)})
    cal = _cal({"unfamiliar_audio": 3.0}, {"scale": {"a": 1.5, "b": 1.5}, "threshold": 1.2,
                                           "sha256": "x", "file": "f.npz"})  # fmt: skip
    near, far = (0.1, 0.0, -0.2, 0.1), (9.0, 9.0, 9.0, 9.0)
    ok = combine({"a": verdict("a", 0.99, embedding=near), "b": verdict("b", 0.99, embedding=near)},
                 None, cal, familiarity=fam)  # fmt: skip
    odd = combine({"a": verdict("a", 0.99, embedding=far), "b": verdict("b", 0.99, embedding=far)},
                  None, cal, familiarity=fam)  # fmt: skip
    assert ok.unfamiliarity < 1.2 and ok.widen == 0.0 and ok.warnings == ()
    assert odd.unfamiliarity > 1.2 and odd.widen == pytest.approx(3.0)
    (w,) = odd.warnings
    assert w["code"] == "unfamiliar_audio" and w["threshold"] == 1.2
    assert f"{odd.unfamiliarity:.2f}" in w["message"] and "1.20" in w["message"]
    # a verdict stored before embeddings were recorded: not measured, not flagged
    old = combine({"a": verdict("a", 0.99), "b": verdict("b", 0.99)}, None, cal, familiarity=fam)
    assert old.unfamiliarity is None and old.warnings == ()


# ------------------------------------------------- the shipped measure on constructed inputs


@pytest.fixture(scope="module")
def shipped_familiarity():
    from core.engine.service import get_detector
    from core.judgement.assessment import load_calibration, load_familiarity

    cal, problem = load_calibration()
    assert problem is None, problem
    fam, problem = load_familiarity(cal)
    assert fam is not None, problem or "the shipped calibration has no familiarity measure"
    keys = sorted(k for k in cal.models if k in fam.models)
    dets = {k: get_detector(k) for k in keys}

    def score(samples: np.ndarray) -> float:
        emb = {k: d.score(samples.astype(np.float32)).embedding for k, d in dets.items()}
        dist = fam.distances(emb, {k: d.spec.sha256 for k, d in dets.items()})
        return unfamiliarity(dist, cal.familiarity["scale"])

    return score, float(cal.familiarity["threshold"])


def _dev_bona_fide(minispoof_dir, n):
    from core.audio.decode import load_audio
    from core.audio.protocol import parse_protocol

    entries = parse_protocol(minispoof_dir / "protocols" / "minispoof.dev.txt")
    bona = [e for e in entries if not e.is_spoof][:n]
    return [load_audio(minispoof_dir / "flac" / f"{e.file_id}.flac").samples for e in bona]


def _octave_up(x: np.ndarray) -> np.ndarray:
    """pitch up an octave, same duration: stretch to twice the length, then half the rate"""
    import soxr

    from core.training.vocode import phase_vocoder_stretch

    long = phase_vocoder_stretch(x, 0.5)
    return soxr.resample(long, 32_000, 16_000).astype(np.float32)[: len(x)]


def test_chords_and_white_noise_are_unfamiliar(shipped_familiarity):
    score, threshold = shipped_familiarity
    t = np.arange(4 * 16_000) / 16_000
    chord = sum(0.15 * np.sin(2 * np.pi * f * h * t) / h
                for f in (261.6, 329.6, 392.0) for h in (1, 2, 3))  # C major, 3 harmonics
    noise = np.random.default_rng(0).normal(0, 0.05, t.size)
    got = {"chords": score(chord), "white noise": score(noise)}
    assert all(v > threshold for v in got.values()), (got, threshold)


@pytest.mark.xfail(strict=True, reason="known gap (measured 0.77 against a threshold of 1.10): "
                   "the mean window embedding of speech an octave up stays near training speech")
def test_speech_an_octave_up_is_unfamiliar(shipped_familiarity, minispoof_dir):
    score, threshold = shipped_familiarity
    speech = _dev_bona_fide(minispoof_dir, 1)[0]
    assert score(_octave_up(speech)) > threshold


def test_dev_bona_fide_is_mostly_familiar(shipped_familiarity, minispoof_dir):
    score, threshold = shipped_familiarity
    values = [score(x) for x in _dev_bona_fide(minispoof_dir, 20)]
    assert np.mean(np.array(values) <= threshold) >= 0.8, (values, threshold)


def test_calibrate_fits_the_familiarity_measure_and_its_widening(monkeypatch, tmp_path):
    """training embeddings -> Gaussians; threshold flags <= 5 % of clean dev; npz saved"""
    dets, sets = _sources_case(monkeypatch)
    table = {}
    rng = np.random.default_rng(7)
    for d in sets:  # dev embeddings: most near training, the third source far away
        y = np.array([e.key == "spoof" for e in d.entries], dtype=int)
        for m in ("a", "b"):
            s = calibrate.cached_outputs(dets[m], d.entries, d.audio_dir)[0]
            shift = 6.0 if d.name == "s3" else 0.0
            table[(m, d.name, "clean")] = (s, rng.normal(shift, 1, (y.size, 4)))
    train = [ProtocolEntry("t", f"T{i}", "-", "bonafide", i) for i in range(200)]
    for m in ("a", "b"):
        table[(m, "train", "clean")] = (np.full(200, 0.1), rng.normal(0, 1, (200, 4)))
    _fake_outputs(monkeypatch, table)
    out = tmp_path / "familiarity.npz"
    cal = calibrate.fit(dets, sets, degrade=(), familiarity_sets=[(train, "train")],
                        familiarity_out=out, log=lambda *a: None)  # fmt: skip
    f = cal.familiarity
    assert f["file"] == "familiarity.npz" and set(f["scale"]) == {"a", "b"}
    assert f["dev_flagged_share"]["clean"] <= 0.05 + 1e-9
    fam = Familiarity.load(out, f["sha256"])
    assert set(fam.models) == {"a", "b"} and fam.models["a"][1].n_train == 200
    far = combine({m: verdict(m, 0.9, sha=m * 64, embedding=(9.0,) * 4) for m in "ab"},
                  None, cal, familiarity=fam)  # fmt: skip
    assert far.unfamiliarity > f["threshold"] and far.warnings[0]["code"] == "unfamiliar_audio"
