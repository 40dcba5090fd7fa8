"""Who computes next: fair turns on the shared networks, and cancellable jobs.

Every session of a server, every CLI thread and every batch worker in one process share
the loaded networks (core.engine.service.get_detector). Work on them is taken in **turns**: a
turn is one batch of windows when scoring (core.detectors.detect.BATCH_SIZE windows), one batch of
coalitions for SHAP, LIME and the deletion curves, or a whole method run for the methods
that hook the network's modules (Grad-CAM, GradientSHAP: ``Explainer.exclusive``).

Turns are granted by **earliest virtual deadline**: a job asking for a turn says how
much compute it still needs (``work``, seconds: core.detectors.detect estimates it from the
windows it has left on this model and every model after it, at each model's measured
time per window), and its deadline is the time it asked plus STRETCH times that work.
The waiter with the earliest deadline goes next, and a job queues again after each turn.
So a 6-s upload (under a second of work) goes ahead of a 2-minute file's next turn,
while among long jobs none is passed forever: its deadline does not move while it waits,
and it goes first once every newer long waiter's deadline is later (short jobs pass it
regardless, up to STARVE_SECONDS: see "Short jobs first" below). With no work given (an
explanation's hook run, the tests) the order is first come, first served. Turns are
short (core.detectors.detect: TURN_SECONDS of windows, 1 to BATCH_SIZE), so a short job waits for
at most one turn of a long one before each of its own; and a job that is nearly done
keeps the lock from one model to the next (``release(keep_for=...)``,
core.detectors.detect.KEEP_SECONDS; with one lock for every model, i.e. on a CPU), so it waits
once, not once per model. This replaced plain round-robin turns on 2026-12-07: with one
8-window AASIST batch taking ~2 s on 2 CPU cores, a 6-s upload waited a whole batch of
every running job once per model (`python -m benchmarks load`: new uploads p95 19 s with
several 2-min uploads in flight; 6 s with these turns).

**Short jobs first.** Deadlines alone let an overloaded server make everyone late: with
several 2-min uploads queued, their turns fall due one after another, and a new 6-s
upload would queue behind every overdue one. So a job with at most SHORT_JOB_SECONDS of
work left goes ahead of longer ones whatever their deadlines (short-job-first, the
policy the issue offers beside fair interleaving); among short jobs, and among long
ones, the earliest deadline goes first. A long job is still never starved: one that has
waited more than STARVE_SECONDS for a turn goes before everyone, and short jobs are
short by definition (uploads at a person's pace). Measured (`python -m benchmarks load`,
README): back to back, what a new 6-s upload still waits for is other new uploads.

On a CPU one lock is shared by every model (torch already uses every core for one
forward pass, so two at once only slow each other); on a GPU each model has its own
lock, so different models overlap. ``DEEPFAKE_COMPUTE_LOCKS=shared|per-model`` overrides.
A thread that holds a turn may take it again (re-entrant), so an exclusive method's own
forward passes do not queue behind others.

Cancellation is cooperative: ``CancelToken.cancel()``; the job raises JobCancelled at
its next progress report (after each batch; core.detectors.scheduler.cancellable wraps the
progress callback), and the store drops its claim (core.store.flight). The dashboard's
Cancel button uses Streamlit's own rerun, which stops the page's run the same way.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Callable, Iterator

LOCKS_ENV = "DEEPFAKE_COMPUTE_LOCKS"
# A waiter's turn is due STRETCH times its remaining work after it asked: newer, shorter
# jobs may pass a long one until then (see the module's docstring).
STRETCH = 4.0
# Jobs with at most this much work left (a 6-s upload on every model: ~1 s) go ahead of
# longer ones whatever their deadlines, unless a longer one has waited more than
# STARVE_SECONDS for this turn: then it goes first.
SHORT_JOB_SECONDS = 3.0
STARVE_SECONDS = 60.0


_WAITED = threading.local()  # seconds this thread has queued for turns, on every lock


def waited_seconds() -> float:
    """how long the calling thread has waited for turns so far (core.engine.trace reads it)"""
    return getattr(_WAITED, "seconds", 0.0)


class JobCancelled(Exception):
    """raised inside a job whose CancelToken was cancelled"""


class CancelToken:
    """A job's cancel switch: ``cancel()`` from anywhere, ``check()`` inside the job."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise JobCancelled("cancelled")


class FairLock:
    """
    A re-entrant lock granted in order of (arrival + work, arrival order): earliest
    virtual deadline first, first come first served among equal work. ``waiting`` says
    how many threads queue for it, for "n jobs ahead of you" messages.
    """

    def __init__(self, name: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        # (deadline, ticket number, asked, short job) of each waiter
        self._queue: list[tuple[float, int, float, bool]] = []
        self._owner: int | None = None
        self._depth = 0
        self._next_ticket = 0
        # (thread, until): after release(keep_for=...), the next turn is that thread's
        # until then (time.monotonic), whoever else queues
        self._kept: tuple[int, float] | None = None

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._owner is not None

    def acquire(self, *, on_wait: Callable[[int], None] | None = None, work: float = 0.0) -> None:
        """
        take the lock; ``work``: seconds of compute the caller still needs (its
        priority); ``on_wait(jobs ahead)`` is called once if it must queue
        """
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            now, work = self._clock(), max(0.0, float(work))
            ticket = (now + STRETCH * work, self._next_ticket, now, work <= SHORT_JOB_SECONDS)
            self._next_ticket += 1
            self._queue.append(ticket)
            asked = time.perf_counter()
            try:
                if on_wait is not None and not self._free_for(ticket, me):
                    now = self._clock()
                    mine = self._rank(ticket, now)
                    ahead = sum(self._rank(t, now) < mine for t in self._queue) + (self._owner is not None)
                    self._cond.release()  # never call out while holding the condition
                    try:
                        on_wait(ahead)
                    finally:
                        self._cond.acquire()
                while not self._free_for(ticket, me):
                    # a kept turn ends by itself: wake up then, not only on a release
                    kept_left = self._kept[1] - time.monotonic() if self._kept else None
                    self._cond.wait(kept_left)
            except BaseException:  # a cancelled or interrupted waiter leaves the queue
                self._queue.remove(ticket)
                self._cond.notify_all()
                raise
            self._queue.remove(ticket)
            self._owner, self._depth, self._kept = me, 1, None
        _WAITED.seconds = waited_seconds() + time.perf_counter() - asked

    @staticmethod
    def _rank(ticket: tuple[float, int, float, bool], now: float) -> tuple[int, float, int]:
        """starving long jobs (longest waiting first), then short jobs, then long ones;
        within a class earliest deadline, then arrival"""
        deadline, number, asked, short = ticket
        if not short and now - asked > STARVE_SECONDS:
            return (0, asked, number)
        return (1 if short else 2, deadline, number)

    def _free_for(self, ticket: tuple[float, int, float, bool], me: int) -> bool:
        if self._owner is not None:
            return False
        if self._kept is not None:
            keeper, until = self._kept
            if keeper == me:
                return True
            if time.monotonic() < until:
                return False
            self._kept = None  # not taken in time: the queue's order again
        now = self._clock()
        return min(self._queue, key=lambda t: self._rank(t, now)) == ticket

    def release(self, *, keep_for: float = 0.0) -> None:
        """
        give the lock up; ``keep_for`` > 0: the next turn stays this thread's for that
        many seconds (a short job going on to its next model), then it is the queue's
        """
        me = threading.get_ident()
        with self._cond:
            if self._owner != me:
                raise RuntimeError(f"lock {self.name!r} released by a thread that does not hold it")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._kept = (me, time.monotonic() + keep_for) if keep_for > 0 else None
                self._cond.notify_all()

    @contextlib.contextmanager
    def turn(
        self, on_wait: Callable[[int], None] | None = None, work: float = 0.0, keep_for: float = 0.0
    ) -> Iterator[None]:
        self.acquire(on_wait=on_wait, work=work)
        try:
            yield
        finally:
            self.release(keep_for=keep_for)


_LOCKS: dict[str, FairLock] = {}
_LOCKS_GUARD = threading.Lock()


def shared_locks(device) -> bool:
    """one lock for every model (CPU, or DEEPFAKE_COMPUTE_LOCKS=shared) or one per model"""
    mode = os.environ.get(LOCKS_ENV, "").strip().lower()
    if mode in ("shared", "per-model"):
        return mode == "shared"
    return getattr(device, "type", str(device)) != "cuda"


def compute_lock(model_key: str, device) -> FairLock:
    """the process-wide lock a model's work takes turns on"""
    name = f"device:{getattr(device, 'type', device)}" if shared_locks(device) else f"model:{model_key}"
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(name, FairLock(name))


def turn_of(detector) -> contextlib.AbstractContextManager:
    """one turn on this detector's lock; a no-op for detector-likes without one (fakes)"""
    lock = getattr(detector, "lock", None)
    return lock.turn() if isinstance(lock, FairLock) else contextlib.nullcontext()


def cancellable(progress, token: CancelToken | None):
    """progress(fraction, message) that first raises JobCancelled once ``token`` is cancelled"""
    if token is None:
        return progress

    def report(fraction: float, message: str) -> None:
        token.check()
        if progress is not None:
            progress(fraction, message)

    return report
