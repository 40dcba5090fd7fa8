"""The dashboard's only door to the engine: one core.engine.service.Engine per server.

The Engine is held by ``st.cache_resource``, keyed by the store path in $DEEPFAKE_DB, so
every session shares its detectors and locks and no page threads a path by hand. The
adapters below add what only the dashboard needs: the upload size limit, short-lived
caches (model list, model cards, decoded audio, spectrograms) and the clearing of those
caches when an analysis is deleted. Everything returned is typed (core.engine.results.Analysis,
core.detectors.detect.Verdict, core.explain.base.Explanation) or a store row for the history.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from core.audio.decode import SAMPLE_RATE, AudioError
from core.corpus.summary import summarise_batch
from core.detectors.registry import MODELS, weights_dir
from core.engine.results import Analysis, ExplainResult
from core.engine.service import Engine, Progress
from core.export import report

DB_ENV = "DEEPFAKE_DB"
# How long a thread may hold the GIL while others wait (Python's default: 5 ms). A
# forward pass is hundreds of torch calls, each releasing the GIL and taking it back;
# while other sessions' page runs keep the interpreter busy, every take-back waited up
# to the whole interval: three models on a 6-s clip took 5.9 s beside two busy Python
# threads at 5 ms, 3.0 s at 1 ms (0.38 s alone; README, "Many analysts").
SWITCH_INTERVAL_S = 0.001


def engine() -> Engine:
    """The server's Engine for the store named by $DEEPFAKE_DB (else the default)."""
    return _engine(os.environ.get(DB_ENV) or "")


@st.cache_resource(show_spinner=False)
def _engine(db: str) -> Engine:
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # once per server, before any scoring
    return Engine(db or None, compute=_cluster())


def _cluster():
    """Ray Serve deployments when ray_address (secrets file) or $DEEPFAKE_RAY_ADDRESS
    is set (core.corpus.serve), else None: the models run in this process."""
    from core.corpus.serve import compute_from_settings

    try:
        secrets = st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    except Exception:  # an unusable secrets file: the gate refuses every page anyway
        secrets = {}
    return compute_from_settings(secrets, os.environ)


def db_path() -> str:
    return str(engine().db_path)


# ------------------------------------------------------------------------- models


def model_keys() -> list[str]:
    """Models whose weights are installed and verified (rechecked every 30 s)."""
    return _model_keys(str(weights_dir()))


@st.cache_data(ttl=30, show_spinner=False)
def _model_keys(directory: str) -> list[str]:
    # the directory is the cache key: the engine reads the same one from the environment
    refresh_user_models(directory)
    return engine().available_models()


_USER_REGISTRY_SEEN: dict[str, int | None] = {}


def refresh_user_models(directory: str) -> None:
    """Merge `weights add` / `weights remove` made while the server runs (on change)."""
    from core.detectors.registry import load_user_models
    from core.detectors.user_registry import registry_path

    path = registry_path(directory)
    mtime = path.stat().st_mtime_ns if path.exists() else None
    if _USER_REGISTRY_SEEN.get(directory, "unseen") != mtime:
        _USER_REGISTRY_SEEN[directory] = mtime
        load_user_models(Path(directory))


def registered_models() -> list[str]:
    """Every registered model key, weights installed or not (for filters)."""
    return list(MODELS)


def method_caveat(method: str, model: str) -> str | None:
    """a measured limit of the method on this model, or None (core.explain.base)"""
    spec = MODELS.get(model)
    return None if spec is None else methods()[method].caveat_for(spec)


def model_name(key: str) -> str:
    return report.display_name(key)


def model_cards() -> list[dict]:
    """What the Models page shows per registered model (core.engine.cards; every 30 s)."""
    return _model_cards(str(weights_dir()))


@st.cache_data(ttl=30, show_spinner=False)
def _model_cards(directory: str) -> list[dict]:
    return engine().model_cards()


def methods() -> dict:
    """{method key: Explainer}, in registry order (label, description, cost)."""
    return engine().methods()


def method_label(key: str) -> str:
    explainer = methods().get(key)
    return explainer.title if explainer is not None else key


# --------------------------------------------------------------------- analyses


def max_upload_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


MAX_WINDOWS_ENV = "DEEPFAKE_MAX_WINDOWS"
DEFAULT_MAX_WINDOWS = 120  # per model: 6 min of audio for Res-TSSDNet, 4 min for AASIST


def max_windows() -> int | None:
    """
    The dashboard's cap on windows scored per model: $DEEPFAKE_MAX_WINDOWS (0 = no cap),
    else DEFAULT_MAX_WINDOWS. Longer files get that many windows evenly spread, and
    the verdict says how much of the file it covers; the CLI and batches score all.
    """
    raw = os.environ.get(MAX_WINDOWS_ENV, "").strip()
    try:
        n = int(raw) if raw else DEFAULT_MAX_WINDOWS
    except ValueError:
        n = DEFAULT_MAX_WINDOWS
    return None if n <= 0 else max(n, 2)


def analyze_upload(
    data: bytes, filename: str, *, progress: Progress | None = None
) -> Analysis:
    """
    Score an upload with every available model (at most max_windows() windows each)
    and store it. Raises AudioError (bad or too large file), WeightsError (no usable
    model), StoreError (store unusable).
    """
    limit_mb = max_upload_mb()
    if len(data) > limit_mb * 2**20:
        raise AudioError(
            f"the file is {len(data) / 2**20:.1f} MB; the upload limit is {limit_mb} MB"
        )
    return engine().analyze(
        data, filename, models=model_keys(), progress=progress, max_windows=max_windows()
    )


def analysis(sha: str) -> Analysis | None:
    """The stored analysis (no model runs), or None for an unknown or malformed hash."""
    return engine().analysis(sha)


def explain(
    sha: str,
    model: str,
    method: str,
    *,
    window: int | None = None,
    target: str | None = None,
    progress: Progress | None = None,
) -> ExplainResult:
    """From the store when there, else computed once (across sessions) and stored."""
    return engine().explain(
        sha, model, method, window=window, target=target, progress=progress
    )


def find_explanation(sha: str, model: str, method: str, *, window: int, target=None):
    """The stored explanation of exactly this view, or None; never computes."""
    return engine().find_explanation(sha, model, method, window=window, target=target)


def explanations(sha: str) -> list:
    """Every explanation stored for this audio (the exports)."""
    return engine().explanations(sha)


def history(**filters):
    """One page of the store's history (core.store.HistoryPage; items are rows)."""
    return engine().history(**filters)


def delete(sha: str) -> bool:
    """Remove everything stored about a file, and the dashboard's caches of it."""
    gone = engine().delete(sha)
    _audio_samples.clear()
    _window_cqt.clear()
    return gone


# ------------------------------------------------------------------------- audio


def audio_bytes(sha: str) -> bytes | None:
    """The stored original file, or None when it is no longer stored."""
    return engine().audio_bytes(sha)


def audio_samples(sha: str) -> np.ndarray | None:
    """The stored original decoded to 16 kHz mono (read-only, shared)."""
    return _audio_samples(db_path(), sha)


@st.cache_resource(max_entries=4, show_spinner=False)
def _audio_samples(db: str, sha: str) -> np.ndarray | None:
    audio = engine().audio(sha)
    if audio is None:
        return None
    x = audio.samples
    x.setflags(write=False)
    return x


def window_cqt(sha: str, start: float, end: float) -> np.ndarray | None:
    """CQT log power of [start, end) seconds of the stored audio, (432, frames) dB."""
    return _window_cqt(db_path(), sha, start, end)


@st.cache_data(max_entries=32, show_spinner=False)
def _window_cqt(db: str, sha: str, start: float, end: float) -> np.ndarray | None:
    from core.audio.features import cqt_log_power

    x = audio_samples(sha)
    if x is None:
        return None
    return cqt_log_power(x[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)])


# ------------------------------------------------------------------------ corpus


def batches() -> list[dict]:
    """Every batch run in the store, newest first, with its file counts."""
    return engine().batches()


def batch_files(name: str) -> list[dict]:
    return engine().batch_files(name)


def corpus_summary(name: str, updated: str):
    """Per-attack results of a batch (core.corpus.summary.CorpusSummary), cached per update."""
    return _corpus_summary(db_path(), name, updated)


@st.cache_data(max_entries=8, show_spinner=False)
def _corpus_summary(db: str, name: str, updated: str):
    return summarise_batch(engine(), name)


def calibration_metrics_path():
    """calibration.metrics.json next to the calibration file (core.cli.calibrate)."""
    from core.judgement.assessment import calibration_metrics_path

    return calibration_metrics_path()


_log = logging.getLogger(__name__)
_WARMED: set[str] = set()
_WARM_LOCK = threading.Lock()


def warm_up(keys: list[str]) -> None:
    """Load these models' detectors in a background thread, once per process."""
    with _WARM_LOCK:
        todo = [k for k in keys if k not in _WARMED]
        _WARMED.update(todo)
    if not todo:
        return

    eng = engine()

    def load() -> None:
        for key in todo:
            try:
                eng.detector(key)
            except Exception as e:  # the page reports a broken model when it is used
                _log.warning("could not preload %s: %s", key, e)

    threading.Thread(target=load, name="warm-up-detectors", daemon=True).start()
