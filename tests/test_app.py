"""The dashboard through Streamlit's AppTest: every page, uploads, share links, access.

Verdicts come from the published AASIST checkpoints (installed into a temp weights dir
by the ``official_weights_dir`` fixture). Explanations come from a fast stand-in
backend with the real method registry and parameters, so the store keys are the real
ones; the explanation methods themselves are tested in test_explain.py.
"""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
import streamlit as st
from app_helpers import (  # noqa: F401 (fixture: app_env)
    PAGES,
    analyse,
    app_env,
    assert_clean,
    cards,
    new_app,
    texts,
    wav_bytes,
)

import core.detectors.registry
import core.engine.service
import ui
import ui.engine
import ui.gate
from core.detectors.registry import MODELS
from core.engine.service import Engine
from core.export import report

# ------------------------------------------------------------------------- pages


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app_env, page):
    at = new_app()
    at.run()
    at.switch_page(page).run()
    assert_clean(at)
    key = page.split("/")[1][:-3]
    assert ui.PAGES[key].title.lower() in at.title[0].value.lower()
    # the shared sidebar links every page, and says the app is open to anyone
    links = [p.proto.label for p in at.sidebar.get("page_link")]
    assert links == [p.title for p in ui.PAGES.values()]
    assert "Open access" in texts(at)


def test_upload_flow_then_history_lists_it(app_env):
    data = wav_bytes()
    sha = hashlib.sha256(data).hexdigest()
    sys.setswitchinterval(0.005)  # Python's default
    at = new_app()
    at.run()
    assert_clean(at)
    # the server's engine shortens the GIL switch interval (scoring beside page runs)
    assert ui.engine.SWITCH_INTERVAL_S < 0.005
    assert sys.getswitchinterval() == pytest.approx(ui.engine.SWITCH_INTERVAL_S)
    at.file_uploader(key="analyze_upload").upload("generated_tone.wav", data, "audio/wav")
    at.run()
    assert_clean(at)
    got = cards(at)
    n_models = len(core.detectors.registry.available_models())
    assert len(got) == n_models >= 1
    assert all(("SPOOF" in c) or ("BONA FIDE" in c) for c in got)
    assert at.query_params["sha"] == [sha] or at.query_params["sha"] == sha
    assert sha[:12] in texts(at)  # the hash metric
    assert any(sha in c.value for c in at.code)  # the share link
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 1  # the P(spoof) timeline

    at.switch_page("pages/history.py").run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["generated_tone.wav"]
    assert sha in texts(at)  # the hash, whole, under the table (no column for it)
    assert any(f"?sha={sha}" in c.value for c in at.code)


def test_rerun_and_page_switches_recompute_nothing(app_env, monkeypatch):
    data = wav_bytes(seed=3)
    at = new_app()
    at.run()
    at.file_uploader(key="analyze_upload").upload("clip.wav", data, "audio/wav")
    at.run()
    assert_clean(at)

    from core.detectors.detect import Detector

    calls = {"score": 0, "load": 0}
    real_score, real_load = Detector.score, Detector.load.__func__

    def score(self, audio, progress=None):
        calls["score"] += 1
        return real_score(self, audio)

    def load(cls, key, **kw):
        calls["load"] += 1
        return real_load(cls, key, **kw)

    monkeypatch.setattr(Detector, "score", score)
    monkeypatch.setattr(Detector, "load", classmethod(load))
    for page in ["pages/history.py", "pages/models.py", "pages/compare.py"]:
        at.switch_page(page).run()
        assert_clean(at)
    at.switch_page("pages/analyze.py")
    at.query_params["sha"] = hashlib.sha256(data).hexdigest()
    at.run()
    assert_clean(at)
    assert cards(at)
    assert calls == {"score": 0, "load": 0}


def test_share_link_restores_the_exact_view(app_env):
    db = app_env["db"]
    a = analyse(wav_bytes(seed=1), "shared.wav", db)
    model = sorted(a.verdicts)[-1]
    Engine(db).explain(a.sha256, model, "shap", window=0)
    assert app_env["explain"].calls == 1

    at = new_app(sha=a.sha256, model=model, method="shap", window=0)
    at.run()
    assert_clean(at)
    assert at.selectbox(key="analyze_model").value == model
    assert at.selectbox(key="analyze_method").value == "shap"
    assert at.selectbox(key=f"analyze_window_{model}").value == 0
    assert any("served from the store" in s.value for s in at.success)
    assert app_env["explain"].calls == 1  # served, not recomputed
    # verdicts first, then the explanation: timeline, waveform, CQT, segments, deletion
    assert len(cards(at)) == len(a.verdicts)
    assert len(at.get("vega_lite_chart")) >= 5
    assert len(at.get("audio")) >= 1  # the original; + the listenable pair
    for key, v in a.verdicts.items():
        assert any(report.display_name(key) in c for c in cards(at))
        want = "SPOOF" if v.label == "spoof" else "BONA FIDE"
        assert any(want in c and report.display_name(key) in c for c in cards(at))
    # the address bar stays a share link of this view
    assert at.query_params["method"] in ("shap", ["shap"])


def test_share_link_to_a_view_that_does_not_exist_says_so(app_env):
    a = analyse(wav_bytes(seed=10), "odd_link.wav", app_env["db"])
    at = new_app(sha=a.sha256, model="no-such-model", method="astrology", window=99)
    at.run()
    assert_clean(at)
    warning = " ".join(w.value for w in at.warning)
    assert "no\\-such\\-model" in warning and "astrology" in warning and "99" in warning
    assert len(cards(at)) == len(a.verdicts)  # the verdicts still show


def test_explanation_computed_on_demand_with_progress(app_env):
    db = app_env["db"]
    a = analyse(wav_bytes(seed=2), "ondemand.wav", db)
    model = sorted(a.verdicts)[0]
    at = new_app(sha=a.sha256, model=model, method="lime")
    at.run()
    assert_clean(at)
    assert "has not been computed yet" in texts(at)
    at.button(key="analyze_compute").click().run()
    assert_clean(at)
    assert app_env["explain"].calls == 1
    assert any("computed in" in s.value for s in at.success)
    # the running job offers a Cancel button inside its status box
    assert at.button(key=f"cancel_lime_{model}").proto.label == "Cancel"
    at.run()  # a rerun serves it from the store
    assert any("served from the store" in s.value for s in at.success)
    assert app_env["explain"].calls == 1


def test_non_audio_upload_shows_a_clear_error(app_env):
    at = new_app()
    at.run()
    at.file_uploader(key="analyze_upload").upload(
        "notes.wav", b"these are meeting notes, not audio", "audio/wav"
    )
    at.run()
    assert_clean(at)
    errors = [e.value.replace("\\", "") for e in at.error]  # markdown escapes
    assert any("notes.wav" in e and "not a supported audio file" in e for e in errors), errors
    assert not cards(at)
    assert "sha" not in at.query_params


def test_unknown_or_malformed_hash_gives_a_clear_message(app_env):
    for sha in ["0" * 64, "not-a-hash"]:
        at = new_app(sha=sha)
        at.run()
        assert_clean(at)
        assert any("No analysis with hash" in e.value for e in at.error)
        at.switch_page("pages/compare.py")
        at.query_params["sha"] = sha
        at.run()
        assert any("No analysis with hash" in e.value for e in at.error)


def test_access_password_blocks_every_page(app_env, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_PASSWORD", "s3cret-phrase")
    a = analyse(wav_bytes(seed=4), "private.wav", app_env["db"])
    for page in PAGES:
        at = new_app(sha=a.sha256)
        at.run()
        at.switch_page(page).run()
        assert_clean(at)
        # only the gate: no page title, no verdicts, no tables, no sidebar
        assert [t.value for t in at.title] == [ui.gate.GATE_TITLE]
        assert not cards(at) and not at.dataframe and not at.get("page_link")
        assert "private.wav" not in texts(at) and a.sha256[:12] not in texts(at)
        at.text_input(key="access_given").input("wrong")
        at.button[0].click().run()
        assert any("Wrong password" in e.value for e in at.error)
        assert not at.get("page_link")
        at.text_input(key="access_given").input("s3cret-phrase")
        at.button[0].click().run()
        assert_clean(at)
        assert at.title[0].value != ui.gate.GATE_TITLE
        assert "Password protected" in texts(at)


def test_access_password_from_streamlit_secrets(app_env):
    at = new_app()
    at.secrets["access_password"] = "from-secrets"
    at.run()
    assert [t.value for t in at.title] == [ui.gate.GATE_TITLE]
    at.text_input(key="access_given").input("from-secrets")
    at.button[0].click().run()
    assert_clean(at)
    assert "Analyze" in at.title[0].value


def served_downloads(monkeypatch) -> dict:
    """{file name: bytes} of every st.download_button the running app draws"""
    from streamlit.elements.widgets.button import ButtonMixin

    served = {}
    real = ButtonMixin.download_button

    def record(self, label, data, file_name=None, *args, **kwargs):
        served[file_name] = data
        return real(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(ButtonMixin, "download_button", record)
    return served


def test_exports_hold_verdicts_and_hashes(app_env, monkeypatch):
    db = app_env["db"]
    a = analyse(wav_bytes(seed=5), "case_file.wav", db)
    model = sorted(a.verdicts)[0]
    Engine(db).explain(a.sha256, model, "gradcam", window=0)
    served = served_downloads(monkeypatch)

    at = new_app(sha=a.sha256, model=model, method="gradcam", window=0)
    at.run()
    assert_clean(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("JSON" in x for x in labels) and any("HTML" in x for x in labels)

    # what the buttons serve, as handed to st.download_button
    stem = f"case_file-{a.sha256[:12]}"
    assert set(served) == {f"{stem}.json", f"{stem}.html"}
    back = json.loads(served[f"{stem}.json"])
    assert back["audio"]["sha256"] == a.sha256
    assert back["audio"]["filenames"] == ["case_file.wav"]
    assert back["share_url"].endswith(f"?sha={a.sha256}&model={model}&method=gradcam&window=0")
    assert {v["model"]: v["label"] for v in back["verdicts"]} == {
        k: v.label for k, v in a.verdicts.items()
    }
    assert {v["model"]: v["p_spoof"] for v in back["verdicts"]} == pytest.approx(
        {k: v.p_spoof for k, v in a.verdicts.items()}
    )
    assert {m["key"]: m["weights_sha256"] for m in back["models"]} == {
        k: MODELS[k].sha256 for k in a.verdicts
    }
    assert [(e["model"], e["method"]) for e in back["explanations"]] == [(model, "gradcam")]
    page = served[f"{stem}.html"].decode("utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert a.sha256 in page
    for k, v in a.verdicts.items():
        assert MODELS[k].sha256 in page
        assert report.display_name(k) in page
    words = {"spoof": "SPOOF", "bonafide": "BONA FIDE"}
    assert all(words[v.label] in page for v in a.verdicts.values())
    assert "<svg" in page and "<script src" not in page and "<link" not in page


def test_history_search_filters_and_delete_with_confirmation(app_env):
    db = app_env["db"]
    keep = analyse(wav_bytes(seed=6), "interview_keep.wav", db)
    drop = analyse(wav_bytes(seed=7, freq=330), "voicemail_drop.flac.wav", db)
    at = new_app()
    at.run()
    at.switch_page("pages/history.py").run()
    assert_clean(at)
    assert len(at.dataframe[0].value) == 2
    at.text_input(key="history_search").input("voicemail").run()
    assert list(at.dataframe[0].value["file"]) == ["voicemail_drop.flac.wav"]
    assert at.selectbox(key="history_chosen").value == drop.sha256

    at.button(key="history_delete").click().run()
    assert any("Delete" in w.value for w in at.warning)  # asks first
    assert Engine(db).analysis(drop.sha256) is not None
    at.button(key="history_delete_yes").click().run()
    assert_clean(at)
    assert Engine(db).analysis(drop.sha256) is None
    assert Engine(db).analysis(keep.sha256) is not None
    assert "No analysis matches" in texts(at)

    # the deleted file's share link now says so
    gone = new_app(sha=drop.sha256)
    gone.run()
    assert any("No analysis with hash" in e.value for e in gone.error)


def test_history_open_restores_the_view(app_env):
    a = analyse(wav_bytes(seed=8), "reopen.wav", app_env["db"])
    at = new_app()
    at.run()
    at.switch_page("pages/history.py").run()
    at.button(key="history_open").click().run()
    assert_clean(at)
    assert "Analyze" in at.title[0].value
    assert len(cards(at)) == len(a.verdicts)


def test_compare_page_grid_and_agreement(app_env):
    db = app_env["db"]
    a = analyse(wav_bytes(seconds=3.0, seed=9), "compare.wav", db)
    at = new_app(sha=a.sha256)
    at.run()
    at.switch_page("pages/compare.py")
    at.query_params["sha"] = a.sha256
    at.run()
    assert_clean(at)
    assert len(at.dataframe[0].value) == len(a.verdicts)  # the verdict table
    at.multiselect(key="compare_methods").set_value(["gradcam", "shap"]).run()
    at.button(key="compare_compute").click().run()
    assert_clean(at)
    assert app_env["explain"].calls == 2 * len(a.verdicts)
    shown = texts(at)
    assert "mean ρ" in shown
    assert "shared segments" in shown or "time bins" in shown
    if len(a.verdicts) > 1:
        assert any(t.label.startswith("Between models") for t in at.tabs)


def test_models_page_shows_every_card(app_env):
    at = new_app()
    at.run()
    at.switch_page("pages/models.py").run()
    assert_clean(at)
    heads = [s.value for s in at.subheader]
    for spec in MODELS.values():
        assert spec.display_name in heads
    shown = texts(at)
    for key in core.detectors.registry.available_models():
        assert MODELS[key].sha256 in shown
    assert "EER 0.83 %" in shown  # the published measurement of AASIST


def test_no_model_available_is_said_clearly(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_WEIGHTS_DIR", str(tmp_path / "empty"))
    st.cache_data.clear()
    at = new_app()
    at.run()
    assert_clean(at)
    assert any("No detector is available" in e.value for e in at.error)
    assert at.file_uploader(key="analyze_upload").proto.disabled
