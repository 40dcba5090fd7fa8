"""Every chart draws: its size, its data and its colours, read from the Altair spec.

Streamlit sizes a chart without ``autosize`` to the height it is given *including* axes,
titles and legends, so long labels or a legend squeezed the plot of the segment chart to
0 px and the faithfulness chart to 14 px (measured in Chromium). Every builder now states
``fit-x`` and its height is the plot's. tests/test_browser_layout.py measures the pixels.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from explanations import make_expl, make_verdict

from core.audio.features import cqt_frequencies
from core.corpus.summary import AttackProfile, CorpusSummary
from core.export import charts, colours, corpus_charts

FIT_X = {"type": "fit-x", "contains": "padding"}


def layer_with(spec: dict, mark: str) -> dict:
    """the first layer drawn with this mark type"""
    for layer in spec["layer"]:
        m = layer["mark"]
        if (m if isinstance(m, str) else m["type"]) == mark:
            return layer
    raise AssertionError(f"no {mark} layer")


def rows(spec: dict, node: dict) -> list[dict]:
    data = node.get("data") or spec["data"]
    return data["values"] if "values" in data else spec["datasets"][data["name"]]


def patches(n: int):
    rng = np.random.default_rng(0)
    return make_expl(rng.normal(size=n), kind="time-frequency", model="tssd2d")


def corpus(systems: list[str]) -> CorpusSummary:
    profiles = [AttackProfile(model="tssd1d", method="shap", system=s, n_files=2,
                              time=np.linspace(-1, 1, 20), frequency=None) for s in systems]
    return CorpusSummary(eer=[], profiles=profiles)


def every_chart() -> dict[str, object]:
    v = make_verdict(0.8)
    expl = make_expl([0.5, -0.25, 0.1, 0.0])
    curve = {"mean_predicted": [0.1, 0.9], "observed": [0.2, 0.8], "count": [5, 5]}
    one = corpus(["A01"])
    return {
        "timeline": charts.timeline_chart({"A": v.windows}),
        "waveform": charts.waveform_chart(np.zeros(16_000, np.float32), expl=expl),
        "cqt": charts.cqt_chart(np.zeros((432, 101)), cqt_frequencies(), expl=patches(8)),
        "segments": charts.segment_chart(expl),
        "patches": charts.segment_chart(patches(30)),
        "compact": charts.segment_chart(expl, height=140, compact=True),
        "deletion": charts.deletion_chart(expl),
        "agreement": charts.agreement_chart(["a", "b"], np.eye(2), height=150),
        "reliability": charts.reliability_chart({"tssd1d": curve, "combined": curve}),
        "corpus time": corpus_charts.time_heatmap(
            corpus_charts.time_profile_frame(one, "tssd1d", "shap")),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(every_chart()))
def test_every_chart_keeps_its_plot_height_whatever_its_labels(name):
    spec = every_chart()[name].to_dict()
    assert spec["autosize"] == FIT_X, name
    assert spec["height"] >= charts.MIN_PLOT_PX == 120, name
    assert spec["width"] == "container", name


def test_the_faithfulness_chart_gets_its_full_height_and_title():
    spec = charts.deletion_chart(make_expl([1, 2, 3]), height=180).to_dict()
    assert spec["height"] == 180 and spec["autosize"] == FIT_X
    assert spec["encoding"]["y"]["title"] == "P(spoof)"
    assert spec["encoding"]["color"]["legend"]["direction"] == "vertical"


def test_patches_are_horizontal_bars_one_row_each_strongest_first():
    expl = patches(30)
    spec = charts.segment_chart(expl).to_dict()
    bars = rows(spec, spec)
    assert len(bars) == charts.TOP_PATCHES == 24
    strongest = sorted(np.abs(expl.values), reverse=True)[:24]
    assert [abs(b["evidence"]) for b in bars] == pytest.approx(strongest)
    y, x = spec["encoding"]["y"], spec["encoding"]["x"]
    assert y["field"] == "label" and x["field"] == "evidence"  # labels on the y axis
    assert y["sort"] == [b["label"] for b in bars] and y["axis"]["labelOverlap"] is False
    assert spec["height"] == 24 * charts.evidence.PATCH_ROW_PX  # every label has its row
    # time segments stay upright, in time order
    upright = charts.segment_chart(make_expl([0.5, -0.2])).to_dict()
    assert upright["encoding"]["x"]["field"] == "label"


def test_patch_error_bars_run_along_the_value_axis():
    import dataclasses

    expl = dataclasses.replace(patches(4), uncertainty=np.full(4, 0.05))
    spec = charts.segment_chart(expl).to_dict()
    rule = layer_with(spec, "rule")
    assert rule["encoding"]["x"]["field"] == "lo" and rule["encoding"]["x2"]["field"] == "hi"
    assert rule["encoding"]["y"]["field"] == "label"


def test_legends_lie_under_the_plot_so_none_is_clipped_or_eats_its_width():
    # right-hand legends stacked on the 280-px spectrogram cut the evidence one off,
    # and on a 1024-px screen the segment chart's right legend left its bars 0 px
    spec = charts.cqt_chart(np.zeros((432, 101)), cqt_frequencies(), expl=patches(8)).to_dict()
    level, evidence = spec["layer"][0]["encoding"]["color"], spec["layer"][1]["encoding"]["color"]
    for legend in (level["legend"], evidence["legend"], charts.segment_chart(patches(30))
                   .to_dict()["encoding"]["color"]["legend"]):  # fmt: skip
        assert legend["orient"] == "bottom" and legend["direction"] == "horizontal"
        # two side by side fit under a 540-px column (with their titles)
        assert legend["gradientLength"] <= 160


def test_models_are_drawn_in_the_neutral_palette_never_red_or_blue():
    v = make_verdict(0.03)
    names = ["tssd1d", "tssd2d", "aasist"]
    spec = charts.timeline_chart({n: v.windows for n in names}).to_dict()
    [colour, same] = [layer["encoding"]["color"] for layer in spec["layer"]
                      if layer["encoding"].get("color", {}).get("field") == "model"]
    assert colour == same  # strokes and line: one scale, one legend
    assert colour["scale"]["domain"] == names
    assert colour["scale"]["range"] == list(colours.MODEL_PALETTE[:3])
    assert colours.SPOOF_RED not in colour["scale"]["range"]
    legend = colour["legend"]
    assert legend["symbolOpacity"] == 1 and legend["symbolStrokeWidth"] >= 2
    assert legend["direction"] == "vertical"  # stacked: never runs off a narrow column
    curve = {"mean_predicted": [0.1], "observed": [0.2], "count": [5]}
    rel = charts.reliability_chart({"tssd1d": curve, "combined": curve}).to_dict()
    scale = next(layer["encoding"]["color"]["scale"] for layer in rel["layer"]
                 if "color" in layer.get("encoding", {}))
    assert scale["range"] == [colours.MODEL_PALETTE[0], colours.COMBINED_COLOUR]


def test_the_model_palette_stays_clear_of_the_evidence_hues():
    import colorsys

    red, blue = colours.hue_degrees(colours.SPOOF_RED), colours.hue_degrees(colours.BONAFIDE_BLUE)
    for c in colours.MODEL_PALETTE:
        r, g, b = (int(c[i : i + 2], 16) / 255 for i in (1, 3, 5))
        if colorsys.rgb_to_hls(r, g, b)[2] < 0.1:  # grey: no hue to confuse
            continue
        for hue in (red, blue):
            gap = abs(colours.hue_degrees(c) - hue) % 360
            assert min(gap, 360 - gap) >= 40, (c, hue)
    assert colours.model_colours(["x", "combined", "y"]) == {
        "x": colours.MODEL_PALETTE[0], "combined": colours.COMBINED_COLOUR,
        "y": colours.MODEL_PALETTE[1]}  # fmt: skip


def test_agreement_is_diverging_and_centred_at_zero():
    m = np.array([[1.0, -0.48], [-0.48, 1.0]])
    spec = charts.agreement_chart(["SHAP", "LIME"], m).to_dict()
    scale = layer_with(spec, "rect")["encoding"]["color"]["scale"]
    assert scale["domain"] == [-1.0, 0.0, 1.0]
    assert scale["range"] == [colours.AGREE_OPPOSITE, colours.NEUTRAL, colours.AGREE_SAME]
    assert colours.SPOOF_RED not in json.dumps(spec) and colours.BONAFIDE_BLUE not in json.dumps(spec)
    # rho = -0.48 is drawn as much towards "opposite" as +0.48 towards "same"
    neg, pos = colours.agreement_colour(-0.48), colours.agreement_colour(0.48)
    assert neg != pos and colours.agreement_colour(0.0) == colours.NEUTRAL
    assert colours.agreement_colour(-1.0) == colours.AGREE_OPPOSITE
    ink = layer_with(spec, "text")["encoding"]["color"]
    assert "abs(datum.rho)" in ink["condition"]["test"]


def test_a_corpus_map_with_one_attack_is_still_readable():
    df = corpus_charts.time_profile_frame(corpus(["A01"]), "tssd1d", "shap")
    assert len(df) == 20 and set(df["system"]) == {"A01"}
    spec = corpus_charts.time_heatmap(df).to_dict()
    assert spec["height"] == charts.MIN_PLOT_PX  # was 26 px: one row
    many = corpus_charts.time_profile_frame(corpus([f"A{i:02}" for i in range(8)]), "tssd1d",
                                            "shap")  # fmt: skip
    assert corpus_charts.time_heatmap(many).to_dict()["height"] == 8 * 26
    # no explanation of that model: an empty frame, which the page reports in words
    assert corpus_charts.time_profile_frame(corpus(["A01"]), "aasist", "shap").empty
    assert isinstance(df, pd.DataFrame)
