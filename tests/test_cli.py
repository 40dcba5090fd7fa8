"""The CLI as a user runs it: subprocesses, the published AASIST weights, minispoof."""

import json
import os
import subprocess
import sys

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
    out = json.loads(r.stdout)
    files = out if isinstance(out, list) else out["files"]
    [report] = [f for f in files if f.get("sha256")]
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
