"""One file's work in a batch: what a worker (local process or Ray task) computes.

A Task names a file and its missing results (Todo); ``work`` decodes the file and
computes them with a store-less Engine, touching no database, so that the driver
(core.corpus.batch) alone writes the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from core.audio.decode import AudioError, audio_info, load_audio
from core.detectors.registry import WeightsError
from core.engine.service import Engine

VERDICT = "verdict"  # the ``what`` of a to-do item that is a verdict, not a method


@dataclass(frozen=True)
class Todo:
    model: str
    what: str  # VERDICT or an explanation method
    window: int | None = None  # explanations: the stored verdict's max_window, if any


@dataclass(frozen=True)
class Task:
    file_id: str
    path: str | None  # the driver's copy; None once shipped to a cluster
    segments: int
    todo: tuple[Todo, ...] = ()
    sha256: str = ""  # of the file's bytes, as the driver read them
    url: str | None = None  # where a cluster worker reads the file (--audio-url)


def one_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def work(task: Task, *, data: bytes | None = None, detectors: dict | None = None) -> dict:
    """
    Compute one file's missing results. Runs in a worker; touches no database.
    ``data`` : the file's bytes (default: read ``task.path``); ``detectors`` : model key
    -> Detector (default: the process-wide ones, weights from the weights directory).

    Returns {"file_id", "sha256", "info", "verdicts": {model: verdict json},
    "explanations": [(model, method, (meta, arrays))], "error": None,
    "seconds": {"audio", "compute"}} or {"file_id", "error": one-line message}.
    """
    try:
        t0 = time.perf_counter()
        if data is None:
            data = Path(task.path).read_bytes()
        t1 = time.perf_counter()
        audio = load_audio(data)
        eng = Engine(use_store=False, detectors=detectors)
        out = {"file_id": task.file_id, "sha256": audio.sha256, "info": audio_info(audio),
               "verdicts": {}, "explanations": [], "error": None}
        fresh = {}
        for t in task.todo:
            if t.what == VERDICT:
                fresh[t.model] = eng.verdict(audio, t.model)[0]
                out["verdicts"][t.model] = fresh[t.model].to_json()
        for t in task.todo:
            if t.what != VERDICT:
                window = t.window
                if window is None:  # no stored verdict: this run's own
                    if t.model not in fresh:
                        fresh[t.model] = eng.verdict(audio, t.model)[0]
                    window = fresh[t.model].max_window
                r = eng.explain_audio(audio, t.model, t.what, window=window,
                                      segments=task.segments)
                out["explanations"].append((t.model, t.what, r.explanation.to_record()))
        out["seconds"] = {"audio": t1 - t0, "compute": time.perf_counter() - t1}
        return out
    except (AudioError, OSError, WeightsError) as e:
        return {"file_id": task.file_id, "error": one_line(e)}
    except Exception as e:  # a bug on one file must not stop the batch
        return {"file_id": task.file_id, "error": f"{type(e).__name__}: {one_line(e)}"}
