"""`python -m core evaluate`: EER of a detector on an ASVspoof-style protocol.

Every file is scored exactly as users get it: ``Detector.score(audio).p_spoof``, the
mean window P(spoof) over the whole file (see core.detectors.detect). Reported: the overall EER
(all spoofs vs all bona fide), the EER per attack system (that system's spoofs vs all
bona fide) and, when the known attacks are given or can be read from the model's
sidecar, the pooled EER on known and on unseen attacks. With ``--degrade`` the same
summary is reported once per degradation condition (core.training.robustness).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio.decode import AudioError, load_audio
from core.audio.protocol import ProtocolEntry, audio_path, check_audio
from core.detectors.registry import MODELS, ModelSpec, WeightsError, weights_dir
from core.judgement.metrics import compute_eer, matched_eer


@dataclass(frozen=True)
class ScoredFile:
    file_id: str
    system: str  # "-" for bona fide
    key: str  # "bonafide" | "spoof"
    score: float  # P(spoof) of the whole file; higher = more spoof
    source: str = ""  # the protocol's first column: a speaker, or a source page (DemoSpoof)
    embedding: tuple[float, ...] | None = None  # the verdict's mean window embedding


def spec_from_sidecar(path: Path) -> ModelSpec:
    """A ModelSpec for an unregistered weights file NAME.pt with its NAME.json sidecar."""
    side = path.with_suffix(".json")
    if not path.exists():
        raise WeightsError(f"weights file {path} is missing")
    if not side.exists():
        raise WeightsError(f"{path}: no sidecar {side.name} (written by `python -m core train`)")
    meta = json.loads(side.read_text())
    return ModelSpec(
        key=path.stem,
        display_name=f"{meta['arch']} ({path.name})",
        arch=meta["arch"],
        config=meta.get("config") or {},
        weights=path.name,
        sha256=meta["sha256"],  # load_model refuses the file if it no longer matches
        provenance=f"experiment: {meta.get('command', '')}",
        how_to_get="retrain with the command in the sidecar",
    )


def resolve_model(model: str) -> tuple[ModelSpec, Path]:
    """registry key or path to a .pt with sidecar -> (spec, weights directory)"""
    if model in MODELS:
        return MODELS[model], weights_dir()
    path = Path(model)
    if path.suffix in (".pt", ".pth") or path.exists():
        return spec_from_sidecar(path), path.parent
    raise WeightsError(f"unknown model {model!r}: a key of `python -m core models` or a .pt path")


def known_systems_of(spec: ModelSpec, directory: Path) -> list[str] | None:
    """attack systems in the model's training protocol, from its sidecar if it has one"""
    side = (directory / spec.weights).with_suffix(".json")
    if not side.exists():
        return None
    try:
        meta = json.loads(side.read_text())
        return sorted(meta["data"]["train_counts"]["systems"])
    except (KeyError, ValueError, TypeError):
        return None


def score_protocol(
    detector, entries: list[ProtocolEntry], audio_dir: str | Path, *, progress: bool = True
) -> list[ScoredFile]:
    """Whole-file P(spoof) of every protocol entry, with the engine's scoring."""
    check_audio(entries, audio_dir)
    it = entries
    if progress:
        from tqdm import tqdm

        it = tqdm(entries, desc=f"scoring ({detector.spec.key})", unit="file", dynamic_ncols=True)
    out = []
    for e in it:
        try:
            audio = load_audio(audio_path(audio_dir, e))
        except AudioError as err:
            raise AudioError(f"{audio_path(audio_dir, e)}: {err}") from err
        v = detector.score(audio)
        out.append(ScoredFile(e.file_id, e.system, e.key, float(v.p_spoof), source=e.speaker,
                              embedding=getattr(v, "embedding", None)))  # fmt: skip
    return out


def summarize(
    scored: list[ScoredFile], *, known: list[str] | None = None, matched: bool = False
) -> dict:
    """
    EERs (percent) overall, per attack system and, with ``known``, pooled over the
    known and the unseen systems; each with its counts. With ``matched``, the protocol's
    first column is the source: "matched" holds the EER per source (its spoofs against
    its own bona fide), their mean and the pooled EER (core.judgement.metrics.matched_eer).
    """
    scores = np.array([s.score for s in scored], dtype=np.float64)
    systems = np.array([s.system for s in scored])
    is_spoof = np.array([s.key == "spoof" for s in scored])
    bona = scores[~is_spoof]

    def eer_of(mask: np.ndarray) -> dict:
        r = compute_eer(bona, scores[mask & is_spoof])
        return {
            "eer": 100.0 * r.eer,
            "threshold": r.threshold,
            "n_bonafide": r.n_bonafide,
            "n_spoof": r.n_spoof,
        }

    summary = {"overall": eer_of(is_spoof), "per_system": {}}
    for sys_id in sorted(set(systems[is_spoof])):
        summary["per_system"][sys_id] = eer_of(systems == sys_id)
    if known is not None:
        k = np.isin(systems, known)
        summary["known_systems"] = sorted(set(systems[is_spoof & k]))
        summary["unseen_systems"] = sorted(set(systems[is_spoof & ~k]))
        if summary["known_systems"]:
            summary["known"] = eer_of(k)
        if summary["unseen_systems"]:
            summary["unseen"] = eer_of(~k)
    if matched:
        summary["matched"] = matched_eer(scores, is_spoof, np.array([s.source for s in scored]))
    return summary


def write_scores(path: str | Path, scored: list[ScoredFile]) -> None:
    """one line per file: FILE_ID SYSTEM KEY SCORE (higher = more spoof)"""
    with open(path, "w") as f:
        for s in scored:
            f.write(f"{s.file_id} {s.system} {s.key} {s.score:.8f}\n")


def format_summary(summary: dict) -> str:
    def row(name: str, r: dict) -> str:
        counts = f"bona fide {r['n_bonafide']:4d}  spoof {r['n_spoof']:4d}"
        return f"{name:<10} EER {r['eer']:6.2f} %   {counts}"

    lines = []
    if "matched" in summary:
        lines += format_matched(summary["matched"])
    lines.append(row("overall", summary["overall"]))
    if "known" in summary:
        systems = ", ".join(summary["known_systems"])
        lines.append(row("known", summary["known"]) + f"   ({systems})")
    if "unseen" in summary:
        systems = ", ".join(summary["unseen_systems"])
        lines.append(row("unseen", summary["unseen"]) + f"   ({systems})")
    for sys_id, r in summary["per_system"].items():
        lines.append(row(sys_id, r))
    return "\n".join(lines)


def format_matched(m: dict) -> list[str]:
    """the matched EER, then one line per source (left-out sources say why)"""
    mean = "n/a (no source has both bona fide and spoofs)" if m["matched"] is None else (
        f"{m['matched']:6.2f} %   mean over {m['n_sources']} sources")
    lines = [f"{'matched':<10} EER {mean}",
             f"{'pooled':<10} EER " + ("n/a" if m["pooled"]["eer"] is None else
                                       f"{m['pooled']['eer']:6.2f} %   all sources together")]
    for src, r in m["per_source"].items():
        counts = f"bona fide {r['n_bonafide']:4d}  spoof {r['n_spoof']:4d}"
        if r["eer"] is None:
            lines.append(f"  {src:<18} left out of the mean: {r['left_out']}   {counts}")
        else:
            lines.append(f"  {src:<18} EER {r['eer']:6.2f} %   {counts}")
    return lines
