"""One analysis: decode, store, verdicts and explanations, each computed once.

The app and the CLI both call this module:

    a = analyze_bytes(data, "call.wav")              # every model with weights OK
    a.verdicts["aasist-official"].label, a.cached["aasist-official"]
    a = load_analysis(a.sha256)                      # instant, from the store
    e, cached, seconds = explain_stored(a.sha256, "aasist-official", "shap")

Verdicts are keyed by audio SHA-256 + model + weights SHA-256 + the scoring parameters
(window length, hop, threshold); explanations by audio + model + weights + method +
method version + explain_params(). A hit never loads a model or decodes audio.
Detectors are loaded once per process (get_detector); callers may pass a ``detectors``
mapping instead (the tests pass counting fakes).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from . import store
from .audio import Audio, AudioError, load_audio
from .detect import THRESHOLD, Detector, Verdict, WindowScore
from .explain.base import Explanation
from .registry import MODELS, WeightsError, available_models

Progress = Callable[
    [float, str], None
]  # (fraction in [0, 1], message), as core.explain

# tests (and tools) may set this to an object with explain, explain_params and
# EXPLAINERS, used instead of core.explain when no ``backend`` is passed
EXPLAIN_BACKEND: Any = None


# ---------------------------------------------------------------------- detectors

_DETECTORS: dict[str, Detector] = {}
_DETECTORS_LOCK = threading.Lock()


def get_detector(key: str) -> Detector:
    """The process-wide Detector for a model key, loaded (checksum-verified) once."""
    det = _DETECTORS.get(key)
    if det is None:
        with _DETECTORS_LOCK:
            det = _DETECTORS.get(key)
            if det is None:
                if key not in MODELS:
                    raise ValueError(
                        f"unknown model {key!r}; known: {', '.join(MODELS)}"
                    )
                det = _DETECTORS[key] = Detector.load(key)
    return det


def _spec(key: str, detectors: Mapping[str, Any] | None):
    """The model's spec without loading it (the override's when one is given)."""
    if detectors is not None and key in detectors:
        return detectors[key].spec
    if key not in MODELS:
        raise ValueError(f"unknown model {key!r}; known: {', '.join(MODELS)}")
    return MODELS[key]


def _detector(key: str, detectors: Mapping[str, Any] | None):
    if detectors is not None and key in detectors:
        return detectors[key]
    return get_detector(key)


def prediction_params(spec) -> dict:
    """What besides model and weights decides a verdict (part of its cache key)."""
    return {
        "n_samples": int(spec.n_samples),
        "hop": int(spec.window_hop),
        "frontend": str(spec.frontend),
        "threshold": float(THRESHOLD),
    }


def verdict_from_json(d: Mapping) -> Verdict:
    """Rebuild a Verdict from Verdict.to_json() or a stored prediction row."""
    names = {f.name for f in dataclasses.fields(Verdict)}
    kwargs = {k: v for k, v in d.items() if k in names}
    kwargs["windows"] = [
        WindowScore(
            start=float(w["start"]), end=float(w["end"]), p_spoof=float(w["p_spoof"])
        )
        for w in d.get("windows", [])
    ]
    return Verdict(**kwargs)


# ----------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class Analysis:
    sha256: str  # of the original file's bytes
    filename: str  # the name given to this call (load_analysis: the latest one seen)
    filenames: tuple[str, ...]  # every name this audio was seen under (stored runs)
    duration: float  # seconds
    orig_sample_rate: int  # Hz
    orig_channels: int
    orig_format: str
    n_bytes: int
    near_silent: bool
    verdicts: dict[str, Verdict]  # model key -> verdict
    cached: dict[str, bool]  # model key -> served from the store
    seconds: dict[str, float]  # model key -> wall time this call spent on it
    first_seen: str = ""  # ISO 8601 UTC; "" when not stored
    last_seen: str = ""
    explanations: tuple[dict, ...] = ()  # stored explanation summaries (load_analysis)

    def to_json(self) -> dict:
        return {
            "sha256": self.sha256,
            "filename": self.filename,
            "filenames": list(self.filenames),
            "duration": self.duration,
            "orig_sample_rate": self.orig_sample_rate,
            "orig_channels": self.orig_channels,
            "orig_format": self.orig_format,
            "n_bytes": self.n_bytes,
            "near_silent": self.near_silent,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "models": [
                {
                    "model": v.model,
                    "weights_sha256": v.weights_sha256,
                    "p_spoof": v.p_spoof,
                    "label": v.label,
                    "max_p_spoof": v.max_p_spoof,
                    "max_window": v.max_window,
                    "windows": [dataclasses.asdict(w) for w in v.windows],
                    "cached": self.cached[k],
                    "seconds": self.seconds[k],
                    "compute_seconds": v.seconds,
                }
                for k, v in self.verdicts.items()
            ],
        }


def _audio_info(audio: Audio) -> dict:
    return {
        "sha256": audio.sha256,
        "n_bytes": audio.n_bytes,
        "duration": audio.duration,
        "orig_sample_rate": audio.orig_sample_rate,
        "orig_channels": audio.orig_channels,
        "orig_format": audio.orig_format,
        "rms_dbfs": audio.rms_dbfs,
        "near_silent": audio.near_silent,
    }


def _model_keys(models: list[str] | None, detectors: Mapping | None) -> list[str]:
    if models:
        keys = list(dict.fromkeys(models))
    elif detectors:
        keys = list(detectors)
    else:
        keys = available_models()
    if not keys:
        raise WeightsError(
            "no model has weights installed; see `python -m core models`"
        )
    return keys


def _verdict(
    audio: Audio,
    key: str,
    *,
    path: Path | None,
    detectors: Mapping | None,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[Verdict, bool]:
    """Get-or-compute one model's verdict; path None = no store."""
    if path is None:
        return _detector(key, detectors).score(audio), False
    spec = _spec(key, detectors)
    row, cached = store.get_or_compute_prediction(
        audio.sha256,
        key,
        spec.sha256,
        prediction_params(spec),
        lambda: _detector(key, detectors).score(audio).to_json(),
        db=path,
        on_wait=on_wait,
    )
    return verdict_from_json(row), cached


def _analyze(
    data: bytes,
    filename: str,
    *,
    models: list[str] | None,
    db: str | Path | None,
    progress: Progress | None,
    detectors: Mapping | None,
    use_store: bool,
) -> tuple[Analysis, Audio]:
    report = progress or (lambda fraction, message: None)
    report(0.0, "decoding")
    audio = load_audio(data)  # AudioError: one-line message, propagates
    keys = _model_keys(models, detectors)
    for k in keys:
        _spec(k, detectors)  # unknown keys fail before any work
    path = store.resolve_db_path(db) if use_store else None
    row = (
        store.record_audio(_audio_info(audio), data, filename, db=path)
        if path
        else None
    )
    verdicts, cached, seconds = {}, {}, {}
    for i, key in enumerate(keys):
        report(0.05 + 0.95 * i / len(keys), f"scoring with {key}")
        t0 = time.perf_counter()
        verdicts[key], cached[key] = _verdict(
            audio,
            key,
            path=path,
            detectors=detectors,
            on_wait=lambda msg, key=key: report(
                0.05 + 0.95 * i / len(keys), f"{key}: {msg}"
            ),
        )
        seconds[key] = time.perf_counter() - t0
    report(1.0, "done")
    analysis = Analysis(
        sha256=audio.sha256,
        filename=store.clean_filename(filename),
        filenames=tuple(row["filenames"]) if row else (store.clean_filename(filename),),
        duration=audio.duration,
        orig_sample_rate=audio.orig_sample_rate,
        orig_channels=audio.orig_channels,
        orig_format=audio.orig_format,
        n_bytes=audio.n_bytes,
        near_silent=audio.near_silent,
        verdicts=verdicts,
        cached=cached,
        seconds=seconds,
        first_seen=row["first_seen"] if row else "",
        last_seen=row["last_seen"] if row else "",
    )
    return analysis, audio


def analyze_bytes(
    data: bytes,
    filename: str,
    *,
    models: list[str] | None = None,
    db: str | Path | None = None,
    progress: Progress | None = None,
    detectors: Mapping[str, Any] | None = None,
    use_store: bool = True,
) -> Analysis:
    """
    Decode ``data``, record it in the store and get-or-compute each model's verdict.

    models : model keys; None = every model whose weights are installed and verified
        (or every key of ``detectors`` when given)
    detectors : key -> Detector-like (``.spec``, ``.score(audio) -> Verdict``) used
        instead of the process-wide loaded ones
    use_store : False = compute everything, read and write nothing (CLI --no-store)
    progress : callable(fraction, message)

    Raises AudioError (bad file, one-line message), WeightsError (no or bad weights),
    StoreError (store unusable), ValueError (unknown model).
    """
    return _analyze(
        data,
        filename,
        models=models,
        db=db,
        progress=progress,
        detectors=detectors,
        use_store=use_store,
    )[0]


def load_analysis(sha256: str, *, db: str | Path | None = None) -> Analysis | None:
    """
    A stored analysis, without loading any model or decoding audio; None for an
    unknown hash. Per model: the verdict for the registry's current weights and
    parameters when stored, else the newest one.
    """
    t0 = time.perf_counter()
    if not store.SHA256_RE.match(str(sha256)):
        return None
    a = store.get_analysis(sha256, db=db)
    if a is None:
        return None
    au = a["audio"]
    chosen: dict[str, dict] = {}
    for p in a["predictions"]:  # newest first per model
        spec = MODELS.get(p["model"])
        current = spec is not None and (
            p["weights_sha256"] == spec.sha256
            and p["params"] == prediction_params(spec)
        )
        best = chosen.get(p["model"])
        if best is None or (current and not best["_current"]):
            chosen[p["model"]] = {**p, "_current": current}
    verdicts = {k: verdict_from_json(p) for k, p in sorted(chosen.items())}
    elapsed = time.perf_counter() - t0
    return Analysis(
        sha256=au["sha256"],
        filename=au["filename"],
        filenames=tuple(au["filenames"]),
        duration=au["duration"],
        orig_sample_rate=au["orig_sample_rate"],
        orig_channels=au["orig_channels"],
        orig_format=au["orig_format"] or "",
        n_bytes=au["n_bytes"],
        near_silent=bool(au["near_silent"]),
        verdicts=verdicts,
        cached={k: True for k in verdicts},
        seconds={k: elapsed for k in verdicts},
        first_seen=au["first_seen"],
        last_seen=au["last_seen"],
        explanations=tuple(a["explanations"]),
    )


# ------------------------------------------------------------------- explanations


class ExplainUnavailable(RuntimeError):
    """core.explain is not importable or lacks explain/explain_params/EXPLAINERS."""


def _backend(backend: Any = None) -> Any:
    b = backend or EXPLAIN_BACKEND
    if b is None:
        try:
            import core.explain as b
        except ImportError as e:
            raise ExplainUnavailable(f"explanations are unavailable: {e}") from e
    missing = [
        n for n in ("explain", "explain_params", "EXPLAINERS") if not hasattr(b, n)
    ]
    if missing:
        raise ExplainUnavailable(
            f"explanations are unavailable: core.explain lacks {', '.join(missing)}"
        )
    return b


def explain_methods(backend: Any = None) -> list[str]:
    return list(_backend(backend).EXPLAINERS)


def _explanation_from_record(meta: dict, arrays: dict) -> Explanation:
    names = {f.name for f in dataclasses.fields(Explanation)}
    return Explanation.from_record(
        {k: v for k, v in meta.items() if k in names}, arrays
    )


def _explain(
    sha256: str,
    model: str,
    method: str,
    *,
    audio: Callable[[], Audio],
    verdict: Verdict | None,
    window: int | None,
    target: str | None,
    segments: int,
    n_samples: int | None,
    seed: int,
    path: Path | None,
    progress: Progress | None,
    detectors: Mapping | None,
    backend: Any,
) -> tuple[Explanation, bool, float]:
    """Shared by explain_stored and the CLI; ``audio`` is called only on a miss."""
    t0 = time.perf_counter()
    b = _backend(backend)
    if method not in b.EXPLAINERS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(b.EXPLAINERS)}")
    spec = _spec(model, detectors)
    if window is None:
        # the explainer's default is the most suspicious window: the verdict's
        # max_window, so both spellings share one cache entry
        if verdict is None:
            verdict, _ = _verdict(audio(), model, path=path, detectors=detectors)
        window = verdict.max_window
    kw = dict(
        window=window, target=target, segments=segments, n_samples=n_samples, seed=seed
    )
    params = dict(b.explain_params(method, **kw))
    params.update(window=window, target=target)  # always part of the key

    def compute() -> tuple[dict, dict]:
        det = _detector(model, detectors)
        e = b.explain(det, audio().samples, method=method, progress=progress, **kw)
        return e.to_record()

    if path is None:
        meta, arrays = compute()
        cached = False
    else:
        version = str(getattr(b.EXPLAINERS[method], "version", ""))
        meta, arrays, cached = store.get_or_compute_explanation(
            sha256,
            model,
            spec.sha256,
            method,
            version,
            params,
            compute,
            db=path,
            on_wait=(lambda msg: progress(0.0, msg)) if progress else None,
        )
    return _explanation_from_record(meta, arrays), cached, time.perf_counter() - t0


def explain_stored(
    sha256: str,
    model: str,
    method: str,
    *,
    window: int | None = None,
    target: str | None = None,
    segments: int = 16,
    n_samples: int | None = None,
    seed: int = 0,
    db: str | Path | None = None,
    progress: Progress | None = None,
    detectors: Mapping[str, Any] | None = None,
    backend: Any = None,
) -> tuple[Explanation, bool, float]:
    """
    Get-or-compute one explanation of a stored audio: (explanation, cached, seconds).

    window : window index; None = the most suspicious (the stored verdict's max_window)
    target : "spoof" | "bonafide" | None (= the predicted class)
    backend : object with explain, explain_params, EXPLAINERS (default core.explain)

    A hit reads the store only. A miss decodes the stored bytes, loads the model once
    per process and computes it once across sessions and processes.
    Raises NotStoredError for an unknown hash, ValueError for an unknown model/method.
    """
    path = store.resolve_db_path(db)
    if store.get_audio(sha256, db=path) is None:
        raise store.NotStoredError(
            f"no stored analysis {sha256[:12]}...; analyse the file first"
        )
    memo: list[Audio] = []

    def audio() -> Audio:
        if not memo:
            memo.append(load_audio(store.audio_bytes(sha256, db=path)))
        return memo[0]

    verdict = None
    if window is None:
        spec = _spec(model, detectors)
        row = store.get_prediction(
            sha256, model, spec.sha256, prediction_params(spec), db=path
        )
        verdict = verdict_from_json(row) if row else None
    return _explain(
        sha256,
        model,
        method,
        audio=audio,
        verdict=verdict,
        window=window,
        target=target,
        segments=segments,
        n_samples=n_samples,
        seed=seed,
        path=path,
        progress=progress,
        detectors=detectors,
        backend=backend,
    )


def load_explanations(
    sha256: str,
    *,
    model: str | None = None,
    method: str | None = None,
    db: str | Path | None = None,
) -> list[Explanation]:
    """Every stored explanation of an audio (optionally one model / method), decoded."""
    a = store.get_analysis(sha256, db=db, arrays=True)
    if a is None:
        return []
    return [
        _explanation_from_record(e["meta"], e["arrays"])
        for e in a["explanations"]
        if (model is None or e["model"] == model)
        and (method is None or e["method"] == method)
    ]


# ---------------------------------------------------------------------------- CLI


def _finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: write null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def explanation_json(e: Explanation, *, cached: bool, seconds: float) -> dict:
    """The CLI's JSON for one explanation (the dense map is left out: it is large)."""
    return _finite(
        {
            "model": e.model,
            "method": e.method,
            "method_version": e.method_version,
            "target": e.target,
            "target_label": e.target_label,
            "window": e.window,
            "window_start": e.window_start,
            "window_end": e.window_end,
            "p_target": e.p_target,
            "feature_kind": e.feature_kind,
            "feature_bounds": e.feature_bounds.tolist(),
            "values": e.values.tolist(),
            "quality": e.quality,
            "params": e.params,
            "seconds": seconds,
            "compute_seconds": e.seconds,
            "cached": cached,
        }
    )


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _how(cached: bool, seconds: float) -> str:
    return f"{'cached' if cached else 'computed'} {seconds:.3f} s"


def _print_file(name: str, a: Analysis) -> None:
    flag = "  (near-silent)" if a.near_silent else ""
    print(f"{name}  sha256 {a.sha256[:16]}  {a.duration:.2f} s{flag}")
    for k, v in a.verdicts.items():
        print(
            f"  {k:<18} P(spoof) {v.p_spoof:.3f}  {v.label:<8}  max {v.max_p_spoof:.3f} "
            f"(window {v.max_window})  {_how(a.cached[k], a.seconds[k])}"
        )
        for w in v.windows:
            print(f"    {w.start:7.2f}-{w.end:7.2f} s  {w.p_spoof:.3f}")


def _print_explanation(d: dict) -> None:
    q = d["quality"] or {}
    shown = "  ".join(
        f"{k} {q[k]:.3f}"
        for k in ("r2", "completeness_gap", "deletion_auc", "random_auc")
        if isinstance(q.get(k), (int, float))
    )
    print(
        f"  {d['model']:<18} {d['method']:<8} window {d['window']} "
        f"({d['window_start']:.2f}-{d['window_end']:.2f} s)  target {d['target_label']}  "
        f"{shown}  {_how(d['cached'], d['seconds'])}"
    )
    order = sorted(range(len(d["values"])), key=lambda i: -abs(d["values"][i]))[:3]
    for i in order:
        bounds = d["feature_bounds"][i] if i < len(d["feature_bounds"]) else []
        where = (
            f"{bounds[0]:.2f}-{bounds[1]:.2f} s"
            + (f", {bounds[2]:.0f}-{bounds[3]:.0f} Hz" if len(bounds) == 4 else "")
            if bounds
            else f"feature {i}"
        )
        print(f"      {where}  {d['values'][i]:+.4f}")


def cmd_analyze(args) -> int:
    keys = args.model or None
    methods = [m.strip() for m in (args.explain or "").split(",") if m.strip()]
    if methods:
        try:
            known = explain_methods()
        except ExplainUnavailable as e:
            _err(_one_line(e))
            return 1
        unknown = [m for m in methods if m not in known]
        if unknown:
            _err(f"unknown method {', '.join(unknown)}; known: {', '.join(known)}")
            return 1
    try:
        keys = _model_keys(keys, None)
        path = None if args.no_store else store.resolve_db_path(args.db)
    except (WeightsError, store.StoreError) as e:
        _err(_one_line(e))
        return 1
    failed, out = 0, []
    for f in args.files:
        name = Path(f).name
        try:
            data = Path(f).read_bytes()
        except OSError as e:
            _err(f"{f}: cannot read: {e.strerror or e}")
            out.append({"file": str(f), "error": f"cannot read: {e.strerror or e}"})
            failed += 1
            continue
        try:
            a, audio = _analyze(
                data,
                name,
                models=keys,
                db=path,
                progress=None,
                detectors=None,
                use_store=path is not None,
            )
        except (AudioError, WeightsError, store.StoreError, ValueError) as e:
            _err(f"{f}: {_one_line(e)}")
            out.append({"file": str(f), "error": _one_line(e)})
            failed += 1
            continue
        report = {"file": str(f), **a.to_json(), "explanations": []}
        if not args.json:
            _print_file(str(f), a)
        for key in keys:
            for method in methods:
                try:
                    expl, cached, secs = _explain(
                        a.sha256,
                        key,
                        method,
                        audio=lambda audio=audio: audio,
                        verdict=a.verdicts[key],
                        window=args.window,
                        target=args.target,
                        segments=args.segments,
                        n_samples=args.n_samples,
                        seed=args.seed,
                        path=path,
                        progress=None,
                        detectors=None,
                        backend=None,
                    )
                except Exception as e:  # one explanation failing must not stop the run
                    msg = _one_line(e)
                    if not isinstance(e, (ValueError, WeightsError, store.StoreError)):
                        msg = f"{type(e).__name__}: {msg}"
                    _err(f"{f}: {key} {method}: {msg}")
                    report["explanations"].append(
                        {"model": key, "method": method, "error": msg}
                    )
                    failed += 1
                    continue
                d = explanation_json(expl, cached=cached, seconds=secs)
                report["explanations"].append(d)
                if not args.json:
                    _print_explanation(d)
        out.append(report)
    if args.json:
        print(json.dumps(_finite(out), indent=2))
    return 1 if failed else 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze", help="score (and explain) files, through the result store"
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--model", action="append", metavar="KEY", choices=list(MODELS),
        help="repeatable; default: every model with weights installed",
    )  # fmt: skip
    p.add_argument(
        "--explain", metavar="METHODS", help="comma-separated, e.g. shap,gradcam,lime"
    )
    p.add_argument("--segments", type=int, default=16, help="features per explanation")
    p.add_argument("--window", type=int, help="window index (default: most suspicious)")
    p.add_argument(
        "--target", choices=("spoof", "bonafide"), help="default: predicted class"
    )
    p.add_argument("--n-samples", type=int, help="model evaluations for SHAP/LIME")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--db",
        metavar="PATH",
        help=f"store file (default: ${store.DB_ENV}, else cache/analyses.db)",
    )
    p.add_argument(
        "--no-store", action="store_true", help="neither read nor write the store"
    )
    p.set_defaults(func=cmd_analyze)
