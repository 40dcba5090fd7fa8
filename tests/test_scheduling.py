"""A stored result never waits behind another request's long computation."""

from __future__ import annotations

import threading
import time

from test_combined_engine import Fixed, speech, wav

from core.service import Engine


class Slow(Fixed):
    """scores after ``delay`` seconds, inside the engine's model lock"""

    def __init__(self, key: str, p: float, delay: float):
        super().__init__(key, p)
        self.delay = delay
        self.started = threading.Event()

    def score(self, audio, progress=None):
        self.started.set()
        time.sleep(self.delay)
        return super().score(audio)


def test_a_stored_view_is_served_while_a_long_analysis_holds_the_model(tmp_path):
    det = Slow("slow-a", 0.9, delay=0.0)
    eng = Engine(tmp_path / "s.db", detectors={"slow-a": det})
    stored = eng.analyze(wav(speech(3.0, seed=1)), "stored.wav")

    det.delay = 3.0
    finished = {}

    def long_job():
        eng.analyze(wav(speech(8.0, seed=2)), "new.wav")
        finished["long"] = time.monotonic()

    t = threading.Thread(target=long_job)
    t.start()
    assert det.started.wait(5), "the long analysis never started"
    t0 = time.monotonic()
    again = eng.analyze(wav(speech(3.0, seed=1)), "stored-again.wav")  # a repeat upload
    view = eng.analysis(stored.sha256)  # a repeat view
    finished["stored"] = time.monotonic()
    t.join()
    assert again.cached == {"slow-a": True} and view.verdicts == stored.verdicts
    assert finished["stored"] < finished["long"]
    assert finished["stored"] - t0 < 1.5  # nowhere near the 3-s computation
