"""A stored result never waits behind another request's long computation."""

from __future__ import annotations

import threading
import time

from test_combined_engine import Fixed, speech, wav

from core.engine.service import Engine


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


# ---------------------------------------------------------------- fair turns (core.detectors.scheduler)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from test_extension import clip, toy_spec  # noqa: E402,F401 (fixture)

from core.detectors.detect import Detector  # noqa: E402
from core.detectors.scheduler import CancelToken, FairLock, JobCancelled, compute_lock  # noqa: E402


def wait_until(cond, timeout: float = 5.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition never met"
        time.sleep(0.002)


def test_fair_lock_grants_turns_in_arrival_order_and_is_reentrant():
    lock = FairLock("t")
    order = []
    lock.acquire()
    lock.acquire()  # re-entrant: the holder is not queued behind itself
    threads = []
    for name in "BCD":
        th = threading.Thread(target=lambda n=name: (lock.acquire(), order.append(n), lock.release()))
        th.start()
        threads.append(th)
        wait_until(lambda k=len(threads): lock.waiting == k)
    lock.release()
    assert lock.busy and order == []  # still held once
    lock.release()
    for th in threads:
        th.join(5)
    assert order == ["B", "C", "D"] and not lock.busy
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()


def test_less_remaining_work_goes_first_but_a_long_waiter_is_not_passed_forever():
    import core.detectors.scheduler as sched

    clock = [100.0]
    lock = FairLock("t", clock=lambda: clock[0])
    order = []

    def job(name, work):
        lock.acquire(work=work)
        order.append(name)
        lock.release()

    def queue(name, work, at, waiting):
        clock[0] = at
        th = threading.Thread(target=job, args=(name, work))
        th.start()
        wait_until(lambda: lock.waiting == waiting)
        return th

    lock.acquire()
    # long (5 s of work left) asks first and short (0.5 s) after it: short goes first.
    # "later" (4 s, also a long job) asks when long's turn is overdue (asked + STRETCH x
    # work has passed, long not yet starving): long goes before it although later has
    # less work
    assert 0.5 <= sched.SHORT_JOB_SECONDS < 4.0
    late = 100.0 + sched.STRETCH * 5.0 + 1.0
    assert late - 100.0 < sched.STARVE_SECONDS and 100.0 + sched.STRETCH * 5.0 < late + sched.STRETCH * 4.0
    threads = [queue("long", 5.0, 100.0, 1), queue("short", 0.5, 101.0, 2),
               queue("later", 4.0, late, 3)]  # fmt: skip
    lock.release()
    for th in threads:
        th.join(5)
    assert order == ["short", "long", "later"]


def test_short_jobs_pass_overdue_long_ones_until_those_starve():
    import core.detectors.scheduler as sched

    clock = [100.0]
    lock = FairLock("t", clock=lambda: clock[0])
    order = []

    def queue(name, work, at):
        clock[0] = at
        n = lock.waiting
        th = threading.Thread(target=lambda: (lock.acquire(work=work), order.append(name), lock.release()))
        th.start()
        wait_until(lambda: lock.waiting == n + 1)
        return th

    lock.acquire()
    # "long" is overdue by the time "short" asks, yet short goes first: it is a short job
    overdue = 100.0 + sched.STRETCH * 5.0 + 1.0
    assert overdue - 100.0 < sched.STARVE_SECONDS
    threads = [queue("long", 5.0, 100.0), queue("short", 0.5, overdue)]
    lock.release()
    for th in threads:
        th.join(5)
    assert order == ["short", "long"]

    # a long job that has waited past STARVE_SECONDS goes before a new short one
    order.clear()
    lock.acquire()
    threads = [queue("starving", 10.0, 200.0), queue("new short", 0.5, 200.0 + sched.STARVE_SECONDS + 1)]
    lock.release()
    for th in threads:
        th.join(5)
    assert order == ["starving", "new short"]


def test_a_detector_measures_its_pace_and_keeps_turns_short(toy_spec):
    from core.detectors.detect import BATCH_SIZE, SHORT_WORK_SECONDS, TURN_SECONDS

    det = Detector.load("toy-model", device="cpu")
    assert det.seconds_per_window is None and det.turn_size() == 1  # unmeasured: one window
    det.p_spoof(np.zeros((3, toy_spec.input_length), dtype=np.float32))
    assert det.seconds_per_window > 0
    det.seconds_per_window = TURN_SECONDS / 2.5  # a slow model: two windows per turn
    assert det.turn_size() == 2
    over = int(SHORT_WORK_SECONDS / det.seconds_per_window) + 1
    assert det.turn_size(left=over) == 2  # more than a short job's work left
    det.seconds_per_window = SHORT_WORK_SECONDS / 7
    assert det.turn_size() == 2 and det.turn_size(left=6) == 6  # a short job: one turn
    det.seconds_per_window = 1e-6  # a fast model: a full batch
    assert det.turn_size() == BATCH_SIZE


def test_a_waiter_that_is_interrupted_leaves_the_queue():
    lock = FairLock("t")
    lock.acquire()
    seen = []

    def waiter():
        def on_wait(ahead):
            seen.append(ahead)
            raise JobCancelled("stop")

        with pytest.raises(JobCancelled):
            lock.acquire(on_wait=on_wait)

    th = threading.Thread(target=waiter)
    th.start()
    th.join(5)
    assert seen == [1] and lock.waiting == 0
    lock.release()
    got = threading.Event()
    threading.Thread(target=lambda: (lock.acquire(), got.set(), lock.release())).start()
    assert got.wait(5), "the queue was left blocked by the interrupted waiter"


class SlowNet(torch.nn.Module):
    """the toy net, slowed to ``delay`` seconds per forward pass (one batch of windows)"""

    def __init__(self, net, delay: float):
        super().__init__()
        self.inner, self.delay, self.calls = net, delay, 0

    def forward(self, x):
        self.calls += 1
        time.sleep(self.delay)
        return self.inner(x)


def test_a_short_file_interleaves_with_a_long_one_batch_by_batch(toy_spec, tmp_path):
    base = Detector.load("toy-model", device="cpu")
    slow = SlowNet(base.net, 0.03)
    det = Detector(toy_spec, slow, device=torch.device("cpu"))
    assert det.lock is compute_lock("toy-model", torch.device("cpu"))
    eng = Engine(tmp_path / "s.db", detectors={"toy-model": det})
    long_clip = wav(clip(20.0, seed=1))  # 399 windows of 0.1 s -> 50 batches, >= 1.5 s
    done, messages = {}, []

    def long_job():
        eng.analyze(long_clip, "long.wav")
        done["long"] = time.monotonic()

    th = threading.Thread(target=long_job)
    th.start()
    wait_until(lambda: slow.calls >= 3)
    t0 = time.monotonic()
    short = eng.analyze(wav(clip(0.3, seed=2)), "short.wav",
                        progress=lambda f, m: messages.append(m))  # fmt: skip
    done["short"] = time.monotonic()
    th.join(30)
    assert not short.cached["toy-model"] and len(short.verdicts["toy-model"].windows) == 5
    assert done["short"] < done["long"]
    assert done["short"] - t0 < 0.6  # a few turns, not the rest of the 1.5-s file
    assert any("sharing the model" in m for m in messages)


def test_cancelled_jobs_raise_and_leave_no_claim_behind(toy_spec, tmp_path):
    from core import store

    det = Detector.load("toy-model", device="cpu")
    eng = Engine(tmp_path / "c.db", detectors={"toy-model": det})
    a = eng.analyze(wav(clip(1.0, seed=3)), "a.wav")

    token = CancelToken()

    def progress(fraction, message):
        if "shap" in message:
            token.cancel()  # as the page's Cancel button does mid-run

    with pytest.raises(JobCancelled):
        eng.explain(a.sha256, "toy-model", "shap", progress=progress, cancel=token)
    with store.open_db(eng.db_path) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    assert eng.find_explanation(a.sha256, "toy-model", "shap") is None
    # nothing is left half-done: the same explanation computes afterwards
    assert not eng.explain(a.sha256, "toy-model", "shap").cached

    stop = CancelToken()
    stop.cancel()
    with pytest.raises(JobCancelled):
        eng.analyze(wav(clip(2.0, seed=4)), "b.wav", cancel=stop)
    with store.open_db(eng.db_path) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


# ------------------------------------------------------------ kept turns (short jobs)


def test_a_kept_turn_goes_back_to_its_holder_before_earlier_waiters():
    lock = FairLock("k")
    order = []
    lock.acquire()
    waiter = threading.Thread(target=lambda: (lock.acquire(work=0.0), order.append("other"), lock.release()))
    waiter.start()
    wait_until(lambda: lock.waiting == 1)
    lock.release(keep_for=1.0)
    time.sleep(0.1)
    assert order == []  # kept: the waiter may not take it
    with lock.turn(work=50.0):  # back within the time kept, even with more work queued
        order.append("holder")
    waiter.join(5)
    assert order == ["holder", "other"]


def test_a_kept_turn_not_taken_in_time_goes_to_the_queue():
    lock = FairLock("k2")
    got = threading.Event()
    lock.acquire()
    waiter = threading.Thread(target=lambda: (lock.acquire(), got.set(), lock.release()))
    waiter.start()
    wait_until(lambda: lock.waiting == 1)
    t0 = time.monotonic()
    lock.release(keep_for=0.2)  # and never comes back
    assert got.wait(5)
    assert 0.15 < time.monotonic() - t0 < 1.5


class Logged(torch.nn.Module):
    """records which thread ran each forward pass"""

    def __init__(self, inner, log: list, delay: float):
        super().__init__()
        self.inner, self.log, self.delay = inner, log, delay

    def forward(self, x):
        self.log.append(threading.current_thread().name)
        time.sleep(self.delay)
        return self.inner(x)


def test_a_short_job_keeps_the_shared_lock_from_one_model_to_the_next(toy_spec):
    base = Detector.load("toy-model", device="cpu")
    log: list = []
    first = Detector(toy_spec, Logged(base.net, log, 0.02), device=torch.device("cpu"))
    second = Detector(toy_spec, Logged(base.net, log, 0.02), device=torch.device("cpu"))
    assert first.lock is second.lock  # one lock on a CPU
    x = np.zeros((2, toy_spec.input_length), dtype=np.float32)
    first.p_spoof(x)
    second.p_spoof(x)  # both paces measured
    stop = threading.Event()

    def long_job():  # asks for turn after turn with much work left
        while not stop.is_set():
            first.p_spoof(x[:1], remaining=1000, work_after=100.0)

    th = threading.Thread(target=long_job, name="long")
    th.start()
    wait_until(lambda: log.count("long") >= 3)
    me = threading.current_thread().name
    first.p_spoof(x, work_after=0.05)  # a 6-s upload: the next model's work is small
    second.p_spoof(x)
    stop.set()
    th.join(5)
    mine = [i for i, name in enumerate(log) if name == me][-2:]
    assert mine[1] == mine[0] + 1, log[mine[0] : mine[1] + 1]  # no long turn in between


def test_turns_are_kept_only_where_every_model_shares_one_lock(toy_spec, monkeypatch):
    base = Detector.load("toy-model", device="cpu")
    assert base.keeps_turns  # CPU: one lock for every model
    monkeypatch.setenv("DEEPFAKE_COMPUTE_LOCKS", "per-model")
    own = Detector(toy_spec, base.net, device=torch.device("cpu"))
    assert not own.keeps_turns and own.lock.name == "model:toy-model"
    x = np.zeros((1, toy_spec.input_length), dtype=np.float32)
    own.p_spoof(x, work_after=0.05)
    got = threading.Event()
    threading.Thread(target=lambda: (own.lock.acquire(), got.set(), own.lock.release())).start()
    assert got.wait(0.2), "a per-model lock was kept for a model the job will not come back to"
