"""Plain sentences that warn a reader off an explanation, and when each one is written.

Explanation.notes holds them; the page shows them above the charts. Each rule looks at
the finished explanation only, so it is tested on constructed values.

no better than random : the deletion area (P(target) as features are removed, best
    first; core.explain.faithfulness) is not at least DELETION_MARGIN below the mean
    area of the random removal orders, i.e. quality["deletion_gain"] < DELETION_MARGIN.
    Not written when no random orders were drawn (nothing to compare with).
against the verdict : the values, read as spoof evidence (negated when the target is
    bona fide), sum below zero while the model says spoof on the window, or above zero
    while it says bona fide (P(spoof) of the window against THRESHOLD). Only for
    methods whose values measure a difference from the reference (SHAP, LIME, expected
    gradients: ``Explainer.relative``), not Grad-CAM's activation map.
"""

from __future__ import annotations

import math

import numpy as np

from core.detectors.detect import THRESHOLD

# area units (mean P(target) over the fraction of features removed, 0..1): the ranking
# must save at least 2 points of P(target) on average over the curve; the random-order
# area is a mean over 3 orders, and on the clip a gain of 0.002 was noise
DELETION_MARGIN = 0.02
LABELS = {"spoof": "spoof", "bonafide": "bona fide"}


def deletion_note(quality: dict, target_label: str) -> str | None:
    gain = quality.get("deletion_gain")
    if gain is None or not math.isfinite(gain) or gain >= DELETION_MARGIN:
        return None
    area, random = quality["deletion_auc"], quality["deletion_auc_random"]
    return (
        f"Removing the segments this explanation ranks highest lowers "
        f"P({LABELS[target_label]}) no faster than removing them in random order "
        f"(deletion area {area:.3f} against {random:.3f}), so do not read much into "
        f"its ranking."
    )


def sign_note(
    values: np.ndarray,
    *,
    target_label: str,
    p_target: float,
    reference_label: str,
    reference_p_spoof: float | None,
) -> str | None:
    total = float(np.sum(values))
    spoof_total = total if target_label == "spoof" else -total
    p_spoof = p_target if target_label == "spoof" else 1.0 - p_target
    says = "spoof" if p_spoof >= THRESHOLD else "bonafide"
    if (says == "spoof" and spoof_total >= 0) or (
        says == "bonafide" and spoof_total <= 0
    ):
        return None
    towards = "bonafide" if says == "spoof" else "spoof"
    colour = "blue" if says == "spoof" else "red"
    meaning = "less spoof-like" if says == "spoof" else "more spoof-like"
    ref = reference_label
    if reference_p_spoof is not None:
        ref += f", which the model scores P(spoof) {reference_p_spoof:.2f}"
    return (
        f"The evidence sums towards {LABELS[towards]} although the model says "
        f"{LABELS[says]} on this window (P(spoof) {p_spoof:.2f}), because every value "
        f"compares the window with the reference ({ref}): {colour} here means "
        f"{meaning} than that reference, not {LABELS[towards]}."
    )


def reference_line(e) -> str:
    """what removed features were replaced by, and how the model scores it ("" unknown)"""
    if not e.reference_label:
        return ""
    p = e.reference_p_spoof
    scored = "" if p is None else f", which the model scores P(spoof) {p:.2f}"
    return f"Removed segments take the reference: {e.reference_label}{scored}."


def notes_for(
    values: np.ndarray,
    *,
    quality: dict,
    target_label: str,
    p_target: float,
    relative: bool,
    reference_label: str,
    reference_p_spoof: float | None,
) -> list[str]:
    """the notes of one explanation, in the order the page shows them"""
    notes = []
    if relative:
        notes.append(
            sign_note(
                values,
                target_label=target_label,
                p_target=p_target,
                reference_label=reference_label,
                reference_p_spoof=reference_p_spoof,
            )
        )
    notes.append(deletion_note(quality, target_label))
    return [n for n in notes if n]
