"""The calibration file: everything fitted for the verdict, tied to the weights it was fitted for.

    cal = fit_calibration_file(scores, labels, weights_sha256=..., fitted_on=...)
    cal.save(path)                 # NAME.json + NAME.json.sha256
    cal = CalibrationFile.load(path)   # refused when the checksum or version does not match
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from core.judgement.calibration import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Calibration,
    CalibrationFileError,
    Fusion,
    choose_bands,
    fit_fusion,
)


@dataclass(frozen=True)
class ModelCalibration:
    calibration: Calibration
    weights_sha256: str  # of the weights file the scores came from


@dataclass(frozen=True)
class CalibrationFile:
    """
    Everything fitted for the verdict, tied to the weights it was fitted for.

    JSON: {"format", "version", "fitted_on", "models": {key: {"weights_sha256",
    "calibration"}}, "fusion": {"models", "subsets": [...]} | null, "widen": {code:
    log-odds}, "familiarity": {...} (optional)}. save() writes
    NAME.json and NAME.json.sha256 (sha256sum format); load() refuses a file whose
    sha does not match its sidecar.
    """

    models: dict[str, ModelCalibration]
    fusion: Fusion | None
    fitted_on: dict  # e.g. {"protocol": path, "n_bonafide": 85, "n_spoof": 105}
    version: int = FORMAT_VERSION
    # warning code -> log-odds each band edge moves out when that warning is raised:
    # measured by scoring dev degraded the matching way (core.cli.calibrate --degrade),
    # and on the dev files where the models disagree or the audio is unfamiliar
    widen: dict = field(default_factory=dict)
    # how unfamiliar audio is measured (core.judgement.familiarity): {"file", "sha256",
    # "scale": {model: dev 95th percentile of its distance}, "threshold"}; {} = not fitted
    familiarity: dict = field(default_factory=dict)

    def for_models(self, current: Mapping[str, str]) -> "CalibrationFile":
        """only the models whose weights sha matches current[key] (and their fusions)"""
        keep = {k: m for k, m in self.models.items() if current.get(k) == m.weights_sha256}
        fusion = self.fusion.restrict(keep) if self.fusion is not None else None
        return replace(self, models=keep, fusion=fusion)

    def to_json(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": self.version,
            "fitted_on": self.fitted_on,
            "models": {k: {"weights_sha256": m.weights_sha256,
                           "calibration": m.calibration.to_json()}
                       for k, m in sorted(self.models.items())},
            "fusion": self.fusion.to_json() if self.fusion is not None else None,
            "widen": dict(sorted(self.widen.items())),
            **({"familiarity": self.familiarity} if self.familiarity else {}),
        }

    @classmethod
    def from_json(cls, d: dict) -> "CalibrationFile":
        if d.get("format") != FORMAT_NAME:
            raise CalibrationFileError(f"not a calibration file (format {d.get('format')!r})")
        if d.get("version") != FORMAT_VERSION:
            raise CalibrationFileError(
                f"calibration file version {d.get('version')!r}; this code reads "
                f"version {FORMAT_VERSION}: refit it with the current code")
        models = {k: ModelCalibration(Calibration(**m["calibration"]), m["weights_sha256"])
                  for k, m in d["models"].items()}
        fusion = Fusion.from_json(d["fusion"]) if d.get("fusion") else None
        widen = {str(k): float(v) for k, v in (d.get("widen") or {}).items()}
        return cls(models, fusion, dict(d.get("fitted_on") or {}), int(d["version"]), widen,
                   dict(d.get("familiarity") or {}))  # fmt: skip

    def save(self, path: str | Path) -> Path:
        """write path and path + '.sha256'; returns the sidecar's path"""
        path = Path(path)
        data = (json.dumps(self.to_json(), indent=2, sort_keys=True, allow_nan=False)
                + "\n").encode()
        side = sidecar_path(path)
        for target, content in ((path, data), (side, _sha_line(data, path.name))):
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(content)
            os.replace(tmp, target)  # readers never see half a file
        return side

    @classmethod
    def load(cls, path: str | Path) -> "CalibrationFile":
        path = Path(path)
        side = sidecar_path(path)
        try:
            data = path.read_bytes()
            recorded = side.read_text().split()[0]
        except (OSError, IndexError) as e:
            raise CalibrationFileError(
                f"{path.name}: cannot read it and its {side.name} checksum: {e}") from e
        actual = hashlib.sha256(data).hexdigest()
        if actual != recorded:
            raise CalibrationFileError(
                f"{path.name} does not match {side.name} (sha256 {actual[:12]}... vs "
                f"{recorded[:12]}...): the file was changed after it was saved; refit it")
        return cls.from_json(json.loads(data))


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha_line(data: bytes, name: str) -> bytes:
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


def fit_calibration_file(
    scores: Mapping[str, object],
    labels,
    *,
    weights_sha256: Mapping[str, str],
    fitted_on: dict,
    max_error: float = 0.05,
    band_scores: Mapping[str, object] | None = None,
    band_labels=None,
) -> CalibrationFile:
    """
    Per-model calibrations, all-subset fusion and per-subset bands in one file.

    Bands are chosen on band_scores / band_labels when given, else on the fitting data
    (slightly optimistic: the fit has seen those files).
    """
    fusion = fit_fusion(scores, labels)
    bs, bl = (band_scores, band_labels) if band_scores is not None else (scores, labels)
    subsets = {k: replace(f, bands=choose_bands(f.apply(bs), bl, max_error=max_error))
               for k, f in fusion.subsets.items()}
    models = {m: ModelCalibration(Calibration(*fusion.subsets[(m,)].weights,
                                              fusion.subsets[(m,)].bias),
                                  weights_sha256[m]) for m in fusion.models}
    return CalibrationFile(models, Fusion(fusion.models, subsets), dict(fitted_on))
