import numpy as np
import pytest

from core.corpus.summary import (
    attack_profiles,
    frequency_edges,
    frequency_profile,
    per_attack_eer,
    summarise,
    time_profile,
)


def test_time_profile_by_hand():
    # window 10-14 s, two segments: [10, 12] s value 3, [12, 14] s value -1
    bounds = np.array([[10.0, 12.0], [12.0, 14.0]])
    prof = time_profile(bounds, np.array([3.0, -1.0]), 10.0, 14.0, "spoof", n_bins=4)
    # L1-normalised: 0.75 and -0.25, each spread evenly over the two bins it covers
    np.testing.assert_allclose(prof, [0.375, 0.375, -0.125, -0.125])


def test_bonafide_target_is_flipped_to_spoof_evidence():
    bounds = np.array([[0.0, 1.0], [1.0, 2.0]])
    a = time_profile(bounds, np.array([2.0, 1.0]), 0.0, 2.0, "spoof", n_bins=2)
    b = time_profile(bounds, np.array([-2.0, -1.0]), 0.0, 2.0, "bonafide", n_bins=2)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, [2 / 3, 1 / 3])


def test_segment_straddling_bins_is_split_by_overlap():
    bounds = np.array([[0.0, 3.0]])  # covers bins [0,2) fully and half of [2,4)
    prof = time_profile(bounds, np.array([1.0]), 0.0, 4.0, "spoof", n_bins=2)
    np.testing.assert_allclose(prof, [2 / 3, 1 / 3])


def test_frequency_profile_by_hand():
    edges = frequency_edges(2)  # two log-spaced bands over the CQT range
    lo_band = [0, 1, edges[0], edges[1]]
    hi_band = [0, 1, edges[1], edges[2]]
    prof = frequency_profile(np.array([lo_band, hi_band, hi_band]), np.array([1.0, 2.0, 1.0]),
                             "spoof", n_bands=2)
    np.testing.assert_allclose(prof, [0.25, 0.75])


def test_attack_profiles_average_over_files():
    def rec(system, vals):
        return dict(model="m", method="shap", system=system, target_label="spoof",
                    window_start=0.0, window_end=2.0, feature_kind="time",
                    feature_bounds=np.array([[0.0, 1.0], [1.0, 2.0]]), values=np.array(vals))

    profs = attack_profiles([rec("A01", [1, 0]), rec("A01", [0, 1]), rec("A02", [1, 1])], n_bins=2)
    by = {p.system: p for p in profs}
    np.testing.assert_allclose(by["A01"].time, [0.5, 0.5])
    assert by["A01"].n_files == 2 and by["A01"].frequency is None
    np.testing.assert_allclose(by["A02"].time, [0.5, 0.5])


def test_per_attack_eer_by_hand():
    rows = [dict(model="m", system="-", key="bonafide", score=s) for s in (0.1, 0.2, 0.3, 0.9)]
    rows += [dict(model="m", system="A01", key="spoof", score=s) for s in (0.8, 0.95)]
    rows += [dict(model="m", system="A02", key="spoof", score=s) for s in (0.05, 0.15)]
    table = {r["system"]: r for r in per_attack_eer(rows)}
    # A01: one bona fide (0.9) above one of the two spoofs -> rates 1/4 vs 1/2 or 1/4 vs 0
    assert table["A01"]["eer_percent"] == pytest.approx(12.5)
    # A02 spoofs sit below most bona fide: EER high
    assert table["A02"]["eer_percent"] >= 50
    assert table["all"]["n_spoof"] == 4 and table["all"]["n_bonafide"] == 4


def test_summary_exports_csv_and_json():
    rows = [dict(model="m", system="-", key="bonafide", score=0.1),
            dict(model="m", system="A01", key="spoof", score=0.9)]
    s = summarise(rows, [])
    assert s.eer_csv().splitlines()[0] == "model,system,eer_percent,n_bonafide,n_spoof"
    assert s.to_json()["eer"][0]["eer_percent"] == 0.0
