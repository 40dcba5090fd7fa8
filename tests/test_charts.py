"""Chart builders: the values each Altair spec carries, on hand-built explanations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from explanations import make_expl, make_verdict

from core.audio.features import cqt_frequencies
from core.detectors.detect import WindowScore
from core.export import charts, colours


def rows(spec: dict, layer: int | None = None) -> list[dict]:
    """the data rows of a chart spec (or of one layer), inline or in ``datasets``"""
    node = spec if layer is None else spec["layer"][layer]
    data = node.get("data") or spec["data"]
    return data["values"] if "values" in data else spec["datasets"][data["name"]]


def test_evidence_colour_ends_middle_and_halfway():
    assert colours.evidence_colour(1.0) == colours.SPOOF_RED
    assert colours.evidence_colour(-1.0) == colours.BONAFIDE_BLUE
    assert colours.evidence_colour(0.0) == colours.NEUTRAL
    assert colours.evidence_colour(float("nan")) == colours.NEUTRAL
    assert colours.evidence_colour(7.0) == colours.SPOOF_RED  # clamped
    # halfway from #f7f7f7 to #b2182b: (247+178)/2, (247+24)/2, (247+43)/2, rounded
    assert colours.evidence_colour(0.5) == "#d48891"


def test_one_scale_on_every_evidence_chart():
    expl = make_expl([0.5, -0.25, 0.1, 0.0])
    specs = [
        charts.waveform_chart(np.zeros(16_000 * 4, np.float32), offset=1.0, expl=expl),
        charts.segment_chart(expl),
        charts.cqt_chart(np.zeros((432, 251)), cqt_frequencies(), offset=1.0, expl=expl),
    ]
    for chart in specs:
        text = json.dumps(chart.to_dict())
        assert colours.SPOOF_RED in text and colours.BONAFIDE_BLUE in text


def test_evidence_scale_is_symmetric_around_zero():
    scale = charts.evidence_scale(0.4).to_dict()
    assert scale["domain"] == [-0.4, 0.0, 0.4]
    assert scale["range"] == [colours.BONAFIDE_BLUE, colours.NEUTRAL, colours.SPOOF_RED]
    assert charts.evidence_scale(float("nan")).to_dict()["domain"] == [-1.0, 0.0, 1.0]
    assert charts.evidence_limit([0.2, -0.7, float("nan")]) == 0.7
    assert charts.evidence_limit([]) == 1.0


def test_compact_segment_chart_has_no_legend_but_keeps_tooltips():
    spec = charts.segment_chart(make_expl([0.5, -0.2, 0.1]), compact=True).to_dict()
    assert spec["encoding"]["color"]["legend"] is None
    assert any(t.get("title") == "evidence for spoof" for t in spec["encoding"]["tooltip"])


def test_segment_chart_bars_time_order_and_strongest_patches_first():
    spec = charts.segment_chart(make_expl([0.5, -0.2], target_label="bonafide")).to_dict()
    bars = rows(spec)
    assert [b["evidence"] for b in bars] == [-0.5, 0.2]  # signed towards spoof
    assert [b["label"] for b in bars] == ["1.00-3.00 s", "3.00-5.00 s"]
    assert spec["encoding"]["x"]["sort"] == ["1.00-3.00 s", "3.00-5.00 s"]
    patches = make_expl([0.1, -0.9, 0.4], kind="time-frequency")
    spec = charts.segment_chart(patches, top=2).to_dict()
    assert [b["evidence"] for b in rows(spec)] == [-0.9, 0.4]
    assert "100 Hz-1.0 kHz" in rows(spec)[0]["label"]


def test_waveform_envelope_values_and_evidence_bands():
    x = np.array([0.1, -0.5, 0.3, 0.2], np.float32)
    spec = charts.waveform_chart(x, offset=2.0, sample_rate=4, points=2).to_dict()
    env = rows(spec, 0)
    assert [r["time"] for r in env] == [2.0, 2.5]
    assert [r["low"] for r in env] == pytest.approx([-0.5, 0.2])
    assert [r["high"] for r in env] == pytest.approx([0.1, 0.3])
    expl = make_expl([1.0, -3.0], start=2.0, end=3.0)
    spec = charts.waveform_chart(x, offset=2.0, sample_rate=4, expl=expl).to_dict()
    bands = rows(spec, 0)  # the evidence is drawn first, behind the waveform
    assert [(b["t0"], b["t1"], b["evidence"], b["strength"]) for b in bands] == [
        (2.0, 2.5, 1.0, 1.0),
        (2.5, 3.0, -3.0, 3.0),
    ]
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == [-3.0, 0.0, 3.0]


def test_cqt_chart_has_hz_axis_and_tooltips():
    freqs = cqt_frequencies()
    dense = np.random.default_rng(0).normal(size=(432, 401))
    expl = make_expl([], dense=dense, start=0.0, end=6.4, method="gradcam", model="tssd2d")
    level = np.random.default_rng(1).normal(size=(432, 401))
    d = charts.cqt_chart(level, freqs, expl=expl).to_dict()
    text = json.dumps(d)
    assert '"type": "log"' in text and "frequency (Hz)" in text
    assert "evidence for spoof" in text and "level (dB)" in text
    n_freq, n_time = charts.evidence.DENSE_TF_CELLS
    assert len(rows(d, 1)) == n_freq * n_time  # the dense map, pooled
    base = charts.cqt_frame(np.zeros((432, 401)), freqs)
    assert len(base) == charts.CQT_MAX_BINS * charts.CQT_MAX_FRAMES
    assert base["f0"].min() < 16 and base["f1"].max() > 7000


def test_cqt_frame_pools_levels_into_block_means():
    spec = np.array([[0.0, 2.0, 4.0, 6.0], [10.0, 12.0, 14.0, 16.0]])
    df = charts.cqt_frame(spec, np.array([100.0, 200.0]), max_frames=2, max_bins=1, hop=160)
    assert df["db"].tolist() == [6.0, 10.0]  # (0+2+10+12)/4, (4+6+14+16)/4
    # frames are 10 ms apart (hop 160): blocks [0, 2) and [2, 4), the first clipped at 0
    assert df["t0"].tolist() == pytest.approx([0.0, 0.015])
    assert df["t1"].tolist() == pytest.approx([0.015, 0.035])


def test_timeline_rows_are_the_verdict_windows():
    v = make_verdict(0.8)
    spec = charts.timeline_chart({"A": v.windows, "B": [WindowScore(0.0, 1.0, 0.1)]}).to_dict()
    # layers: the two verdict zones, the threshold rule, the strokes, the line
    strokes = rows(spec, 3)
    assert [(r["model"], r["start"], r["end"], r["mid"], r["p_spoof"]) for r in strokes] == [
        ("A", 0.0, 4.0, 2.0, 0.8),
        ("A", 2.0, 6.0, 4.0, 0.4),
        ("B", 0.0, 1.0, 0.5, 0.1),
    ]
    assert rows(spec, 2) == [{"y": 0.5}]  # the threshold rule
    assert spec["layer"][3]["encoding"]["x"]["scale"]["domain"] == [0, 6.0]


def test_agreement_chart_cells_show_rho_and_na():
    d = charts.agreement_chart(["a", "b"], np.array([[1.0, np.nan], [0.25, 1.0]])).to_dict()
    cells = {(r["a"], r["b"]): (r["rho"], r["text"]) for r in rows(d)}
    assert cells == {
        ("a", "a"): (1.0, "+1.00"),
        ("a", "b"): (None, "n/a"),
        ("b", "a"): (0.25, "+0.25"),
        ("b", "b"): (1.0, "+1.00"),
    }


def test_deletion_chart_draws_both_curves_over_the_fraction_removed():
    d = charts.deletion_chart(make_expl([1, 2, 3])).to_dict()
    pts = rows(d)
    ours = [(r["removed"], r["p"]) for r in pts if r["order"] == "attribution order"]
    rand = [(r["removed"], r["p"]) for r in pts if r["order"] == "random order (mean)"]
    assert [x for x, _ in ours] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert [p for _, p in ours] == pytest.approx(np.linspace(0.9, 0.1, 4).tolist())
    assert [p for _, p in rand] == pytest.approx(np.linspace(0.9, 0.5, 4).tolist())
    assert d["encoding"]["y"]["title"] == "P(spoof)"


def test_segment_chart_error_bars_span_two_standard_errors_on_the_evidence_sign():
    import dataclasses

    expl = dataclasses.replace(
        make_expl([0.5, -0.2], target_label="bonafide"), uncertainty=np.array([0.05, 0.1])
    )
    spec = charts.segment_chart(expl).to_dict()
    assert [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
            for layer in spec["layer"]] == ["bar", "rule"]  # fmt: skip
    bars = rows(spec, 1)
    assert [b["evidence"] for b in bars] == [-0.5, 0.2]
    assert [b["lo"] for b in bars] == pytest.approx([-0.6, 0.0])
    assert [b["hi"] for b in bars] == pytest.approx([-0.4, 0.4])
    assert [b["se"] for b in bars] == pytest.approx([0.05, 0.1])
    # exact values (zero error) and methods without one: plain bars
    exact = dataclasses.replace(expl, uncertainty=np.zeros(2))
    assert "layer" not in charts.segment_chart(exact).to_dict()
    assert "layer" not in charts.segment_chart(make_expl([0.5, -0.2])).to_dict()
