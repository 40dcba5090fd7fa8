"""core.engine.trace: where an analysis' time goes (phases, queueing for turns), as JSON lines."""

from __future__ import annotations

import threading
import time

from test_combined_engine import Fixed, speech, wav

from core.detectors.scheduler import FairLock, waited_seconds
from core.engine.service import Engine
from core.engine.trace import TRACE_ENV, Trace, read_trace


class Queued(Fixed):
    """scores inside a turn on ``lock`` (as core.detectors.detect.Detector does per batch)"""

    def __init__(self, key: str, p: float, lock: FairLock):
        super().__init__(key, p)
        self.lock = lock

    def score(self, audio, progress=None):
        with self.lock.turn():
            time.sleep(0.05)
        return super().score(audio)


def hold(lock: FairLock, seconds: float, *, until_asked: bool = False) -> threading.Thread:
    """
    another job holding the lock (returns once it holds it) for ``seconds``, counted
    from when someone else queues for it if ``until_asked``
    """
    held = threading.Event()

    def job():
        with lock.turn():
            held.set()
            t0 = time.monotonic()
            while until_asked and lock.waiting == 0 and time.monotonic() - t0 < 30:
                time.sleep(0.005)
            time.sleep(seconds)

    t = threading.Thread(target=job)
    t.start()
    assert held.wait(5)
    return t


def test_waited_seconds_counts_only_the_time_queued_for_a_turn():
    lock = FairLock("t")
    w0 = waited_seconds()
    with lock.turn():  # free: no wait
        time.sleep(0.1)
    assert waited_seconds() - w0 < 0.05
    other = hold(lock, 0.3)
    with lock.turn():
        pass
    other.join()
    assert 0.2 < waited_seconds() - w0 < 1.0


def test_a_traced_analysis_writes_one_line_with_every_phase(tmp_path, monkeypatch):
    path = tmp_path / "trace.jsonl"
    monkeypatch.setenv(TRACE_ENV, str(path))
    lock = FairLock("shared")
    dets = {"fake-a": Queued("fake-a", 0.9, lock), "fake-b": Queued("fake-b", 0.1, lock)}
    eng = Engine(tmp_path / "s.db", detectors=dets)
    eng.analyze(wav(speech(2.0, seed=3)), "warm.wav")  # the store exists before the clock
    path.unlink()
    other = hold(lock, 0.3, until_asked=True)  # someone else's turn is running when the upload arrives
    first = eng.analyze(wav(speech(3.0, seed=1)), "a.wav")
    other.join()
    eng.analyze(wav(speech(3.0, seed=1)), "a-again.wav")  # stored: no model runs
    lines = read_trace(path)
    assert len(lines) == 2
    new, again = lines
    assert new["cached"] is False and again["cached"] is True
    assert abs(new["duration"] - first.duration) < 1e-9
    assert list(new["phases"]) == ["decode", "store", "fake-a", "fake-b", "quality"]
    a, b = new["phases"]["fake-a"], new["phases"]["fake-b"]
    assert 0.25 < a["waited"] < a["seconds"] and a["seconds"] >= 0.05 + a["waited"] - 0.01
    assert b["waited"] < 0.05  # the lock was free by then
    assert new["total"] >= sum(p["seconds"] for p in new["phases"].values()) - 1e-6


def test_no_trace_is_written_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(TRACE_ENV, raising=False)
    t = Trace()
    with t.phase("x"):
        pass
    t.write(duration=1.0)
    assert list(tmp_path.iterdir()) == []
    assert read_trace(tmp_path / "missing.jsonl") == []
    (tmp_path / "torn.jsonl").write_text('{"total": 1}\n{"tot')
    assert read_trace(tmp_path / "torn.jsonl") == [{"total": 1}]
