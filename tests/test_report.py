"""The case-file export: JSON document and HTML page from typed results, no Altair."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
from conftest import ROOT
from explanations import make_analysis, make_expl, make_verdict

from core.export import colours, report
from core.export.report_svg import svg_bands

GENERATED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_json_and_html_hold_verdicts_and_hashes():
    sha = "f" * 64
    analysis = make_analysis({"aasist-official": make_verdict(0.8)}, sha256=sha,
                             filenames=("<script>x.wav",))  # fmt: skip
    expl = make_expl([0.3, -0.1, 0.2], kind="time-frequency")
    doc = report.analysis_doc(analysis, [expl], generated=GENERATED)
    back = json.loads(report.json_bytes(doc))
    assert back["generated"] == "2026-01-01T00:00:00+00:00"
    assert back["audio"] == {
        "sha256": sha, "filenames": ["<script>x.wav"], "duration_seconds": 6.0,
        "orig_sample_rate": 44_100, "orig_channels": 2, "near_silent": False,
    }  # fmt: skip
    [v] = back["verdicts"]
    assert v == {**make_verdict(0.8).to_json(), "display_name": report.display_name(v["model"])}
    assert back["explanations"][0]["spoof_evidence"] == [0.3, -0.1, 0.2]
    assert [m["key"] for m in back["models"]] == ["aasist-official"]
    page = report.html_report(doc)
    assert sha in page and "SPOOF" in page and "51d2" in page
    assert colours.evidence_colour(2 * 0.8 - 1) in page  # the verdict's badge
    assert "<script>x.wav" not in page.split('id="analysis-data"')[0]  # escaped
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert "<svg" in page
    embedded = page.split('id="analysis-data">')[1].split("</script>")[0]
    assert json.loads(embedded.replace("<\\/", "</")) == back


def test_explanation_summary_ranks_spoof_evidence_and_cleans_nan():
    expl = make_expl([0.3, -0.5, 0.1], target_label="bonafide", start=0.0, end=3.0,
                     quality={"r2": float("nan"), "deletion_auc_random": 0.5})  # fmt: skip
    s = report.explanation_summary(expl, top=2)
    # as evidence for spoof: [-0.3, 0.5, -0.1]; strongest first
    assert [(t["label"], t["spoof_evidence"]) for t in s["top_features"]] == [
        ("1.00-2.00 s", 0.5),
        ("0.00-1.00 s", -0.3),
    ]
    assert s["top_features"][0]["f0"] is None  # a time segment has no frequency span
    assert s["time_bands"] == [[0.0, 1.0, -0.3], [1.0, 2.0, 0.5], [2.0, 3.0, -0.1]]
    assert s["quality"] == {"r2": None, "deletion_auc_random": 0.5}
    assert s["seconds"] == 1.5 and "cached" not in s
    assert s["deletion_curve"] == np.linspace(0.9, 0.1, 4).tolist()
    assert json.loads(json.dumps(s, allow_nan=False)) == s  # strict JSON


def test_a_dense_only_explanation_is_drawn_as_bands():
    dense = np.r_[np.ones(8000), -np.ones(8000)]
    expl = make_expl([], dense=dense, start=0.0, end=1.0, method="gradcam")
    analysis = make_analysis({"aasist-official": make_verdict(0.3)})
    doc = report.analysis_doc(analysis, [expl], generated=GENERATED)
    [x] = doc["explanations"]
    assert x["dense_shape"] == [16_000] and x["values"] == []
    assert {b[2] for b in x["time_bands"]} == {1.0, -1.0}
    page = report.html_report(doc)
    assert colours.SPOOF_RED in page and colours.BONAFIDE_BLUE in page
    assert "BONA FIDE" in page


def test_svg_bands_scale_to_the_strongest_band():
    svg = svg_bands([(0.0, 1.0, 2.0), (1.0, 2.0, -1.0)], width=144, height=108)
    # plot area 88 x 74: the +2 band fills its half (37 px) upwards, the -1 band half that
    assert 'height="37.0" fill="#b2182b"' in svg
    assert f'height="18.5" fill="{colours.evidence_colour(-0.5)}"' in svg


def test_the_report_does_not_import_altair():
    code = "import sys, core.export.report; print('altair' in sys.modules, 'core.export.charts' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


def test_the_report_leads_with_the_combined_verdict_and_lists_warnings():
    import dataclasses

    from core.audio.quality import InputQuality, QualityWarning
    from core.judgement.combined import Combined

    combined = Combined(p_spoof=0.62, band="uncertain", models_disagree=True,
                        models=("a", "b"), calibrated={"a": 0.9, "b": 0.2}, lo=0.1, hi=0.9,
                        widen=0.5, reasons=("low_snr: band widened by 0.50 log-odds",))  # fmt: skip
    warning = QualityWarning("low_snr", "background noise is <high>", 7.5, 10.0)
    quality = InputQuality(6.0, 16_000, "WAV", 8000.0, None, False, 0.0, 4.0, 0.7, 7.5,
                           None, (warning,), False)  # fmt: skip
    analysis = dataclasses.replace(
        make_analysis({"aasist-official": make_verdict(0.8)}), combined=combined, quality=quality
    )
    doc = report.analysis_doc(analysis, [], generated=GENERATED)
    assert doc["combined"]["band"] == "uncertain" and doc["combined"]["p_spoof"] == 0.62
    assert doc["warnings"] == [{"code": "low_snr", "message": "background noise is <high>",
                                "value": 7.5, "threshold": 10.0, "quantity": "SNR",
                                "unit": "dB", "measured": "SNR 8 dB (below 10 dB)"}]  # fmt: skip
    page = report.html_report(doc).split('id="analysis-data"')[0]
    assert page.index("UNCERTAIN") < page.index("<h2>Verdicts</h2>")
    assert "The models disagree" in page and "background noise is &lt;high&gt;" in page
    assert "<td>SNR 8 dB (below 10 dB)</td>" in page  # the value in its unit
    # a document written before units still reads: its bare numbers
    old = {**doc, "warnings": [{"code": "low_snr", "message": "noisy", "value": 7.5,
                                "threshold": 10.0}]}  # fmt: skip
    assert "<td>7.5 (threshold 10)</td>" in report.html_report(old)


def test_a_removed_model_is_named_as_such():
    assert report.display_name("no-such-model-any-more") == "no-such-model-any-more (removed model)"
    assert report.display_name("tssd1d") == "Res-TSSDNet 1D (waveform)"


def test_the_report_names_left_out_models_judgement_warnings_and_notes():
    import dataclasses

    from core.audio.quality import InputQuality
    from core.judgement.combined import Combined

    combined = Combined(p_spoof=0.9, band="likely_spoof", models_disagree=True,
                        models=("tssd1d",), calibrated={"tssd1d": 0.9}, lo=0.1, hi=0.8,
                        widen=0.0, reasons=("tssd2d: not in the combined verdict: run "
                                            "python -m core calibrate",))  # fmt: skip
    doc_combined = {**combined.to_json(),
                    "left_out": {"tssd2d": "not in the combined verdict: run python -m core calibrate"},
                    "warnings": [{"code": "models_disagree", "message": "The models disagree."}]}
    quality = InputQuality(3.5, 16_000, "WAV", 8000.0, None, False, 0.0, 3.0, 0.8, 30.0,
                           None, (), False, notes=("Shorter than one window of tssd1d: it "
                                                   "heard the clip repeated.",))  # fmt: skip
    analysis = dataclasses.replace(
        make_analysis({"tssd1d": make_verdict(0.9, model="tssd1d")}), quality=quality)
    doc = {**report.analysis_doc(analysis, [], generated=GENERATED), "combined": doc_combined}
    assert doc["notes"] == ["Shorter than one window of tssd1d: it heard the clip repeated."]
    page = report.html_report(doc).split('id="analysis-data"')[0]
    assert "2D Res-TSSDNet (CQT): not in the combined verdict: run python -m core calibrate" in page
    assert page.count("not in the combined verdict") == 1  # not again among the reasons
    assert "<b>models_disagree</b>: The models disagree." in page
    assert "<b>The models disagree</b>" not in page  # said once
    assert "Note: Shorter than one window of tssd1d" in page
