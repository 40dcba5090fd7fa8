"""The combined verdict: every calibrated model fused into one P(spoof) with three bands.

    c = combine(verdicts, quality, calibration)      # core.judgement.calibration.CalibrationFile
    c.p_spoof, c.band, c.models_disagree, c.reasons

Only models whose weights are those the calibration was fitted for take part (a
retrained or replaced model is left out, with a reason, until `python -m core
calibrate` is run again); the fusion fitted for exactly that subset is used
(core.judgement.calibration.Fusion fits every subset). The bands come from dev: outside
[lo, hi] the fused score made at most the chosen share of errors there. Input-quality
warnings the calibration measured to hurt (dev scored under that degradation) widen the
band by their log-odds ``widen``; audio with too little speech is "too short to judge"
whatever its score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from core.audio.quality import InputQuality
from core.detectors.detect import Verdict
from core.jsonsafe import finite
from core.judgement.calibration import Bands, CalibrationFile, band, widened

UNCALIBRATED = "uncalibrated"
BAND_LABELS = {
    "likely_bonafide": "likely bona fide",
    "uncertain": "uncertain",
    "likely_spoof": "likely spoof",
    "too_short": "too short to judge",
    UNCALIBRATED: "not calibrated",
}
BANDS = tuple(BAND_LABELS)
MAX_WIDEN = 13.8  # log-odds: the raw-score clip of core.judgement.calibration; beyond, never confident


@dataclass(frozen=True)
class Combined:
    p_spoof: float | None  # fused calibrated P(spoof); None when no model is calibrated
    band: str  # one of BANDS
    models_disagree: bool  # some model's P(spoof) is above 0.5 and another's below
    models: tuple[str, ...]  # the models fused
    calibrated: dict[str, float]  # model -> its own calibrated P(spoof)
    lo: float | None  # effective band edges after widening (None: uncalibrated)
    hi: float | None
    widen: float  # log-odds the warnings added to each side of the band
    reasons: tuple[str, ...] = field(default=())  # why models were left out, widening

    @property
    def label(self) -> str:
        return BAND_LABELS[self.band]

    @property
    def confident(self) -> bool:
        return self.band in ("likely_bonafide", "likely_spoof")

    def to_json(self) -> dict:
        return finite(
            {
                "p_spoof": self.p_spoof,
                "band": self.band,
                "label": self.label,
                "models_disagree": self.models_disagree,
                "models": list(self.models),
                "calibrated": dict(self.calibrated),
                "lo": self.lo,
                "hi": self.hi,
                "widen": self.widen,
                "reasons": list(self.reasons),
            }
        )


def disagree(p: Mapping[str, float]) -> bool:
    values = list(p.values())
    return len(values) > 1 and max(values) > 0.5 > min(values)


def combine(
    verdicts: Mapping[str, Verdict],
    quality: InputQuality | None,
    calibration: CalibrationFile | None,
    *,
    calibration_problem: str | None = None,
) -> Combined:
    """
    verdicts : model key -> Verdict (its raw whole-file P(spoof) and weights hash)
    quality : the input's warnings (None: not measured, nothing widens or shortens)
    calibration : None when there is no calibration file (or it was refused:
        ``calibration_problem`` says why, in one line)
    """
    reasons: list[str] = []
    too_short = bool(quality and quality.too_short)
    usable: dict[str, Verdict] = {}
    if calibration is None:
        reasons.append(calibration_problem or "no calibration file: run python -m core calibrate")
    else:
        for key, v in verdicts.items():
            fitted = calibration.models.get(key)
            if fitted is None:
                reasons.append(f"{key}: not in the calibration, left out")
            elif fitted.weights_sha256 != v.weights_sha256:
                reasons.append(f"{key}: weights changed since calibration, left out")
            else:
                usable[key] = v
    if not usable:
        raw = {k: v.p_spoof for k, v in verdicts.items()}
        return Combined(
            p_spoof=None, band="too_short" if too_short else UNCALIBRATED,
            models_disagree=disagree(raw), models=(), calibrated={}, lo=None, hi=None,
            widen=0.0, reasons=tuple(reasons),
        )  # fmt: skip
    calibrated = {k: calibration.models[k].calibration.apply(v.p_spoof) for k, v in usable.items()}
    models = tuple(sorted(usable))
    fused = None
    if calibration.fusion is not None:
        try:
            fused = calibration.fusion.select(models)
        except ValueError:
            reasons.append("no fusion fitted for these models")
    if fused is not None and fused.bands is not None:
        p = float(fused.apply({k: usable[k].p_spoof for k in models}))
        bands = fused.bands
    else:  # a lone calibrated model without bands: nothing is confident
        p = float(sum(calibrated.values()) / len(calibrated))
        bands = Bands(lo=0.0, hi=1.0)
        reasons.append("no bands fitted: the verdict stays uncertain")
    widen = 0.0
    for w in quality.warnings if quality else ():
        by = float(calibration.widen.get(w.code, 0.0))
        if by > 0:
            widen += by
            reasons.append(f"{w.code}: band widened by {by:.2f} log-odds (measured on dev)")
    widen = min(widen, MAX_WIDEN)
    edges = widened(bands, widen)
    return Combined(
        p_spoof=p,
        band=band(p, bands, widen=widen, too_short=too_short),
        models_disagree=disagree(calibrated),
        models=models,
        calibrated=calibrated,
        lo=edges.lo,
        hi=edges.hi,
        widen=widen,
        reasons=tuple(reasons),
    )
