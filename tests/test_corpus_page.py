"""The Corpus page on a store holding a small batch written through the store API."""

import io

import numpy as np
import soundfile as sf
import streamlit as st
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from core import store
from core.audio.decode import audio_info, load_audio
from core.corpus.summary import summarise_batch
from core.detectors.registry import MODELS
from core.engine.keys import explanation_key, verdict_key
from core.engine.service import Engine
from core.explain import EXPLAINERS, explain_params
from core.explain.base import Explanation

MODEL = "tssd1d"


def _wav(seed: int) -> bytes:
    x = np.random.default_rng(seed).normal(scale=0.1, size=16_000).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 16_000, format="WAV")
    return buf.getvalue()


def _fill(db, files):
    """files: (file_id, system, key, p_spoof, segment values)"""
    spec = MODELS[MODEL]
    store.record_batch("demo", protocol="demo.txt", audio_dir="/nowhere", models=[MODEL],
                       methods=["shap"], db=db)
    for i, (fid, system, key, p, values) in enumerate(files):
        data = _wav(i)
        a = load_audio(data)
        store.record_audio(audio_info(a), data, f"{fid}.wav", db=db)
        verdict = {"p_spoof": p, "label": "spoof" if p >= 0.5 else "bonafide",
                   "max_p_spoof": p, "max_window": 0,
                   "windows": [{"start": 0.0, "end": 1.0, "p_spoof": p}], "seconds": 0.1}
        # the keys every reader builds (core.engine.keys), so the page finds these rows current
        store.get_or_compute_prediction(verdict_key(a.sha256, spec), lambda v=verdict: v, db=db)
        params = explain_params("shap", segments=len(values))
        e = Explanation(
            model=MODEL, weights_sha256=spec.sha256, method="shap",
            method_version=EXPLAINERS["shap"].version, params=params, target=1,
            target_label="spoof", window=0, window_start=0.0, window_end=1.0, p_target=p,
            feature_kind="time",
            feature_bounds=np.stack([np.arange(len(values)) / len(values),
                                     np.arange(1, len(values) + 1) / len(values)], 1),
            values=np.asarray(values, float), dense=None,
            deletion_curve=np.zeros(len(values) + 1), deletion_random=np.zeros(len(values) + 1),
        )
        ek = explanation_key(a.sha256, spec, "shap", window=0, segments=len(values))
        store.get_or_compute_explanation(ek, lambda r=e.to_record(): r, db=db)
        store.record_batch_file(batch="demo", file_id=fid, system=system, key=key,
                                sha256=a.sha256, status="done", error=None, db=db)
    store.record_batch_file(batch="demo", file_id="BROKEN", system="A02", key="spoof",
                            sha256=None, status="failed", error="not a supported audio file",
                            db=db)


def test_corpus_page_shows_eer_and_attack_maps(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    monkeypatch.setenv("DEEPFAKE_DB", str(db))
    monkeypatch.delenv("DEEPFAKE_PASSWORD", raising=False)
    _fill(db, [("B1", "-", "bonafide", 0.1, [0, 1]), ("B2", "-", "bonafide", 0.3, [1, 0]),
               ("S1", "A01", "spoof", 0.9, [3, 1]), ("S2", "A01", "spoof", 0.2, [1, 1])])
    summary = summarise_batch(Engine(db), "demo")
    eer = {r["system"]: r for r in summary.eer}
    assert eer["A01"]["eer_percent"] == 50.0  # S2 (0.2) sits below B2 (0.3)
    [a01] = [p for p in summary.profiles if p.system == "A01"]
    # (0.75, 0.25) and (0.5, 0.5) averaged, spread over 20 bins (10 per segment)
    np.testing.assert_allclose(a01.time[:10], 0.625 / 10)
    np.testing.assert_allclose(a01.time[10:], 0.375 / 10)

    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/corpus.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Corpus"
    assert at.selectbox(key="corpus_batch").value == "demo"
    frames = at.dataframe
    assert len(frames) == 2  # EER table, files table
    eer_df = frames[0].value
    assert set(eer_df["system"]) == {"all", "A01"}
    files_df = frames[1].value
    assert set(files_df["status"]) == {"done", "failed"}
    done = files_df[files_df["status"] == "done"]
    assert all("/?sha=" in link for link in done["open"])  # each file's share link
    assert files_df[files_df["status"] == "failed"]["open"].isna().all()
    assert "1 failed" in " ".join(c.value for c in at.caption)
    assert len(at.get("arrow_vega_lite_chart")) >= 1 or len(at.get("vega_lite_chart")) >= 1
