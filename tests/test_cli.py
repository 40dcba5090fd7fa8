"""The CLI as a user runs it: subprocesses, the published AASIST weights, minispoof; and
in process with stand-in models, for what the text output shows."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import soundfile as sf
from conftest import ROOT

SPOOF_CLIP = "MS_D_1023594"  # an M01 (espeak-ng) spoof from minispoof dev


def run_cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_fetch_from_dir_then_models_json(tmp_path, aasist_official_dir):
    env = {"DEEPFAKE_WEIGHTS_DIR": str(tmp_path)}
    r = run_cli("weights", "fetch", "aasist-official", "--from", str(aasist_official_dir), env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "aasist-official, aasist-l-official" in r.stdout
    r = run_cli("models", "--json", env_extra=env)
    status = {m["key"]: m["status"] for m in json.loads(r.stdout)}
    assert status["aasist-official"] == "ok" and status["aasist-l-official"] == "ok"


def test_fetch_from_a_missing_dir_fails_cleanly(tmp_path):
    r = run_cli("weights", "fetch", "aasist-official", "--from", str(tmp_path / "nope"),
                env_extra={"DEEPFAKE_WEIGHTS_DIR": str(tmp_path)})
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_analyze_json_with_official_weights(tmp_path, official_weights_dir, minispoof_dir):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    clip = minispoof_dir / "flac" / f"{SPOOF_CLIP}.flac"
    env = {"DEEPFAKE_WEIGHTS_DIR": str(official_weights_dir), "DEEPFAKE_DB": str(tmp_path / "a.db")}
    r = run_cli("analyze", str(bad), str(clip), "--model", "aasist-official",
                "--model", "aasist-l-official", "--json", env_extra=env)
    # the bad file fails with a one-line message, the good one is still analysed
    assert r.returncode != 0
    assert "notes.wav" in r.stderr and "not a supported audio file" in r.stderr
    assert "Traceback" not in r.stderr
    # one entry per file, in the order given: the failure first, then the analysis
    bad_entry, report = json.loads(r.stdout)
    assert bad_entry["file"] == str(bad) and "not a supported audio file" in bad_entry["error"]
    assert report["file"] == str(clip) and report["explanations"] == []
    assert len(report["sha256"]) == 64
    assert 3.0 < report["duration"] < 4.0
    by_model = {m["model"]: m for m in report["models"]}
    for key in ("aasist-official", "aasist-l-official"):
        v = by_model[key]
        assert 0.0 <= v["p_spoof"] <= 1.0 and v["label"] in ("spoof", "bonafide")
        assert v["windows"][0]["start"] == 0.0
        assert abs(v["windows"][-1]["end"] - report["duration"]) < 1e-6
    # the published AASIST recognises this espeak clip as spoof
    assert by_model["aasist-official"]["label"] == "spoof"


class _FakeDetector:
    """AASIST's spec, a fixed verdict: no network is loaded."""

    def __init__(self):
        from core.detectors.registry import MODELS

        self.spec = MODELS["aasist-official"]

    def score(self, audio, progress=None):
        from core.detectors.detect import verdict_from_windows

        n = len(audio.samples)
        return verdict_from_windows(self.spec, np.array([0.9]), [0], n, seconds=0.01)


def _fake_backend(quality: dict):
    """the core.explain call shape; every explanation carries ``quality``"""
    import core.explain
    from core.explain.base import Explanation

    def explain(detector, samples, *, method, window=None, target=None, segments=8,
                n_samples=None, seed=0, progress=None):  # fmt: skip
        edges = np.linspace(0.0, 0.5, segments + 1)
        return Explanation(
            model=detector.spec.key, weights_sha256=detector.spec.sha256, method=method,
            method_version=str(core.explain.EXPLAINERS[method].version),
            params=core.explain.explain_params(method, window=window, segments=segments),
            target=0, target_label="spoof", window=window or 0, window_start=0.0,
            window_end=0.5, p_target=0.9, feature_kind="time",
            feature_bounds=np.stack([edges[:-1], edges[1:]], 1),
            values=np.arange(segments, dtype=np.float64),
            dense=None, deletion_curve=np.linspace(0.9, 0.1, segments + 1),
            deletion_random=np.linspace(0.9, 0.5, segments + 1), quality=quality,
        )  # fmt: skip

    return SimpleNamespace(explain=explain, explain_params=core.explain.explain_params,
                           EXPLAINERS={"shap": core.explain.EXPLAINERS["shap"]})  # fmt: skip


def test_analyze_text_shows_the_explanation_quality(tmp_path, capsys, monkeypatch):
    from core.cli import main
    from core.engine import service

    monkeypatch.setitem(service._DETECTORS, "aasist-official", _FakeDetector())
    quality = {"deletion_auc": 0.3, "deletion_auc_random": 0.4321, "n_evals": 7}
    monkeypatch.setattr(service, "EXPLAIN_BACKEND", _fake_backend(quality))
    clip = tmp_path / "tone.wav"
    t = np.arange(8000) / 16_000
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16_000)
    argv = ["analyze", str(clip), "--model", "aasist-official", "--explain", "shap",
            "--segments", "4", "--db", str(tmp_path / "a.db")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if " shap " in x]
    assert "deletion_auc 0.300" in line and "deletion_auc_random 0.432" in line
    assert "n_evals" not in line  # only the quality measures the CLI names are shown
    # the strongest feature first: value 3 on the last of four 0.125 s segments
    assert out.splitlines()[out.splitlines().index(line) + 1].split() == [
        "0.38-0.50", "s", "+3.0000"
    ]
