"""`python -m core analyze`: a progress bar per file on stderr, off with --json unless
--progress. Run in process with a stub detector, so no weights are needed."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import soundfile as sf

import core.cli.analyze
from core.audio.decode import window_starts
from core.cli import main
from core.cli.analyze import file_progress
from core.detectors.detect import verdict_from_windows
from core.detectors.registry import MODELS
from core.engine.service import Engine


class StubDetector:
    """Detector-shaped: a real spec under a test key; P(spoof) 0.3 on every window."""

    def __init__(self):
        self.spec = dataclasses.replace(next(iter(MODELS.values())), key="stub", sha256="6" * 64)

    def score(self, audio, progress=None):
        n = len(audio.samples)
        starts = window_starts(n, self.spec.input_length, self.spec.window_hop)
        return verdict_from_windows(self.spec, np.full(len(starts), 0.3), starts, n)


@pytest.fixture
def clip(tmp_path, monkeypatch):
    stub = {"stub": StubDetector()}
    monkeypatch.setattr(
        core.cli.analyze, "Engine",
        lambda db, use_store=True: Engine(db, use_store=use_store, detectors=stub),
    )  # fmt: skip
    monkeypatch.setenv("DEEPFAKE_DB", str(tmp_path / "analyses.db"))
    t = np.arange(16_000) / 16_000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16_000, format="WAV")
    path = tmp_path / "clip.wav"
    path.write_bytes(buf.getvalue())
    return str(path)


def test_a_bar_on_stderr_reaches_100_percent(clip, capsys):
    assert main(["analyze", clip]) == 0
    out, err = capsys.readouterr()
    assert "clip.wav: 100%" in err and "done" in err
    assert "decoding" in err or "scoring with stub" in err  # it moved through the steps
    assert "%" not in out and "stub" in out  # the report itself stays on stdout


def test_json_is_silent_on_stderr_unless_progress_is_asked(clip, capsys):
    assert main(["analyze", clip, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    (report,) = json.loads(out)
    assert [(m["model"], m["p_spoof"]) for m in report["models"]] == [("stub", pytest.approx(0.3))]
    assert main(["analyze", clip, "--json", "--progress"]) == 0
    out, err = capsys.readouterr()
    assert "clip.wav: 100%" in err
    assert json.loads(out)[0]["file"] == clip  # stdout is still pure JSON
    assert main(["analyze", clip, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_a_failed_file_keeps_its_one_line_error(clip, tmp_path, capsys):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    assert main(["analyze", str(bad), clip]) == 1
    err = capsys.readouterr().err
    assert f"error: {bad}: not a supported audio file" in err
    assert "clip.wav: 100%" in err


def test_each_call_fills_its_share_of_the_bar(capsys):
    with file_progress("x.wav", steps=2, enabled=True) as step:
        step(0)(0.5, "half of the analysis")
        step(0)(0.2, "a late, smaller report")  # never moves back
    err = capsys.readouterr().err
    assert "x.wav:  25%" in err and "half of the analysis" in err
    assert " 10%" not in err
    with file_progress("y.wav", steps=2, enabled=True) as step:
        step(1)(1.0, "explained")
    assert "y.wav: 100%" in capsys.readouterr().err
    with file_progress("z.wav", steps=1, enabled=False) as step:
        step(0)(1.0, "done")
    assert capsys.readouterr().err == ""
