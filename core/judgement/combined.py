"""The combined verdict: every calibrated model fused into one P(spoof) with three bands.

    c = combine(verdicts, quality, calibration)  # calibration: a calibration_file.CalibrationFile
    c.p_spoof, c.band, c.models_disagree, c.reasons

Only models whose weights are those the calibration was fitted for take part (a
retrained or replaced model is left out, with a reason, until `python -m core
calibrate` is run again); the fusion fitted for exactly that subset is used
(core.judgement.calibration.Fusion fits every subset). The bands come from dev: outside
[lo, hi] the fused score made at most the chosen share of errors there. Input-quality
warnings the calibration measured to hurt (dev scored under that degradation) widen the
band by their log-odds ``widen``; so do two judgement warnings, by amounts measured on
dev files from sources the fit did not see: the models disagree (one calibrated
P(spoof) above 0.5, another below), and the audio is unfamiliar (its embedding lies far
from every fused model's training data: core.judgement.familiarity). Audio with too
little speech is "too short to judge" whatever its score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from core.audio.quality import InputQuality
from core.detectors.detect import Verdict
from core.jsonsafe import finite
from core.judgement.calibration import Bands, band, widened
from core.judgement.calibration_file import CalibrationFile
from core.judgement.familiarity import Familiarity, unfamiliarity

UNCALIBRATED = "uncalibrated"
BAND_LABELS = {
    "likely_bonafide": "likely bona fide",
    "uncertain": "uncertain",
    "likely_spoof": "likely spoof",
    "too_short": "too short to judge",
    UNCALIBRATED: "not calibrated",
}
BANDS = tuple(BAND_LABELS)
# plain words for a warning that widened the band (how the page and the CLI say it)
STRONGER = "so the verdict needs stronger evidence to be confident (measured on dev audio like it)"
STRONGER_DISAGREE = ("Where the models disagreed on dev, confident calls were wrong more often, so "
                     "the verdict needs stronger evidence to be confident.")
WIDEN_WHY = {
    "narrow_band": "The audio has a narrow bandwidth (telephone-like)",
    "lossy_codec": "The audio went through a lossy codec (MP3, Ogg)",
    "low_snr": "The audio is noisy",
}
# log-odds: the raw-score clip of core.judgement.calibration; beyond it, never confident
MAX_WIDEN = 13.8


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
    left_out: dict[str, str] = field(default_factory=dict)  # model -> why it was not fused
    # judgement warnings: {"code", "message", "value", "threshold", "unit"} (plain words)
    warnings: tuple[dict, ...] = field(default=())
    unfamiliarity: float | None = None  # largest distance / dev scale over the fused models
    unfamiliar_threshold: float | None = None

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
                "left_out": dict(self.left_out),
                "warnings": [dict(w) for w in self.warnings],
                "unfamiliarity": self.unfamiliarity,
                "unfamiliar_threshold": self.unfamiliar_threshold,
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
    familiarity: Familiarity | None = None,
) -> Combined:
    """
    verdicts : model key -> Verdict (its raw whole-file P(spoof) and weights hash)
    quality : the input's warnings (None: not measured, nothing widens or shortens)
    calibration : None when there is no calibration file (or it was refused:
        ``calibration_problem`` says why, in one line)
    familiarity : the fitted Gaussians the calibration names (None: not measured)
    """
    reasons: list[str] = []
    left_out: dict[str, str] = {}
    too_short = bool(quality and quality.too_short)
    usable: dict[str, Verdict] = {}
    if calibration is None:
        reasons.append(calibration_problem or "no calibration file: run python -m core calibrate")
    else:
        for key, v in verdicts.items():
            fitted = calibration.models.get(key)
            if fitted is None:
                left_out[key] = "not in the combined verdict: run python -m core calibrate"
            elif fitted.weights_sha256 != v.weights_sha256:
                left_out[key] = ("its weights changed since the calibration: run python -m core "
                                 "calibrate")  # fmt: skip
            else:
                usable[key] = v
        reasons += [f"{k}: {why}" for k, why in left_out.items()]
    if not usable:
        raw = {k: v.p_spoof for k, v in verdicts.items()}
        return Combined(
            p_spoof=None, band="too_short" if too_short else UNCALIBRATED,
            models_disagree=disagree(raw), models=(), calibrated={}, lo=None, hi=None,
            widen=0.0, reasons=tuple(reasons), left_out=left_out,
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
            reasons.append(f"{WIDEN_WHY.get(w.code, w.code)}: {STRONGER}")
    warnings: list[dict] = []
    split = disagree(calibrated)
    by = float(calibration.widen.get("models_disagree", 0.0))
    if split:
        hi_m = max(calibrated, key=calibrated.get)
        lo_m = min(calibrated, key=calibrated.get)
        warnings.append({
            "code": "models_disagree",
            "message": f"The models disagree: {hi_m} gives P(spoof) {calibrated[hi_m]:.2f}, "
                       f"{lo_m} {calibrated[lo_m]:.2f}."
                       + (f" {STRONGER_DISAGREE}" if by > 0 else ""),
            "value": calibrated[hi_m] - calibrated[lo_m], "threshold": 0.0,
            "unit": "difference in calibrated P(spoof)"})  # fmt: skip
        widen += by
    u, threshold = None, None
    fam = calibration.familiarity or {}
    if familiarity is not None and fam.get("scale"):
        dist = familiarity.distances({k: usable[k].embedding for k in models},
                                     {k: usable[k].weights_sha256 for k in models})  # fmt: skip
        u = unfamiliarity(dist, fam["scale"])
        threshold = float(fam["threshold"])
        if u is not None and u > threshold:
            by = float(calibration.widen.get("unfamiliar_audio", 0.0))
            warnings.append({
                "code": "unfamiliar_audio",
                "message": f"This audio is unlike what the models were trained on: "
                           f"unfamiliarity {u:.2f}, where 95 % of the dev recordings score below "
                           f"{threshold:.2f}." + (f" {STRONGER}" if by > 0 else ""),
                "value": u, "threshold": threshold, "unit": "times the dev spread"})  # fmt: skip
            widen += by
    widen = min(widen, MAX_WIDEN)
    edges = widened(bands, widen)
    return Combined(
        p_spoof=p,
        band=band(p, bands, widen=widen, too_short=too_short),
        models_disagree=split,
        models=models,
        calibrated=calibrated,
        lo=edges.lo,
        hi=edges.hi,
        widen=widen,
        reasons=tuple(reasons),
        left_out=left_out,
        warnings=tuple(warnings),
        unfamiliarity=u,
        unfamiliar_threshold=threshold,
    )
