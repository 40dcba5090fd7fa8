"""Two CLI points: `batch` takes --progress / --no-progress as `analyze` does, and
`history --json` carries the warnings `analyze --json` gave for the same file."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import core.cli.batch
from core.cli import main


@pytest.fixture
def fake_run_batch(monkeypatch):
    """run_batch replaced by one that records its keyword arguments"""
    seen = {}

    def run_batch(entries, audio_dir, **kw):
        seen.update(kw, n=len(entries))
        return SimpleNamespace(name=kw["name"], n_files=len(entries), computed=0, skipped=0,
                               failed={}, seconds=0.1, files_per_second=0.0, node={})  # fmt: skip

    monkeypatch.setattr(core.cli.batch, "run_batch", run_batch)
    return seen


@pytest.mark.parametrize("flag, shown", [("--no-progress", False), ("--progress", True),
                                         (None, True)])  # fmt: skip
def test_batch_takes_the_progress_switch_of_analyze(tmp_path, fake_run_batch, flag, shown):
    protocol = tmp_path / "p.txt"
    protocol.write_text("LS1 MS_T_0000001 - - bonafide\n")
    args = ["batch", "--protocol", str(protocol), "--audio-dir", str(tmp_path),
            "--db", str(tmp_path / "s.db")] + ([flag] if flag else [])  # fmt: skip
    assert main(args) == 0
    assert fake_run_batch["progress"] is shown and fake_run_batch["n"] == 1


def phone_call(seconds: float = 2.5) -> bytes:
    """speech-band noise bursts recorded at 8 kHz"""
    rng = np.random.default_rng(4)
    t = np.arange(int(seconds * 8_000)) / 8_000
    x = rng.normal(0, 0.1, t.size) * (np.sin(2 * np.pi * 3 * t) > 0) + 0.2 * np.sin(2 * np.pi * 200 * t)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), 8_000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_history_json_carries_the_warnings_of_analyze(tmp_path, capsys):
    f = tmp_path / "call.wav"
    f.write_bytes(phone_call())
    db = str(tmp_path / "s.db")
    assert main(["analyze", str(f), "--model", "tssd1d", "--json", "--db", db]) == 0
    [analyzed] = json.loads(capsys.readouterr().out)
    assert {"narrow_band", "low_sample_rate"} <= {w["code"] for w in analyzed["warnings"]}
    assert main(["history", "--json", "--db", db]) == 0
    [item] = json.loads(capsys.readouterr().out)["items"]
    assert item["sha256"] == analyzed["sha256"]
    assert item["warnings"] == analyzed["warnings"]
    assert item["quality"]["warnings"] == analyzed["quality"]["warnings"] != []
    assert item["quality"]["notes"] == analyzed["quality"]["notes"]
    assert item["combined"] == analyzed["combined"]
    by = {w["code"]: w for w in item["warnings"]}
    assert by["low_sample_rate"]["measured"] == "original rate 8 kHz (below 16 kHz)"
    # the table says them too, in units
    assert main(["history", "--db", db]) == 0
    text = capsys.readouterr().out
    assert "warning [low_sample_rate]" in text and "(original rate 8 kHz (below 16 kHz))" in text
