"""Streamlit glue shared by the pages: access gate, cached engine calls, drawing blocks.

The only non-page module that imports streamlit. Models are loaded once per server
(``st.cache_resource``); analyses and explanations live in the store (core.store) and
are read back from it, so switching pages or reopening a file recomputes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from core import charts, report
from core.audio import SAMPLE_RATE, AudioError, load_audio
from core.registry import MODELS, WeightsError, available_models, weights_dir
from core.store import StoreError

PASSWORD_ENV = "DEEPFAKE_PASSWORD"
GATE_TITLE = ":material/lock: Synthetic speech detector"
PASSWORD_SECRET = "access_password"
UPLOAD_TYPES = ["wav", "flac", "mp3", "ogg"]



@dataclass(frozen=True)
class PageSpec:
    file: str  # script, relative to the entry point
    title: str
    icon: str
    url_path: str  # "" = the root (the default page)


# the app's pages, in menu order; streamlit_app.py routes exactly these. To add a page:
# one script in pages/ that starts with ui.page_setup(KEY), and one entry here.
PAGES: dict[str, PageSpec] = {
    "analyze": PageSpec("pages/analyze.py", "Analyze", ":material/graphic_eq:", ""),
    "compare": PageSpec("pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    "history": PageSpec("pages/history.py", "History", ":material/history:", "history"),
    "corpus": PageSpec("pages/corpus.py", "Corpus", ":material/library_music:", "corpus"),
    "models": PageSpec("pages/models.py", "Models", ":material/model_training:", "models"),
}
PAGE_FILES = {k: p.file for k, p in PAGES.items()}
PAGE_TITLES = {k: (p.title, p.icon) for k, p in PAGES.items()}
URL_PATHS = {k: p.url_path for k, p in PAGES.items()}
TARGET_CHOICES = {"predicted": None, "spoof": "spoof", "bonafide": "bonafide"}


# -------------------------------------------------------------------- access gate


def configured_password() -> str | None:
    """st.secrets["access_password"], else $DEEPFAKE_PASSWORD, else None (open)"""
    try:
        value = st.secrets.get(PASSWORD_SECRET) if st.secrets.load_if_toml_exists() else None
    except Exception:  # an unreadable secrets file holds no usable secret
        value = None
    return str(value) if value else (os.environ.get(PASSWORD_ENV) or None)


def _fingerprint(password: str) -> str:
    # kept in session state instead of the password; a changed password logs all out
    return hashlib.sha256(b"deepfake-dashboard:" + password.encode()).hexdigest()


def require_access() -> bool:
    """
    True when the visitor may see the app. With a password configured and not yet
    given in this session, draws the password form (and nothing else) and returns False.
    """
    password = configured_password()
    if password is None:
        return True
    if st.session_state.get("access_token") == _fingerprint(password):
        return True
    st.title(GATE_TITLE)
    st.write("This dashboard is protected. Enter the access password to continue.")
    with st.form("access_form"):
        given = st.text_input("Access password", type="password", key="access_given")
        submitted = st.form_submit_button("Enter", type="primary")
    if submitted:
        if hmac.compare_digest(given.encode(), password.encode()):
            st.session_state["access_token"] = _fingerprint(password)
            st.rerun()
        st.error("Wrong password. Ask the person who runs this server.")
    return False


def page_setup(page: str) -> None:
    """
    First call of every page: page config, the access gate (nothing below it runs
    until the password is given), then the shared sidebar.
    """
    title, icon = PAGE_TITLES.get(page, (page.title(), ":material/description:"))
    st.set_page_config(
        page_title=f"{title} · Synthetic speech detector",
        page_icon=icon,
        layout="wide",
        menu_items={"About": "Tells synthetic speech from real speech and shows why."},
    )
    if not require_access():
        st.stop()
    sidebar()


def access_notice() -> None:
    if configured_password() is None:
        st.caption(
            ":material/lock_open: **Open access**: no password is configured, so anyone "
            f"who can reach this server can use it. Set `{PASSWORD_SECRET}` in "
            f".streamlit/secrets.toml or ${PASSWORD_ENV} to require one."
        )
    else:
        st.caption(":material/lock: Password protected.")


# ------------------------------------------------------------------------- models


def model_keys() -> list[str]:
    """models whose weights are installed and verified (rechecked every 30 s)"""
    return _model_keys(str(weights_dir()))


@st.cache_data(ttl=30, show_spinner=False)
def _model_keys(directory: str) -> list[str]:
    return available_models(Path(directory))


@st.cache_resource(show_spinner="Loading model weights (once per server)…")
def get_detector(key: str):
    """one Detector per model per server process; never mutated"""
    from core.detect import Detector

    return Detector.load(key)


def detectors(keys: list[str]) -> dict:
    return {k: get_detector(k) for k in keys}


@st.cache_resource(show_spinner=False)
def model_lock(key: str) -> threading.Lock:
    """
    One lock per shared model. Grad-CAM (and the window set-up of every method) hooks
    the network's modules while it runs, so another session's forward pass through the
    same network must wait rather than fire those hooks.
    """
    return threading.Lock()


@contextlib.contextmanager
def using_models(keys, *, progress=None):
    """hold the locks of these models (in a fixed order: no deadlock)"""
    with contextlib.ExitStack() as stack:
        for k in sorted(set(keys)):
            lock = model_lock(k)
            if lock.locked() and progress:
                progress(0.0, f"waiting: {model_name(k)} is busy with another request")
            stack.enter_context(lock)
        yield


def no_models_message() -> None:
    st.error(
        "No detector is available, so new files cannot be analysed: no model has "
        f"verified weights in `{weights_dir()}`. Install the published AASIST weights "
        "with `python -m core weights fetch aasist-official` (see the **Models** page). "
        "Stored analyses can still be opened from History."
    )


def methods() -> dict:
    """{method key: Explainer} from core.explain, in registry order"""
    from core.explain import EXPLAINERS

    return dict(EXPLAINERS)


def method_description(key: str) -> str:
    return getattr(methods().get(key), "description", "") or ""


def model_name(key: str) -> str:
    return report.display_name(key)


# --------------------------------------------------------------- engine and store


def db_path() -> str | None:
    return os.environ.get("DEEPFAKE_DB") or None


def max_upload_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def analyze_upload(data: bytes, filename: str, *, progress=None):
    """decode, score with every available model, store; raises AudioError for bad input"""
    from core.analyze import analyze_bytes

    limit = max_upload_mb() * 2**20
    if len(data) > limit:
        raise AudioError(
            f"the file is {len(data) / 2**20:.1f} MB; the upload limit is {max_upload_mb()} MB"
        )
    keys = model_keys()
    with using_models(keys, progress=progress):
        return analyze_bytes(
            data, filename, models=keys, detectors=detectors(keys), db=db_path(),
            progress=progress,
        )


def get_analysis(sha: str):
    """the stored analysis (no model runs), or None for an unknown or malformed hash"""
    from core.analyze import load_analysis

    sha = (sha or "").strip().lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        return None
    return load_analysis(sha, db=db_path())


def explain(sha: str, model: str, method: str, *, window=None, target=None, progress=None):
    """(Explanation, cached, seconds): from the store when there, else computed and stored"""
    from core.analyze import explain_stored

    with using_models([model], progress=progress):
        return explain_stored(
            sha, model, method, window=window, target=target, db=db_path(),
            progress=progress, detectors={model: get_detector(model)},
        )


def stored_explanation(sha: str, model: str, method: str, *, window: int, target=None):
    """
    The stored explanation for exactly this view, or None; never computes. The key is
    built as core.analyze.explain_stored builds it (default segments, seed, samples).
    """
    from core import store
    from core.explain import EXPLAINERS, Explanation, explain_params

    params = dict(explain_params(method, window=window, target=target))
    params.update(window=window, target=target)
    key = store.explanation_key(
        sha, model, MODELS[model].sha256, method, str(EXPLAINERS[method].version), params
    )
    record = store.get_explanation(key, db=db_path())
    return None if record is None else Explanation.from_record(*record)


def stored_explanations(sha: str) -> list:
    """every explanation stored for this audio (for the exports and Compare)"""
    from core.analyze import load_explanations

    return load_explanations(sha, db=db_path())


def history(**filters):
    from core import store

    return store.list_history(db=db_path(), **filters)


def delete_analysis(sha: str) -> bool:
    from core import store

    gone = store.delete_analysis(sha, db=db_path())
    audio_samples.clear()
    window_cqt.clear()
    return gone


def audio_bytes(sha: str) -> bytes | None:
    from core import store

    try:
        return store.audio_bytes(sha, db=db_path())
    except store.NotStoredError:
        return None


@st.cache_resource(max_entries=4, show_spinner=False)
def audio_samples(sha: str) -> np.ndarray | None:
    """the stored original, decoded to 16 kHz mono (read-only, shared)"""
    data = audio_bytes(sha)
    if data is None:
        return None
    x = load_audio(data).samples
    x.setflags(write=False)
    return x


@st.cache_data(max_entries=32, show_spinner=False)
def window_cqt(sha: str, start: float, end: float) -> np.ndarray | None:
    """CQT log power of [start, end) seconds of the stored audio, (432, frames) dB"""
    from core.features import cqt_log_power

    x = audio_samples(sha)
    if x is None:
        return None
    return cqt_log_power(x[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)])


# ------------------------------------------------------------------- share links


def base_url() -> str:
    """the app's root URL as the visitor's browser sees it (page path stripped)"""
    url = st.context.url or f"http://localhost:{st.get_option('server.port')}"
    url = url.split("?")[0].rstrip("/")
    for path in URL_PATHS.values():
        if path and url.endswith("/" + path):
            return url[: -len(path) - 1]
    return url


def share_url(sha: str, *, page: str = "analyze", **params) -> str:
    query = {"sha": sha, **{k: v for k, v in params.items() if v is not None and v != ""}}
    path = URL_PATHS[page]
    return f"{base_url()}/{path}?{urllib.parse.urlencode(query)}"


def share_box(url: str, *, label: str = "Share link") -> None:
    st.markdown(f"**{label}** — anyone who can reach this server opens exactly this view:")
    st.code(url, language=None)


def md(text: str) -> str:
    """user text (file names, link parameters) made inert for st.markdown"""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>:~$])", r"\\\1", str(text))


def analysis_or_stop(sha: str):
    """the stored analysis, or a clear message and st.stop() for an unknown hash"""
    analysis = get_analysis(sha)
    if analysis is None:
        unknown_hash(sha)
        st.stop()
    return analysis


def unknown_hash(sha: str) -> None:
    shown = re.sub(r"[^0-9A-Za-z]", "", sha)[:64] or "(empty)"
    st.error(
        f"No analysis with hash `{shown}` is stored on this server. The link may be "
        "mistyped, the analysis may have been deleted, or it was made on another server. "
        "Upload the file again to analyse it."
    )


# ---------------------------------------------------------------------- drawing


def short(sha: str) -> str:
    return sha[:12]


def audio_header(analysis) -> None:
    names = report.filenames(analysis)
    st.subheader(f":material/audio_file: {md(names[0]) if names else 'Recording'}")
    cols = st.columns(4)
    cols[0].metric("Duration", f"{float(analysis.duration):.2f} s")
    cols[1].metric("Original rate", f"{analysis.orig_sample_rate} Hz")
    cols[2].metric("Channels", analysis.orig_channels)
    cols[3].metric("SHA-256", short(analysis.sha256), help=analysis.sha256)
    if len(names) > 1:
        st.caption("Also uploaded as: " + ", ".join(md(n) for n in names[1:]))
    if analysis.near_silent:
        st.warning(
            "This file is near-silent (RMS below -60 dBFS). It was analysed, but the "
            "verdicts say little about speech that is barely there."
        )


def verdict_card(key: str, verdict) -> None:
    v = report.verdict_dict(verdict)
    p = float(v["p_spoof"])
    spoof = v["label"] == "spoof"
    colour = charts.evidence_colour(2 * p - 1)
    ink = "#ffffff" if abs(2 * p - 1) > 0.55 else "#222222"
    word = "SPOOF" if spoof else "BONA FIDE"
    n = len(v.get("windows") or [])
    st.markdown(
        f"<div class='verdict-card' data-testid='verdict-card' style='background:{colour};color:{ink};"
        "border-radius:0.6rem;padding:0.8rem 1rem;margin-bottom:0.5rem;"
        "border:1px solid #ccc'>"
        f"<div style='font-size:0.85rem;opacity:0.9'>{_esc(model_name(key))}</div>"
        f"<div style='font-size:1.5rem;font-weight:700'>{word}</div>"
        f"<div>P(spoof) {p:.3f} · max window {float(v.get('max_p_spoof', p)):.3f} · "
        f"{n} window{'s' if n != 1 else ''}</div></div>",
        unsafe_allow_html=True,
    )


def _esc(s: str) -> str:
    import html

    return html.escape(str(s))


def verdict_cards(analysis) -> None:
    items = list(dict(analysis.verdicts).items())
    if not items:
        st.warning("No model produced a verdict for this file.")
        return
    cols = st.columns(min(len(items), 3))
    for i, (key, v) in enumerate(items):
        with cols[i % len(cols)]:
            verdict_card(key, v)
    st.caption(
        "P(spoof) is the mean over the model's analysis windows; the verdict is spoof "
        "at 0.5 or above. The threshold is not calibrated to an operating point: "
        "treat a verdict as a lead, not proof."
    )


def verdict_rows(analysis) -> list[dict]:
    rows = []
    for key, v in dict(analysis.verdicts).items():
        d = report.verdict_dict(v)
        rows.append(
            {
                "model": model_name(key),
                "verdict": "spoof" if d["label"] == "spoof" else "bona fide",
                "P(spoof)": round(float(d["p_spoof"]), 4),
                "max window P(spoof)": round(float(d.get("max_p_spoof", d["p_spoof"])), 4),
                "windows": len(d.get("windows") or []),
                "weights SHA-256": str(d.get("weights_sha256", ""))[:12],
            }
        )
    return rows


def timeline(analysis) -> None:
    wins = {
        model_name(k): report.verdict_dict(v).get("windows") or []
        for k, v in dict(analysis.verdicts).items()
    }
    st.altair_chart(charts.timeline_chart(wins), width="stretch")
    st.caption(
        "Each stroke is one analysis window (models read fixed-length windows with "
        "50 % overlap); its height is that window's P(spoof). Above the dashed line a "
        "model leans spoof. A partly synthetic file shows up as a local peak."
    )


def window_label(verdict, i: int) -> str:
    w = report.verdict_dict(verdict)["windows"][i]
    g = w.get if isinstance(w, dict) else (lambda k: getattr(w, k))
    return f"#{i}: {float(g('start')):.2f}-{float(g('end')):.2f} s, P(spoof) {float(g('p_spoof')):.3f}"


def explanation_caption(expl, cached: bool | None, seconds: float | None) -> str:
    src = ""
    if cached is True:
        src = " · served from the store"
    elif cached is False:
        src = f" · computed in {seconds:.1f} s and stored"
    return (
        f"Explains **{expl.target_label}** (P = {expl.p_target:.3f}) in window "
        f"#{expl.window}, {expl.window_start:.2f}-{expl.window_end:.2f} s · "
        f"{len(np.asarray(expl.values).reshape(-1))} features ({expl.feature_kind}){src}"
    )


def explanation_view(sha: str, expl, *, key: str = "explain") -> None:
    """every chart and player for one explanation (Analyze page)"""
    samples = audio_samples(sha)
    start, end = float(expl.window_start), float(expl.window_end)
    st.markdown("##### Waveform with evidence over time")
    if samples is not None:
        seg = samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        st.altair_chart(
            charts.waveform_chart(seg, offset=start, expl=expl), width="stretch"
        )
    st.caption(
        "Shaded bands: where the model found evidence. **Red = evidence for spoof, "
        "blue = evidence for bona fide**; stronger colour = stronger evidence. Hover for "
        "times and values."
    )
    st.markdown("##### Spectrogram (CQT) with evidence over time and frequency")
    spec = window_cqt(sha, start, end)
    if spec is not None and spec.shape[1] > 1:
        from core.features import cqt_frequencies

        st.altair_chart(
            charts.cqt_chart(spec, cqt_frequencies(), offset=start, expl=expl),
            width="stretch",
        )
    st.caption(
        "Grey: the constant-Q spectrogram (log-Hz axis, darker = louder). Coloured "
        "cells: the explanation on the same red/blue scale. Models that read the "
        "waveform only have time segments, drawn as full-height bands."
    )
    left, right = st.columns([3, 2])
    with left:
        st.markdown("##### Evidence per segment")
        st.altair_chart(charts.segment_chart(expl), width="stretch")
        st.caption("One bar per interpretable feature (time segment or time × frequency "
                   "patch); above zero pushes towards spoof, below towards bona fide.")
    with right:
        st.markdown("##### Faithfulness check")
        st.altair_chart(charts.deletion_chart(expl), width="stretch")
        st.caption(
            "Removing the features the explanation ranks highest should lower "
            f"P({expl.target_label}) faster than removing them in random order."
        )
        st.caption(quality_line(expl))
    if charts.is_tiled(expl):
        st.caption(
            "This file is shorter than the model's window, so the model heard it repeated "
            "(as at training time); only the real audio is drawn."
        )
    with st.expander("All parameters and quality measures"):
        st.json({"params": expl.params, "quality": expl.quality,
                 "method_version": expl.method_version, "seconds": expl.seconds},
                expanded=False)
    listen_block(sha, expl, samples, key=key)


QUALITY_TEXT = {
    "r2": "surrogate fit R² {:.2f}",
    "completeness_gap": "completeness gap {:.3g}",
    "deletion_auc": "deletion area {:.3f}",
    "deletion_auc_random": "random-order area {:.3f}",
}


def quality_line(expl) -> str:
    """the few quality measures an analyst needs, in words"""
    q = expl.quality or {}
    parts = [t.format(q[k]) for k, t in QUALITY_TEXT.items() if isinstance(q.get(k), (int, float))]
    if not parts:
        return "No quality measures were recorded."
    return "Quality: " + " · ".join(parts) + " (a smaller deletion area than random = faithful)."


def listen_block(sha: str, expl, samples, *, key: str) -> None:
    st.markdown("##### Listen")
    data = audio_bytes(sha)
    cols = st.columns(3)
    with cols[0]:
        st.caption("Original file")
        if data is not None:
            st.audio(data, format=_mime(data))
        else:
            st.info("The original audio is no longer stored.")
    if samples is None:
        return
    from core.explain import listenable

    seg = samples[int(expl.window_start * SAMPLE_RATE) : int(expl.window_end * SAMPLE_RATE)]
    try:
        kept, complement = listenable(seg, expl, k=3)
    except Exception as e:  # an explanation without time features cannot be rendered
        with cols[1]:
            st.info(f"No listenable rendering for this explanation: {e}")
        return
    with cols[1]:
        st.caption(f"Only the top 3 features for {expl.target_label} (rest attenuated)")
        st.audio(np.asarray(kept, dtype=np.float32), sample_rate=SAMPLE_RATE)
    with cols[2]:
        st.caption("Everything except those features")
        st.audio(np.asarray(complement, dtype=np.float32), sample_rate=SAMPLE_RATE)


def _mime(data: bytes) -> str:
    """the player's MIME type from the file's magic bytes, not from its uploaded name"""
    head = data[:12]
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return "audio/wav"


def progress_callback(status, *, prefix: str = ""):
    """a progress(fraction, message) callback drawing into an st.status box"""
    bar = status.progress(0.0, text=prefix or "starting…")

    def progress(fraction: float, message: str = "") -> None:
        text = f"{prefix} {message}".strip()
        bar.progress(float(min(max(fraction, 0.0), 1.0)), text=text)

    return progress


def export_buttons(analysis, explanations: list, *, share: str | None = None, key: str = "export") -> None:
    doc = report.analysis_doc(analysis, explanations, share_url=share)
    stem = Path((report.filenames(analysis) or ["analysis"])[0]).stem or "analysis"
    name = f"{stem}-{short(analysis.sha256)}"
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download JSON", report.json_bytes(doc), file_name=f"{name}.json",
        icon=":material/download:",
        mime="application/json", key=f"{key}_json", width="stretch",
    )
    c2.download_button(
        "Download HTML report", report.html_report(doc).encode("utf-8"),
        icon=":material/download:",
        file_name=f"{name}.html", mime="text/html", key=f"{key}_html",
        width="stretch",
    )
    st.caption(
        f"Both hold the file's SHA-256, every verdict with its model's weights hash, and "
        f"{len(explanations)} stored explanation(s). The HTML report is a single file "
        "that opens offline and prints well for case files."
    )


def sidebar() -> None:
    with st.sidebar:
        st.markdown("### :material/mic: Synthetic speech detector")
        # Analyze and Compare keep the file in view when switching between them
        sha = st.query_params.get("sha")
        for key, path in PAGE_FILES.items():
            title, icon = PAGE_TITLES[key]
            carry = {"sha": sha} if sha and key in ("analyze", "compare") else None
            st.page_link(path, label=title, icon=icon, query_params=carry)
        st.divider()
        keys = model_keys()
        st.markdown("**Models ready**")
        if keys:
            st.caption(", ".join(model_name(k) for k in keys))
        else:
            st.caption("none: see the Models page")
        st.markdown(
            f"<span style='background:{charts.SPOOF_RED};color:white;padding:0 .4rem;"
            "border-radius:.2rem'>red</span> evidence for spoof · "
            f"<span style='background:{charts.BONAFIDE_BLUE};color:white;padding:0 .4rem;"
            "border-radius:.2rem'>blue</span> evidence for bona fide",
            unsafe_allow_html=True,
        )
        access_notice()


# ------------------------------------------------------------------ upload flow


def analyze_from_upload(upload) -> str | None:
    """
    Analyse a newly uploaded file once (verdicts with progress in an st.status box),
    point the URL at it, and return its SHA-256; None when it could not be analysed
    (the reason is shown). Reruns with the same upload reuse the result.
    """
    done = st.session_state.setdefault("analyze_done", {})
    if upload.file_id in done:
        return done[upload.file_id]
    sha = analyze_and_report(upload.getvalue(), upload.name)
    if sha is None:
        return None
    done[upload.file_id] = sha
    # the URL becomes this analysis' share link; an old view's parameters go
    st.query_params.clear()
    st.query_params["sha"] = sha
    return sha


def analyze_and_report(data: bytes, filename: str) -> str | None:
    """the upload flow without the widget: (bytes, name) -> sha256, or None + message"""
    keys = model_keys()
    name = md(filename)
    with st.status(f"Scoring {name} with {len(keys)} model(s)…", expanded=True) as status:
        progress = progress_callback(status)
        try:
            analysis = analyze_upload(data, filename, progress=progress)
        except AudioError as e:
            status.update(label=f"Could not analyse {name}", state="error", expanded=True)
            st.error(f"**{name}** could not be analysed: {e}.")
            return None
        except (WeightsError, StoreError) as e:
            status.update(label=f"Could not analyse {name}", state="error", expanded=True)
            st.error(f"The server could not analyse **{name}**: {e}")
            return None
        cached = _cached_models(analysis)
        how = "served from the store" if cached and len(cached) == len(keys) else "scored"
        status.update(
            label=f"Verdicts ready for {name} ({how})", state="complete", expanded=False
        )
    return analysis.sha256


def _cached_models(analysis) -> list[str]:
    return [k for k, v in analysis.cached.items() if v]


# ------------------------------------------------------------- explanation view


@dataclass(frozen=True)
class View:
    """what a share link pins down: audio, model, method, window, target"""

    sha: str
    model: str
    method: str
    window: int
    target: str | None  # None = the class the model predicts on that window

    def share_params(self) -> dict:
        return {"model": self.model, "method": self.method, "window": self.window,
                "target": self.target}


def _query_int(name: str) -> int | None:
    try:
        return int(st.query_params.get(name, ""))
    except ValueError:
        return None


def _index(options: list, value, default: int = 0) -> int:
    return options.index(value) if value in options else default


def explanation_controls(analysis, *, key: str) -> View:
    """model / method / window / target pickers, seeded from the URL, kept in the URL"""
    verdicts = dict(analysis.verdicts)
    models = list(verdicts)
    method_keys = list(methods())
    qp = st.query_params
    link_problems(analysis, models, method_keys)
    c1, c2, c3, c4 = st.columns([3, 2, 4, 2])
    model = c1.selectbox(
        "Model", models, index=_index(models, qp.get("model")), format_func=model_name,
        key=f"{key}_model",
    )
    method = c2.selectbox(
        "Method", method_keys, index=_index(method_keys, qp.get("method")),
        format_func=_method_label, key=f"{key}_method",
    )
    v = report.verdict_dict(verdicts[model])
    n_windows = len(v.get("windows") or [])
    default_window = int(v.get("max_window", 0))
    asked = _query_int("window")
    options = list(range(max(n_windows, 1)))
    window = c3.selectbox(
        "Window (default: most suspicious)", options,
        index=_index(options, asked if asked is not None else default_window, default_window),
        format_func=lambda i: window_label(verdicts[model], i) if n_windows else "#0",
        key=f"{key}_window_{model}",
    )
    targets = list(TARGET_CHOICES)
    target_key = c4.selectbox(
        "Explain the class", targets, index=_index(targets, qp.get("target") or "predicted"),
        format_func=lambda t: {"predicted": "predicted", "spoof": "spoof",
                               "bonafide": "bona fide"}[t],
        key=f"{key}_target",
    )
    st.caption(f"**{_method_label(method)}**: {method_description(method)}")
    view = View(analysis.sha256, model, method, int(window), TARGET_CHOICES[target_key])
    # keep the address bar a share link of exactly this view
    st.query_params.update(
        {"sha": view.sha, **{k: str(v) for k, v in view.share_params().items() if v is not None}}
    )
    if view.target is None and "target" in st.query_params:
        del st.query_params["target"]
    return view


def link_problems(analysis, models: list[str], method_keys: list[str]) -> None:
    """say so when a share link asks for a view this analysis does not have"""
    qp = st.query_params
    problems = []
    if qp.get("model") and qp.get("model") not in models:
        problems.append(f"model {md(qp.get('model'))} did not score this file")
    if qp.get("method") and qp.get("method") not in method_keys:
        problems.append(f"there is no method {md(qp.get('method'))}")
    model = qp.get("model") if qp.get("model") in models else (models[0] if models else None)
    asked = _query_int("window")
    if model and (qp.get("window") or "") != "":
        n = len(report.verdict_dict(analysis.verdicts[model]).get("windows") or [])
        if asked is None or not 0 <= asked < n:
            problems.append(f"window {md(qp.get('window'))} does not exist (this model has {n})")
    if qp.get("target") and qp.get("target") not in TARGET_CHOICES:
        problems.append(f"target {md(qp.get('target'))} is not spoof or bonafide")
    if problems:
        st.warning("This link asks for a view that does not exist: " + "; ".join(problems)
                   + ". Showing the nearest one instead.")


METHOD_LABELS = {"gradcam": "Grad-CAM", "shap": "SHAP", "lime": "LIME",
                 "gradshap": "Expected gradients (GradientSHAP)"}


def _method_label(key: str) -> str:
    return METHOD_LABELS.get(key, key)


def explanation_on_demand(sha: str, view: View, *, key: str):
    """the stored explanation at once, or a button that computes it with progress"""
    expl = stored_explanation(sha, view.model, view.method, window=view.window,
                              target=view.target)
    if expl is not None:
        st.success(explanation_caption(expl, True, None), icon=":material/bolt:")
        return expl
    st.info(
        f"{_method_label(view.method)} for {model_name(view.model)} on window "
        f"#{view.window} has not been computed yet. Grad-CAM takes about a second; "
        "SHAP and LIME run the model tens of times and can take a minute on CPU. "
        "Once computed it is stored and opens instantly for everyone."
    )
    if not st.button(f"Compute {_method_label(view.method)}", type="primary",
                     key=f"{key}_compute"):
        return None
    return compute_explanation(view)


def compute_explanation(view: View, *, label: str | None = None):
    label = label or f"{_method_label(view.method)} · {model_name(view.model)}"
    with st.status(f"Computing {label}…", expanded=True) as status:
        progress = progress_callback(status, prefix=label)
        try:
            expl, cached, seconds = explain(
                view.sha, view.model, view.method, window=view.window, target=view.target,
                progress=progress,
            )
        except Exception as e:  # shown, not raised: one failed method leaves the page usable
            status.update(label=f"{label} failed", state="error")
            st.error(f"{label} could not be computed: {e}")
            return None
        status.update(
            label=f"{label}: {'from the store' if cached else f'computed in {seconds:.1f} s'}",
            state="complete", expanded=False,
        )
    st.success(explanation_caption(expl, cached, seconds), icon=":material/check_circle:")
    return expl


# ------------------------------------------------------------------- model cards

_STATUS_TEXT = {
    "ok": ("ready", "#1a7f37"),
    "missing": ("weights missing", "#9a6700"),
    "not registered": ("not registered yet", "#6e7781"),
    "checksum mismatch": ("checksum mismatch: refused", "#cf222e"),
}


def bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def status_badge(status: str) -> str:
    text, colour = _STATUS_TEXT.get(status, (status, "#6e7781"))
    return (
        f"<div style='text-align:right'><span style='background:{colour};color:white;"
        f"padding:0.2rem 0.6rem;border-radius:1rem;font-size:0.85rem'>{_esc(text)}</span></div>"
    )


@st.cache_data(ttl=30, show_spinner=False)
def model_cards() -> list[dict]:
    """everything the Models page shows, per registered model (rechecked every 30 s)"""
    import json
    import re

    from core.registry import weights_status

    directory = weights_dir()
    card_path = directory / "MODEL_CARD.md"
    card_text = card_path.read_text(encoding="utf-8") if card_path.exists() else ""
    out = []
    for key, spec in MODELS.items():
        d = spec.to_json()
        eers = [
            f"EER {m.group(1).strip()} on {m.group(2).strip()} (as published)"
            for m in re.finditer(r"EER\s*([\d.]+\s*%)\s*on\s*([^;,()]+)", spec.provenance)
        ]
        sidecar = (directory / spec.weights).with_suffix(".json")
        if sidecar.exists():
            try:
                meta = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                meta = {}
            for k, v in meta.items():
                if "eer" in k.lower() and isinstance(v, (int, float)):
                    where = k.replace("_eer", "").replace("eer", "").strip("_") or "overall"
                    extra = (f" (best epoch {meta['best_epoch']} of {meta.get('epochs_done')})"
                             if k == "dev_eer" and "best_epoch" in meta else "")
                    eers.append(f"{where} EER {100 * v:.2f} % (measured by this project){extra}")
        official = "official" in key
        limits = [
            "Trained at 16 kHz: anything above 8 kHz is discarded, and telephone-band or "
            "heavily compressed audio is outside its training conditions.",
            "The 0.5 threshold on P(spoof) is not calibrated for any false-alarm rate.",
            (
                "Learned ASVspoof 2019 LA (2019-era TTS and voice conversion, VCTK "
                "speakers): newer generators, other languages, noise and codecs can fool it."
                if official
                else "Trained on minispoof, a tiny demo corpus: its error rates are not "
                "a benchmark and say nothing about real-world deepfakes."
            ),
            f"Files shorter than {d['window_seconds']:.2f} s are tiled (repeated) to one "
            "window, as at training time; very short clips give weak evidence.",
        ]
        out.append(
            {
                **d,
                "status": weights_status(spec, directory),
                "hop_seconds": d["hop_samples"] / SAMPLE_RATE,
                "eers": eers,
                "limits": limits,
                "model_card": card_text if spec.card else "",
                "spec": d,
            }
        )
    return out


# ------------------------------------------------------------------------ history

HISTORY_SORTS = {
    "last_seen": "last seen",
    "first_seen": "first seen",
    "filename": "file name",
    "duration": "duration",
    "size": "file size",
    "p_spoof": "highest P(spoof)",
}


def history_page(*, search, label, model, since, until, sort, descending, page, page_size):
    """one page of the store's history, or None after showing why it failed"""
    from core.store import StoreError

    if since and until and since > until:
        st.error("'Seen since' is after 'Seen until': no analysis can match.")
        return None
    try:
        return history(
            filename=search.strip() or None,
            label=None if label == "any" else label,
            model=None if model == "any" else model,
            since=since or None,
            until=until or None,
            sort=sort,
            descending=descending,
            limit=page_size,
            offset=(max(int(page), 1) - 1) * page_size,
        )
    except (StoreError, ValueError) as e:
        st.error(f"The history could not be read: {e}")
        return None


def history_frame(items: list[dict]):
    import pandas as pd

    rows = []
    for it in items:
        row = {
            "open": share_url(it["sha256"]),
            "file": it.get("filename") or "",
            "hash": short(it["sha256"]),
            "duration (s)": round(float(it.get("duration") or 0.0), 2),
        }
        for key, p in (it.get("predictions") or {}).items():
            word = "spoof" if p["label"] == "spoof" else "bona fide"
            row[model_name(key)] = f"{word} ({float(p['p_spoof']):.2f})"
        row["explanations"] = int(it.get("n_explanations") or 0)
        row["last seen"] = _when(it.get("last_seen"))
        rows.append(row)
    return pd.DataFrame(rows)


def history_columns() -> dict:
    return {
        "open": st.column_config.LinkColumn("open", display_text="open ↗", width="small",
                                            help="opens this analysis (a share link)"),
        "hash": st.column_config.TextColumn("hash", help="first 12 hex digits of the SHA-256"),
    }


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ") + (" UTC" if iso else "")


def history_verdict_line(item: dict) -> str:
    parts = []
    for key, p in (item.get("predictions") or {}).items():
        prob = float(p["p_spoof"])
        colour = charts.evidence_colour(2 * prob - 1)
        ink = "#ffffff" if abs(2 * prob - 1) > 0.55 else "#222222"
        word = "SPOOF" if p["label"] == "spoof" else "BONA FIDE"
        parts.append(
            f"<span style='background:{colour};color:{ink};padding:0.15rem 0.5rem;"
            f"border-radius:0.3rem;margin-right:0.4rem'>{_esc(model_name(key))}: {word} "
            f"{prob:.2f}</span>"
        )
    names = ", ".join(item.get("filenames") or [item.get("filename") or ""])
    return (
        f"<div style='margin:0.3rem 0 0.6rem 0'>{''.join(parts) or 'no verdicts'}</div>"
        f"<div style='font-size:0.85rem;color:#666'>uploaded as {_esc(names)} · "
        f"{float(item.get('duration') or 0):.2f} s · first seen {_when(item.get('first_seen'))}"
        f" · SHA-256 <code>{_esc(item['sha256'])}</code></div>"
    )


def delete_with_confirmation(sha: str, filename: str, *, key: str) -> None:
    """a Delete button that asks once more before removing everything about the file"""
    pending = st.session_state.get(f"{key}_confirm")
    if pending != sha:
        if st.button("Delete this analysis…", icon=":material/delete:", key=f"{key}_delete"):
            st.session_state[f"{key}_confirm"] = sha
            st.rerun()
        return
    st.warning(
        f"Delete **{md(filename) or short(sha)}** ({short(sha)})? Its stored audio, verdicts "
        "and explanations are removed for everyone, and its share links stop working."
    )
    c1, c2, _ = st.columns([1, 1, 4])
    if c1.button("Yes, delete", type="primary", key=f"{key}_delete_yes"):
        delete_analysis(sha)
        st.session_state.pop(f"{key}_confirm", None)
        st.session_state.pop(f"{key}_chosen", None)
        st.toast(f"Deleted {md(filename) or short(sha)}")
        st.rerun()
    if c2.button("Cancel", key=f"{key}_delete_no"):
        st.session_state.pop(f"{key}_confirm", None)
        st.rerun()


# ------------------------------------------------------------------------ compare


def pick_analysis(*, key: str) -> str | None:
    """the ?sha= of the URL, else a choice among the most recent analyses"""
    sha = st.query_params.get("sha")
    if sha:
        return sha
    try:
        recent = history(limit=50).items
    except StoreError as e:
        st.error(f"The store could not be read: {e}")
        return None
    if not recent:
        st.info("Nothing analysed yet. Upload a file on **Analyze** first.")
        return None
    names = {it["sha256"]: f"{it.get('filename') or '(unnamed)'} · {short(it['sha256'])}"
             for it in recent}
    chosen = st.selectbox("Recording", list(names), format_func=names.get, key=f"{key}_sha")
    st.query_params["sha"] = chosen
    return chosen


@dataclass(frozen=True)
class ComparePlan:
    sha: str
    focus: float  # seconds: every model explains the window centred nearest to it
    windows: dict  # model -> window index
    methods: list
    target: str | None


def window_near(verdict, t: float) -> int:
    """index of the window whose centre is nearest t (seconds)"""
    wins = report.verdict_dict(verdict).get("windows") or []
    if not wins:
        return 0
    g = [(w if isinstance(w, dict) else vars(w)) for w in wins]
    return min(range(len(g)), key=lambda i: abs((g[i]["start"] + g[i]["end"]) / 2 - t))


def compare_plan(analysis, *, key: str) -> ComparePlan:
    verdicts = dict(analysis.verdicts)
    first = report.verdict_dict(next(iter(verdicts.values())))
    wins = first.get("windows") or [{"start": 0.0, "end": analysis.duration}]
    w = wins[int(first.get("max_window", 0))]
    w = w if isinstance(w, dict) else vars(w)
    default = round((w["start"] + w["end"]) / 2, 1)
    duration = max(float(analysis.duration), 0.1)
    c1, c2, c3 = st.columns([4, 4, 2])
    focus = c1.slider(
        "Explain around (s)", 0.0, round(duration, 1), min(default, round(duration, 1)),
        step=0.1, key=f"{key}_focus",
        help="Each model explains its window centred nearest this time, so all of them "
        "look at the same stretch of audio. Default: the most suspicious window of "
        f"{model_name(next(iter(verdicts)))}.",
    )
    chosen = c2.multiselect(
        "Methods", list(methods()), default=list(methods()), format_func=_method_label,
        key=f"{key}_methods",
    )
    target = c3.selectbox(
        "Explain the class", list(TARGET_CHOICES), key=f"{key}_target",
        format_func=lambda t: {"predicted": "predicted", "spoof": "spoof",
                               "bonafide": "bona fide"}[t],
    )
    return ComparePlan(
        sha=analysis.sha256,
        focus=float(focus),
        windows={m: window_near(v, focus) for m, v in verdicts.items()},
        methods=chosen,
        target=TARGET_CHOICES[target],
    )


def compare_grid(analysis, plan: ComparePlan, *, key: str) -> dict:
    """draws the grid; returns {(model, method): Explanation} of what is stored"""
    cells = {
        (m, meth): stored_explanation(plan.sha, m, meth, window=w, target=plan.target)
        for m, w in plan.windows.items()
        for meth in plan.methods
    }
    missing = [k for k, v in cells.items() if v is None]
    if missing:
        st.info(
            f"{len(cells) - len(missing)} of {len(cells)} explanations are stored. "
            "Computing the rest runs the models (SHAP and LIME take longest) and stores "
            "the results for everyone."
        )
        if st.button(f"Compute the {len(missing)} missing explanation(s)", type="primary",
                     key=f"{key}_compute"):
            bar = st.progress(0.0, text="starting…")
            for i, (m, meth) in enumerate(missing):
                bar.progress(i / len(missing),
                             text=f"{i + 1}/{len(missing)}: {_method_label(meth)} · {model_name(m)}")
                view = View(plan.sha, m, meth, plan.windows[m], plan.target)
                cells[(m, meth)] = compute_explanation(view)
            bar.progress(1.0, text="all explanations ready")
    if not plan.methods:
        st.warning("Pick at least one method.")
        return {}
    st.caption(
        "Each small chart: evidence per time segment (or patch), in time order, on the "
        "red (spoof) / blue (bona fide) scale. Hover a bar for its times and value."
    )
    for m, w in plan.windows.items():
        st.markdown(f"**{model_name(m)}** · {window_label(analysis.verdicts[m], w)}")
        cols = st.columns(len(plan.methods))
        for col, meth in zip(cols, plan.methods):
            with col:
                st.caption(_method_label(meth))
                e = cells.get((m, meth))
                if e is None:
                    st.markdown("<div style='color:#888;padding:2rem 0;text-align:center'>"
                                "not computed</div>", unsafe_allow_html=True)
                    continue
                st.altair_chart(charts.segment_chart(e, height=140, compact=True),
                                width="stretch")
                st.caption(f"P({e.target_label}) {e.p_target:.2f} · "
                           f"{e.window_start:.2f}-{e.window_end:.2f} s")
    return {k: v for k, v in cells.items() if v is not None}


def agreement_section(grid: dict, plan: ComparePlan) -> None:
    if len(grid) < 2:
        st.info("Agreement needs at least two stored explanations.")
        return
    models = list(plan.windows)
    tabs = st.tabs(["Between methods (per model)", "Between models (per method)"])
    with tabs[0]:
        shown = False
        for m in models:
            sub = {_method_label(meth): grid[(m, meth)] for meth in plan.methods if (m, meth) in grid}
            if len(sub) >= 2:
                _agreement_block(f"{model_name(m)}", sub)
                shown = True
        if not shown:
            st.caption("No model has two methods computed yet.")
    with tabs[1]:
        shown = False
        for meth in plan.methods:
            sub = {model_name(m): grid[(m, meth)] for m in models if (m, meth) in grid}
            if len(sub) >= 2:
                _agreement_block(_method_label(meth), sub)
                shown = True
        if not shown:
            st.caption("No method has been computed for two models yet.")


def _agreement_block(title: str, expls: dict) -> None:
    labels, matrix, basis = report.agreement(expls)
    mean = report.mean_offdiagonal(matrix)
    st.markdown(f"**{title}** · mean ρ {mean:+.2f}" if np.isfinite(mean) else f"**{title}**")
    st.altair_chart(charts.agreement_chart(labels, matrix, height=60 + 45 * len(labels)),
                    width="stretch")
    st.caption(f"Ranked over {basis}.")


# ------------------------------------------------------------------------- corpus


def index_of(options: list, value, default: int = 0) -> int:
    return _index(options, value, default)


def corpus_batches() -> list[dict]:
    from core import store

    try:
        return store.list_batches(db=db_path())
    except StoreError as e:
        st.error(str(e))
        return []


def corpus_summary(name: str, updated: str):
    """aggregated per-attack results of a batch (cached until the batch changes)"""
    return _corpus_summary(name, updated, db_path())


@st.cache_data(max_entries=8, show_spinner=False)
def _corpus_summary(name: str, updated: str, db: str | None):
    from core.batch import summarise_batch

    return summarise_batch(name, db=db)


def corpus_eer_frame(summary):
    import pandas as pd

    df = pd.DataFrame(summary.eer)
    df["model"] = df["model"].map(model_name)
    return df.rename(columns={"eer_percent": "EER %", "n_bonafide": "bona fide",
                              "n_spoof": "spoof"})


def corpus_maps(summary, model: str, method: str) -> None:
    from core import corpus_charts

    df = corpus_charts.time_profile_frame(summary, model, method)
    st.markdown("**Over time** (relative position in the explained window, the most "
                "suspicious one by default)")
    st.altair_chart(corpus_charts.time_heatmap(df), use_container_width=True)
    fdf = corpus_charts.frequency_profile_frame(summary, model, method)
    if not fdf.empty:
        st.markdown("**Over frequency** (CQT patches, summed over time)")
        st.altair_chart(corpus_charts.frequency_heatmap(fdf), use_container_width=True)
    st.caption("Each file's attributions are turned into evidence for spoof, normalised "
               "to unit total magnitude, then averaged over the attack's files.")


def corpus_downloads(summary, name: str) -> None:
    from core.corpus import summary_json

    a, b, c = st.columns(3)
    a.download_button("EER table (CSV)", summary.eer_csv(), f"{name}-eer.csv", "text/csv")
    b.download_button("Profiles (CSV)", summary.profiles_csv(), f"{name}-profiles.csv",
                      "text/csv")
    c.download_button("Everything (JSON)", summary_json(summary), f"{name}-summary.json",
                      "application/json")


def corpus_files(name: str) -> None:
    import pandas as pd

    from core import store

    rows = store.batch_files(name, db=db_path())
    df = pd.DataFrame(
        [{"file": r["file_id"], "system": r["system"], "key": r["key"],
          "status": r["status"], "error": r["error"] or "",
          "open": share_url(r["sha256"]) if r["sha256"] else None} for r in rows]
    )
    status = st.segmented_control("Show", ["all", "done", "failed"], default="all",
                                  key="corpus_status")
    if status and status != "all":
        df = df[df["status"] == status]
    st.dataframe(df, hide_index=True, use_container_width=True,
                 column_config={"open": st.column_config.LinkColumn("analysis",
                                                                    display_text="open")})
