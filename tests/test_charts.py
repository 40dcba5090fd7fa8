"""Chart builders and the report: pure functions on hand-built explanations."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from core import charts, report
from core.detect import Verdict, WindowScore
from core.explain.base import Explanation
from core.features import cqt_frequencies


def make_expl(
    values,
    *,
    target_label="spoof",
    kind="time",
    start=1.0,
    end=5.0,
    dense=None,
    method="shap",
    model="aasist-official",
) -> Explanation:
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    edges = np.linspace(start, end, n + 1)
    bounds = np.stack([edges[:-1], edges[1:]], axis=1)
    if kind == "time-frequency":
        bounds = np.concatenate([bounds, np.tile([[100.0, 1000.0]], (n, 1))], axis=1)
    return Explanation(
        model=model,
        weights_sha256="ab" * 32,
        method=method,
        method_version="1",
        params={"segments": n, "seed": 0},
        target=0 if target_label == "spoof" else 1,
        target_label=target_label,
        window=2,
        window_start=start,
        window_end=end,
        p_target=0.9,
        feature_kind=kind,
        feature_bounds=bounds,
        values=values,
        dense=dense,
        deletion_curve=np.linspace(0.9, 0.1, n + 1),
        deletion_random=np.linspace(0.9, 0.5, n + 1),
        quality={"r2": 0.8, "deletion_auc": 0.3},
        seconds=1.5,
    )


@dataclass(frozen=True)
class FakeAnalysis:
    sha256: str
    filenames: list
    duration: float
    orig_sample_rate: int
    orig_channels: int
    near_silent: bool
    verdicts: dict = field(default_factory=dict)


def fake_verdict(p=0.8) -> Verdict:
    return Verdict(
        model="aasist-official",
        weights_sha256="51d2" + "0" * 60,
        p_spoof=p,
        label="spoof" if p >= 0.5 else "bonafide",
        max_p_spoof=p,
        max_window=0,
        windows=[WindowScore(0.0, 4.0, p), WindowScore(2.0, 6.0, p / 2)],
    )


def test_evidence_is_signed_towards_spoof():
    spoof = make_expl([1.0, -2.0], target_label="spoof")
    bona = make_expl([1.0, -2.0], target_label="bonafide")
    assert charts.spoof_evidence(spoof).tolist() == [1.0, -2.0]
    assert charts.spoof_evidence(bona).tolist() == [-1.0, 2.0]


def test_evidence_colour_ends_and_middle():
    assert charts.evidence_colour(1.0) == charts.SPOOF_RED
    assert charts.evidence_colour(-1.0) == charts.BONAFIDE_BLUE
    assert charts.evidence_colour(0.0) == charts.NEUTRAL
    assert charts.evidence_colour(float("nan")) == charts.NEUTRAL


def test_one_scale_on_every_evidence_chart():
    expl = make_expl([0.5, -0.25, 0.1, 0.0])
    specs = [
        charts.waveform_chart(np.zeros(16_000 * 4, np.float32), offset=1.0, expl=expl),
        charts.segment_chart(expl),
        charts.cqt_chart(np.zeros((432, 251)), cqt_frequencies(), offset=1.0, expl=expl),
    ]
    for chart in specs:
        text = json.dumps(chart.to_dict())
        assert charts.SPOOF_RED in text and charts.BONAFIDE_BLUE in text


def test_compact_segment_chart_has_no_legend_but_keeps_tooltips():
    spec = charts.segment_chart(make_expl([0.5, -0.2, 0.1]), compact=True).to_dict()
    assert spec["encoding"]["color"]["legend"] is None
    assert any(t.get("title") == "evidence for spoof" for t in spec["encoding"]["tooltip"])


def test_explanation_drawn_only_over_real_audio():
    # a 3 s file in a 4 s window (tiled): the last segment lies past the file's end
    expl = dataclasses.replace(make_expl([1, 2, 3, 4], start=0.0, end=4.0), window_end=3.0)
    seg = charts.segments_frame(expl)
    assert len(seg) == 3 and seg["t1"].max() == 3.0
    assert charts.is_tiled(expl)


def test_segments_frame_time_and_patches():
    seg = charts.segments_frame(make_expl([1, 2, 3]))
    assert list(seg["t0"]) == pytest.approx([1.0, 1 + 4 / 3, 1 + 8 / 3])
    assert seg["f0"].isna().all()
    patches = charts.segments_frame(make_expl([1, 2], kind="time-frequency"))
    assert list(patches["f1"]) == [1000.0, 1000.0]
    assert "Hz" in patches["label"][0]


def test_time_bands_pools_a_dense_only_map():
    dense = np.r_[np.ones(8000), -np.ones(8000)]
    expl = make_expl([], dense=dense, start=0.0, end=1.0, method="gradcam")
    bands = charts.time_bands(expl, cells=4)
    assert len(bands) == 4
    assert bands["evidence"].tolist() == [1.0, 1.0, -1.0, -1.0]


def test_cqt_chart_has_hz_axis_and_tooltips():
    freqs = cqt_frequencies()
    dense = np.random.default_rng(0).normal(size=(432, 401))
    expl = make_expl([], dense=dense, start=0.0, end=6.4, method="gradcam", model="tssd2d")
    d = charts.cqt_chart(np.random.default_rng(1).normal(size=(432, 401)), freqs, expl=expl).to_dict()
    text = json.dumps(d)
    assert '"type": "log"' in text and "frequency (Hz)" in text
    assert "evidence for spoof" in text and "level (dB)" in text
    base = charts.cqt_frame(np.zeros((432, 401)), freqs)
    assert len(base) <= charts.CQT_MAX_BINS * charts.CQT_MAX_FRAMES
    assert base["f0"].min() < 16 and base["f1"].max() > 7000


def test_timeline_accepts_objects_and_dicts():
    v = fake_verdict()
    chart = charts.timeline_chart(
        {"A": v.windows, "B": [w.__dict__ for w in v.windows]}
    )
    data = json.dumps(chart.to_dict())
    assert "P(spoof)" in data and '"model": "B"' in data


def test_agreement_chart_and_deletion_chart_build():
    charts.agreement_chart(["a", "b"], np.array([[1.0, np.nan], [np.nan, 1.0]])).to_dict()
    charts.deletion_chart(make_expl([1, 2, 3])).to_dict()


def test_spearman_and_agreement():
    assert report.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert report.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(report.spearman([1, 1, 1], [1, 2, 3]))
    a = make_expl([1, 2, 3, 4])
    b = make_expl([4, 3, 2, 1], target_label="bonafide")  # = [-4..-1] as spoof evidence
    labels, m, basis = report.agreement({"a": a, "b": b})
    assert "shared segments" in basis
    assert m[0, 1] == pytest.approx(1.0)
    # different windows: compared on the time they share
    c = make_expl([1, 2, 3, 4, 5, 6], start=0.0, end=6.0)
    labels, m, basis = report.agreement({"a": a, "c": c})
    assert "time bins" in basis and np.isfinite(m[0, 1])
    far = make_expl([1, 2, 3], start=10.0, end=12.0)
    assert np.isnan(report.agreement({"a": a, "far": far})[1][0, 1])


def test_time_profile_conserves_evidence():
    expl = make_expl([1.0, 2.0, 3.0, 4.0], start=0.0, end=4.0)
    prof = report.time_profile(expl, np.linspace(0, 4, 9))
    assert prof.sum() == pytest.approx(10.0)


def test_json_and_html_hold_verdicts_and_hashes():
    sha = "f" * 64
    analysis = FakeAnalysis(sha, ["<script>x.wav"], 6.0, 44_100, 2, False,
                            {"aasist-official": fake_verdict()})
    expl = make_expl([0.3, -0.1, 0.2], kind="time-frequency")
    doc = report.analysis_doc(
        analysis, [expl], generated=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    )
    back = json.loads(report.json_bytes(doc))
    assert back["audio"]["sha256"] == sha
    assert back["verdicts"][0]["label"] == "spoof"
    assert back["verdicts"][0]["weights_sha256"].startswith("51d2")
    assert back["explanations"][0]["spoof_evidence"] == [0.3, -0.1, 0.2]
    page = report.html_report(doc)
    assert sha in page and "SPOOF" in page and "51d2" in page
    assert "<script>x.wav" not in page.split('id="analysis-data"')[0]  # escaped
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert "<svg" in page
