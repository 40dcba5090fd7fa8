"""Model cards: what the Models page and the report say about each registered model.

Measured numbers come from the training sidecar next to the weights (``NAME.json``,
written by ``core.training.train``); published numbers from the registry's provenance line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.audio.decode import SAMPLE_RATE
from core.detectors.precision import describe
from core.detectors.registry import MODELS, default_device, weights_dir, weights_status

_PUBLISHED_EER = re.compile(r"EER\s*([\d.]+\s*%)\s*on\s*([^;,()]+)")


def published_eers(provenance: str) -> list[str]:
    """'EER 0.83 % on LA eval (as published)' for each figure the provenance quotes."""
    return [
        f"EER {m.group(1).strip()} on {m.group(2).strip()} (as published)"
        for m in _PUBLISHED_EER.finditer(provenance)
    ]


def measured_eers(sidecar: Path) -> list[str]:
    """EER figures a training sidecar records (dev EER with its best epoch)."""
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for k, v in meta.items():
        if "eer" in k.lower() and isinstance(v, (int, float)):
            where = k.replace("_eer", "").replace("eer", "").strip("_") or "overall"
            extra = (
                f" (best epoch {meta['best_epoch']} of {meta.get('epochs_done')})"
                if k == "dev_eer" and "best_epoch" in meta
                else ""
            )
            out.append(f"{where} EER {100 * v:.2f} % (measured by this project){extra}")
    return out


def limits(spec, window_seconds: float) -> list[str]:
    if spec.origin == "user":
        learned = (
            "Added by the user: what it learned and where it fails are what its "
            "provenance and card say; this project has not checked them."
        )
    elif "official" in spec.key:
        learned = (
            "Learned ASVspoof 2019 LA (2019-era TTS and voice conversion, VCTK "
            "speakers): newer generators, other languages, noise and codecs can fool it."
        )
    else:
        learned = (
            "Trained on minispoof, a tiny demo corpus: its error rates are not "
            "a benchmark and say nothing about real-world deepfakes."
        )
    return [
        "Trained at 16 kHz: anything above 8 kHz is discarded, and telephone-band or "
        "heavily compressed audio is outside its training conditions.",
        "The 0.5 threshold on P(spoof) is not calibrated for any false-alarm rate.",
        learned,
        f"Files shorter than {window_seconds:.2f} s are tiled (repeated) to one "
        "window, as at training time; very short clips give weak evidence.",
    ]


def model_cards(directory: Path | None = None) -> list[dict]:
    """Everything the Models page shows, per registered model."""
    directory = directory or weights_dir()
    out = []
    for spec in MODELS.values():
        card_path = directory / spec.card  # the model's own card (user models: user/...)
        card_text = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
        d = spec.to_json()
        out.append(
            {
                **d,
                "status": weights_status(spec, directory),
                "hop_seconds": d["hop_samples"] / SAMPLE_RATE,
                "eers": published_eers(spec.provenance)
                + measured_eers((directory / spec.weights).with_suffix(".json")),
                "limits": limits(spec, d["window_seconds"]),
                "model_card": card_text if spec.card else "",
                # how this server scores the model (core.detectors.precision)
                "arithmetic": describe(spec, default_device()),
                "spec": d,
            }
        )
    return out
