"""Shared by the store tests: a sample hash and verdict, the db_path fixture, audio
info, a counting compute (imported by them; pytest collects nothing here)."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

SHA = hashlib.sha256(b"some audio").hexdigest()
VERDICT = {
    "p_spoof": 0.75,
    "label": "spoof",
    "max_p_spoof": 0.9,
    "max_window": 1,
    "windows": [
        {"start": 0.0, "end": 4.0375, "p_spoof": 0.6},
        {"start": 2.01875, "end": 5.0, "p_spoof": 0.9},
    ],
    "seconds": 0.25,
}


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "store" / "analyses.db"


def _info(data: bytes, **kw) -> dict:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "n_bytes": len(data),
        "duration": 1.5,
        "orig_sample_rate": 44_100,
        "orig_channels": 2,
        "orig_format": "WAV",
        "rms_dbfs": -20.0,
        "near_silent": False,
        **kw,
    }


class Counter:
    def __init__(self, value=VERDICT, sleep=0.0):
        self.calls, self.value, self.sleep = 0, value, sleep
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            self.calls += 1
        time.sleep(self.sleep)
        return self.value
