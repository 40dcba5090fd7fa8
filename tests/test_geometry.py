"""core.explain.geometry and core.explain.agreement, against hand-computed values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from explanations import make_expl

from core.audio.features import cqt_frequencies
from core.explain import agreement as agr
from core.explain import geometry as geo

PATCHES = [[0, 1, 100, 500], [0, 1, 500, 1000], [1, 2, 100, 500], [1, 2, 500, 1000]]


# ---------------------------------------------------------------------------- sign


def test_evidence_is_signed_towards_spoof():
    spoof = make_expl([1.0, -2.0], target_label="spoof")
    bona = make_expl([1.0, -2.0], target_label="bonafide", dense=np.array([0.5, -1.0]))
    assert geo.spoof_evidence(spoof).tolist() == [1.0, -2.0]
    assert geo.spoof_evidence(bona).tolist() == [-1.0, 2.0]
    assert geo.spoof_dense(bona).tolist() == [-0.5, 1.0]
    assert geo.spoof_dense(spoof) is None


# ------------------------------------------------------------------------ features


def test_features_stop_at_the_real_audio_of_a_tiled_window():
    # a 2.5 s file in a 4 s window: the last feature lies past the end, one is cut
    expl = dataclasses.replace(make_expl([1, 2, 3, 4], start=0.0, end=4.0), window_end=2.5)
    f = geo.features(expl)
    assert f.index.tolist() == [0, 1, 2]
    assert f.t0.tolist() == [0.0, 1.0, 2.0] and f.t1.tolist() == [1.0, 2.0, 2.5]
    assert np.isnan(f.f0).all() and not f.has_frequency
    assert f.labels() == ["0.00-1.00 s", "1.00-2.00 s", "2.00-2.50 s"]
    assert geo.is_tiled(expl)
    assert not geo.is_tiled(make_expl([1, 2, 3, 4], start=0.0, end=4.0))


def test_features_of_patches_keep_frequency_and_both_signs():
    expl = make_expl([1, -2, 3, 4], kind="time-frequency", target_label="bonafide",
                     bounds=PATCHES, start=0.0, end=2.0)  # fmt: skip
    f = geo.features(expl)
    assert f.has_frequency and f.f1.tolist() == [500, 1000, 500, 1000]
    assert f.value.tolist() == [-1, 2, -3, -4] and f.raw.tolist() == [1, -2, 3, 4]
    assert f.labels()[1] == "0.00-1.00 s · 500 Hz-1.0 kHz"


def test_flat_bounds_are_reshaped_by_feature_kind():
    expl = make_expl([1, 2], kind="time-frequency", bounds=np.ravel(PATCHES[:2]))
    assert geo.feature_bounds(expl).shape == (2, 4)


def test_strongest_ranks_by_magnitude_ties_in_position_order():
    assert geo.strongest([0.1, -3.0, 2.0, 3.0]).tolist() == [1, 3, 2, 0]
    assert geo.strongest([0.1, -3.0, 2.0, 3.0], 2).tolist() == [1, 3]


def test_labels_in_hz_and_khz():
    assert geo.feature_label(1.0, 1.25) == "1.00-1.25 s"
    assert geo.feature_label(1.0, 1.25, 100.0, 1500.0) == "1.00-1.25 s · 100 Hz-1.5 kHz"


# --------------------------------------------------------------------------- grids


def test_pool_edges_give_near_equal_non_empty_cells():
    assert geo.pool_edges(10, 4).tolist() == [0, 2, 5, 7, 10]
    assert geo.pool_edges(3, 10).tolist() == [0, 1, 2, 3]  # never more cells than items


def test_block_means():
    grid = np.arange(12.0).reshape(3, 4)
    m = geo.block_means(grid, np.array([0, 1, 3]), np.array([0, 2, 4]))
    # row 0: (0+1)/2, (2+3)/2; rows 1-2: (4+5+8+9)/4, (6+7+10+11)/4
    assert m.tolist() == [[0.5, 2.5], [6.5, 8.5]]


def test_cqt_bin_edges_lie_half_a_bin_either_side():
    half = 2.0 ** (1 / 96)  # 48 bins per octave: half a bin is 1/96 octave
    edges = geo.cqt_bin_edges(np.array([100.0, 200.0]))
    assert edges.tolist() == pytest.approx([100 / half, 200 / half, 200 * half])


def test_frame_spans_reach_half_a_hop_either_side():
    # hop 256 at 16 kHz = 16 ms: frame j is centred on 1.0 + 0.016 j
    t0, t1 = geo.frame_spans(np.array([0, 2, 4]), start=1.0, hop=256)
    assert t0.tolist() == pytest.approx([1.0, 1.024])  # 0.992 clipped to the start
    assert t1.tolist() == pytest.approx([1.024, 1.056])


def test_grid_cells_carry_time_and_frequency_spans():
    grid = np.array([[1.0, 3.0, 5.0, 7.0], [1.0, 1.0, 1.0, 1.0]])
    c = geo.grid_cells(grid, np.array([10.0, 20.0, 40.0]), start=0.0, hop=160,
                       max_rows=2, max_cols=2)  # fmt: skip
    assert c.value.tolist() == [2.0, 6.0, 1.0, 1.0]  # bins outer, time blocks inner
    assert c.f0.tolist() == [10.0, 10.0, 20.0, 20.0]
    assert c.f1.tolist() == [20.0, 20.0, 40.0, 40.0]
    assert c.t0.tolist() == pytest.approx([0.0, 0.015, 0.0, 0.015])


# ---------------------------------------------------------------------- collapsing


def test_time_bands_sum_patches_over_frequency():
    expl = make_expl([1, 2, 3, -5], kind="time-frequency", bounds=PATCHES, start=0.0, end=2.0)
    b = geo.time_bands(expl)
    assert (b.t0.tolist(), b.t1.tolist(), b.value.tolist()) == ([0, 1], [1, 2], [3, -2])
    assert not b.has_frequency


def test_time_bands_pool_a_dense_waveform_map():
    dense = np.r_[np.ones(8000), -np.ones(8000)]
    expl = make_expl([], dense=dense, start=0.0, end=1.0, method="gradcam")
    b = geo.time_bands(expl, cells=4)
    assert b.value.tolist() == [1.0, 1.0, -1.0, -1.0]
    assert b.t0.tolist() == [0.0, 0.25, 0.5, 0.75]


def test_time_bands_of_a_cqt_map_sum_bins_per_frame_until_the_window_ends():
    dense = np.array([[1.0, 2, 3, 4, 5, 9], [1, 0, 0, 0, -5, 9]])
    # frames are 16 ms apart; a window ending at 0.08 s has 5 of the 6 frames
    expl = make_expl([], dense=dense, start=0.0, end=0.08, method="gradcam",
                     target_label="bonafide")  # fmt: skip
    b = geo.time_bands(expl)
    assert b.value.tolist() == [-2.0, -2.0, -3.0, -4.0, 0.0]
    assert b.t1.tolist() == pytest.approx([0.016, 0.032, 0.048, 0.064, 0.08])


def test_time_frequency_cells_span_the_cqt_range():
    freqs = cqt_frequencies()
    fe = geo.cqt_bin_edges(freqs)
    segs = geo.time_frequency_cells(make_expl([1.0, 2.0]), freqs)
    assert segs.f0.tolist() == [fe[0]] * 2 and segs.f1.tolist() == [fe[-1]] * 2
    wide = make_expl([1.0], kind="time-frequency", bounds=[[0, 1, 1.0, 1e5]],
                     start=0.0, end=1.0)  # fmt: skip
    cell = geo.time_frequency_cells(wide, freqs)
    assert (cell.f0[0], cell.f1[0]) == (fe[0], fe[-1])  # clipped to the bins' range
    assert len(geo.time_frequency_cells(make_expl([]), freqs)) == 0


def test_spread_conserves_what_lies_inside_the_grid():
    assert geo.spread([0.0], [2.0], [4.0], [0, 1, 2, 3]).tolist() == [2.0, 2.0, 0.0]
    assert geo.spread([-1.0], [1.0], [2.0], [0, 1]).tolist() == [1.0]  # half outside
    assert geo.spread([1.0], [1.0], [5.0], [0, 2]).tolist() == [0.0]  # empty extent


def test_time_profile_conserves_evidence():
    expl = make_expl([1.0, 2.0, 3.0, 4.0], start=0.0, end=4.0)
    prof = geo.time_profile(expl, np.linspace(0, 4, 9))
    assert prof.tolist() == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5, 2.0, 2.0]


# ----------------------------------------------------------------------- agreement


def test_spearman_by_hand():
    # ranks differ by d = (0, -1, 1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert agr.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert agr.spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert agr.spearman([1, 2, np.nan, 3], [1, 2, 9, 3]) == pytest.approx(1.0)
    assert np.isnan(agr.spearman([1, 1, 1], [1, 2, 3]))  # constant
    assert np.isnan(agr.spearman([1, 2], [1, 2]))  # fewer than 3


def test_agreement_on_shared_segments_compares_spoof_evidence():
    a = make_expl([1, 2, 3, 4])
    b = make_expl([4, 3, 2, 1], target_label="bonafide")  # = [-4..-1] as spoof evidence
    labels, m, basis = agr.agreement({"a": a, "b": b})
    assert labels == ["a", "b"] and basis == "their 4 shared segments"
    assert m == pytest.approx(np.ones((2, 2)))


def test_agreement_on_a_common_time_grid():
    a = make_expl([1, 2, 3, 4])  # 1..5 s
    c = make_expl([6, 5, 4, 3, 2, 1], start=0.0, end=6.0)
    assert agr.common_edges([a, c], bins=4).tolist() == [1, 2, 3, 4, 5]
    labels, m, basis = agr.agreement({"a": a, "c": c}, bins=4)
    assert basis == "4 time bins over the audio each pair has in common"
    assert m[0, 1] == pytest.approx(-1.0)  # rising against falling over 1..5 s
    far = make_expl([1, 2, 3], start=10.0, end=12.0)
    assert np.isnan(agr.agreement({"a": a, "far": far})[1][0, 1])
    brief = make_expl([1, 2, 3], start=4.8, end=7.0)  # 0.2 s in common
    assert agr.common_edges([a, brief]) is None


def test_same_features_and_mean_offdiagonal():
    a, b = make_expl([1, 2]), make_expl([3, 4])
    assert agr.same_features([a, b])
    assert not agr.same_features([a, make_expl([1, 2], end=6.0)])
    assert not agr.same_features([make_expl([]), make_expl([])])
    m = np.array([[1, 0.5, np.nan], [0.5, 1, 0.2], [np.nan, 0.2, 1]])
    assert agr.mean_offdiagonal(m) == pytest.approx(0.35)
    assert np.isnan(agr.mean_offdiagonal(np.ones((1, 1))))
    assert agr.agreement({})[2] == "nothing to compare"
