"""Where an analysis' time goes: phase timings as JSON lines, when $DEEPFAKE_TRACE is set.

    DEEPFAKE_TRACE=/tmp/trace.jsonl streamlit run streamlit_app.py

Each new analysis (core.engine.service.Engine.analyze) appends one line: the file's duration,
then per phase (decoding, recording in the store, each model, the input measurements)
the wall seconds and the part of them spent queueing for turns on the shared networks
(core.detectors.scheduler.waited_seconds), and the total. ``python -m benchmarks load`` sets it
and prints the phases per kind of upload. Unset (the default), nothing is written and a
trace costs two clock reads per phase.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Iterator

from core.detectors.scheduler import waited_seconds

TRACE_ENV = "DEEPFAKE_TRACE"
_WRITE_LOCK = threading.Lock()


class Trace:
    """phase timings of one job; ``with trace.phase("decode"): ...``, then ``write()``"""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0, w0 = time.perf_counter(), waited_seconds()
        try:
            yield
        finally:
            self.phases[name] = {
                "seconds": time.perf_counter() - t0,
                "waited": waited_seconds() - w0,
            }

    def record(self, **fields) -> dict:
        return {**fields, "phases": self.phases, "total": time.perf_counter() - self.started}

    def write(self, **fields) -> None:
        """append this job's line to $DEEPFAKE_TRACE (nothing when it is unset)"""
        path = os.environ.get(TRACE_ENV, "").strip()
        if not path:
            return
        line = json.dumps(self.record(**fields)) + "\n"
        with _WRITE_LOCK, open(path, "a", encoding="utf-8") as f:
            f.write(line)


def read_trace(path) -> list[dict]:
    """the lines of a trace file (a torn last line is skipped; no file: none)"""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out
