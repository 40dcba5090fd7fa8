"""Corpus-level aggregation: per-attack EER and per-attack attribution profiles.

Which artefacts does each attack leave? For every attack system and model we average the
normalised attributions of that system's files (as Ge et al., ICASSP 2022, do with SHAP
per attack):

- **time profile**: each explanation's feature values are normalised to unit L1 norm,
  then spread over ``n_bins`` equal bins of *relative* time within the explained window
  (0 = window start, 1 = window end) in proportion to how much of each bin a feature
  covers; the profile is the mean over the system's files.
- **frequency profile** (time-frequency explanations, i.e. the CQT model): the same
  normalised values summed over time into ``n_bands`` bands that are equal on a log-
  frequency axis between the CQT's lowest and highest bin, then averaged over files.

Values keep their sign: positive = evidence for the explanation's target class. To make
files comparable whatever class was explained, every value is first turned into
evidence *for spoof* (multiplied by -1 when the target was bona fide).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from core.audio.features import cqt_frequencies
from core.explain.geometry import spoof_sign, spread
from core.judgement.metrics import compute_eer

N_TIME_BINS = 20
N_FREQ_BANDS = 24


def _signed(values: np.ndarray, target_label: str) -> np.ndarray:
    """attribution values as evidence for spoof (core.explain.geometry's sign rule)"""
    return spoof_sign(SimpleNamespace(target_label=target_label)) * np.asarray(
        values, dtype=np.float64
    )


def _normalise(v: np.ndarray) -> np.ndarray:
    total = np.abs(v).sum()
    return v / total if total > 0 else np.zeros_like(v)


def time_profile(
    feature_bounds: np.ndarray,
    values: np.ndarray,
    window_start: float,
    window_end: float,
    target_label: str,
    *,
    n_bins: int = N_TIME_BINS,
) -> np.ndarray:
    """
    One explanation's normalised spoof evidence over relative time, shape = (n_bins,).

    feature_bounds : (F, 2) or (F, 4) array whose first two columns are [t0, t1] seconds
    """
    b = np.asarray(feature_bounds, dtype=np.float64)
    span = max(window_end - window_start, 1e-9)
    lo = (b[:, 0] - window_start) / span
    hi = (b[:, 1] - window_start) / span
    v = _normalise(_signed(values, target_label))
    return spread(lo, hi, v, np.linspace(0.0, 1.0, n_bins + 1))


def frequency_edges(n_bands: int = N_FREQ_BANDS) -> np.ndarray:
    """band edges in Hz, equal steps in log frequency over the CQT's range"""
    f = cqt_frequencies()
    return np.geomspace(f[0], f[-1], n_bands + 1)


def frequency_profile(
    feature_bounds: np.ndarray, values: np.ndarray, target_label: str, *, n_bands: int = N_FREQ_BANDS
) -> np.ndarray:
    """
    One time-frequency explanation's normalised spoof evidence over frequency bands.

    feature_bounds : (F, 4) [t0, t1, f0, f1]; returns shape = (n_bands,)
    """
    b = np.asarray(feature_bounds, dtype=np.float64)
    v = _normalise(_signed(values, target_label))
    # spread on a log-frequency axis so an octave counts the same everywhere
    lo, hi = np.log2(np.maximum(b[:, 2], 1e-3)), np.log2(np.maximum(b[:, 3], 1e-3))
    return spread(lo, hi, v, np.log2(frequency_edges(n_bands)))


@dataclass
class AttackProfile:
    model: str
    method: str
    system: str  # attack id, "-" for bona fide
    n_files: int
    time: np.ndarray  # (n_bins,) mean normalised spoof evidence over relative time
    frequency: np.ndarray | None = None  # (n_bands,) for time-frequency explanations


@dataclass
class CorpusSummary:
    eer: list[dict] = field(default_factory=list)  # rows: model, system, eer_percent, counts
    profiles: list[AttackProfile] = field(default_factory=list)
    time_bins: int = N_TIME_BINS
    freq_edges_hz: list[float] = field(default_factory=lambda: frequency_edges().tolist())

    def to_json(self) -> dict:
        return {
            "eer": self.eer,
            "time_bins": self.time_bins,
            "freq_edges_hz": self.freq_edges_hz,
            "profiles": [
                {
                    "model": p.model,
                    "method": p.method,
                    "system": p.system,
                    "n_files": p.n_files,
                    "time": p.time.tolist(),
                    "frequency": None if p.frequency is None else p.frequency.tolist(),
                }
                for p in self.profiles
            ],
        }

    def eer_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(
            buf, fieldnames=["model", "system", "eer_percent", "n_bonafide", "n_spoof"]
        )
        w.writeheader()
        w.writerows(self.eer)
        return buf.getvalue()

    def profiles_csv(self) -> str:
        """long format: model, method, system, axis (time|frequency), bin, lo, hi, value"""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["model", "method", "system", "n_files", "axis", "bin", "lo", "hi", "value"])
        t_edges = np.linspace(0, 1, self.time_bins + 1)
        for p in self.profiles:
            for i, v in enumerate(p.time):
                w.writerow([p.model, p.method, p.system, p.n_files, "time", i,
                            f"{t_edges[i]:.4f}", f"{t_edges[i + 1]:.4f}", f"{v:.6g}"])
            if p.frequency is not None:
                e = self.freq_edges_hz
                for i, v in enumerate(p.frequency):
                    w.writerow([p.model, p.method, p.system, p.n_files, "frequency", i,
                                f"{e[i]:.2f}", f"{e[i + 1]:.2f}", f"{v:.6g}"])
        return buf.getvalue()


def per_attack_eer(rows: list[dict]) -> list[dict]:
    """
    rows: dicts with model, system ("-" for bona fide), key, score (higher = spoof).
    Returns, per model, the pooled EER ("all") and one row per attack system (that
    system's spoofs vs all bona fide files), EER in percent.
    """
    out = []
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        bona = np.array([r["score"] for r in mine if r["key"] == "bonafide"])
        systems = sorted({r["system"] for r in mine if r["key"] == "spoof"})
        for system in ["all", *systems]:
            spoof = np.array(
                [r["score"] for r in mine if r["key"] == "spoof" and system in ("all", r["system"])]
            )
            if len(bona) == 0 or len(spoof) == 0:
                continue
            e = compute_eer(bona, spoof)
            out.append({"model": model, "system": system, "eer_percent": round(e.percent, 3),
                        "n_bonafide": e.n_bonafide, "n_spoof": e.n_spoof})
    return out


def attack_profiles(
    records: list[dict], *, n_bins: int = N_TIME_BINS, n_bands: int = N_FREQ_BANDS
) -> list[AttackProfile]:
    """
    records: dicts with model, method, system, target_label, window_start, window_end,
    feature_kind, feature_bounds (F, 2|4) and values (F,). One profile per
    (model, method, system), averaged over its files.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if len(r["values"]) == 0:
            continue
        groups.setdefault((r["model"], r["method"], r["system"]), []).append(r)
    out = []
    for (model, method, system), rs in sorted(groups.items()):
        times = [
            time_profile(r["feature_bounds"], r["values"], r["window_start"],
                         r["window_end"], r["target_label"], n_bins=n_bins)
            for r in rs
        ]
        freqs = [
            frequency_profile(r["feature_bounds"], r["values"], r["target_label"], n_bands=n_bands)
            for r in rs
            if r["feature_kind"] == "time-frequency"
        ]
        out.append(
            AttackProfile(
                model=model, method=method, system=system, n_files=len(rs),
                time=np.mean(times, axis=0),
                frequency=np.mean(freqs, axis=0) if freqs else None,
            )
        )
    return out


def summarise(score_rows: list[dict], explanation_records: list[dict]) -> CorpusSummary:
    return CorpusSummary(eer=per_attack_eer(score_rows), profiles=attack_profiles(explanation_records))


def summary_json(summary: CorpusSummary) -> str:
    return json.dumps(summary.to_json(), indent=2)


def _current_rows(rows: list[dict], by: tuple[str, ...], is_current) -> list[dict]:
    """One row per group: a current one (core.engine.keys) when there is one, else the newest
    (rows arrive newest first per model)."""
    best: dict[tuple, tuple[dict, bool]] = {}
    for r in rows:
        k = tuple(r[c] for c in by)
        current = is_current(r)
        if k not in best or (current and not best[k][1]):
            best[k] = (r, current)
    return [r for r, _ in best.values()]


def summarise_batch(engine, name: str) -> CorpusSummary:
    """CorpusSummary of a stored batch: scores and explanations joined with labels."""
    from core import store
    from core.detectors.registry import MODELS
    from core.engine import keys

    files = engine.batch_files(name)
    if not files:
        raise KeyError(f"no batch named {name!r} in the store")
    label = {f["sha256"]: f for f in files if f["sha256"] and f["status"] == "done"}
    backend = engine.backend
    scores, records = [], []
    for sha, f in label.items():
        analysis = store.get_analysis(sha, db=engine.db_path, arrays=True)
        if analysis is None:
            continue
        for p in _current_rows(analysis["predictions"], ("model",),
                               lambda r: keys.is_current(r, MODELS.get(r["model"]))):
            scores.append({"model": p["model"], "system": f["system"], "key": f["key"],
                           "score": p["p_spoof"]})
        for e in _current_rows(analysis["explanations"], ("model", "method"),
                               lambda r: keys.is_current_explanation(
                                   r, MODELS.get(r["model"]), backend)):
            meta, arrays = e["meta"], e["arrays"]
            records.append({
                "model": e["model"], "method": e["method"], "system": f["system"],
                "target_label": meta["target_label"], "window_start": meta["window_start"],
                "window_end": meta["window_end"], "feature_kind": meta["feature_kind"],
                "feature_bounds": arrays.get("feature_bounds"),
                "values": arrays.get("values"),
            })
    return summarise(scores, records)
