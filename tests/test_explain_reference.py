"""The reference an explanation is read against, and the notes that warn its reader.

Constructed models with answers worked out by hand: a linear model of segment energies
(Shapley values of a linear game are its terms, so the sums and deletion curves are
known), a constant model (no ranking can beat random), and the shipped 2D Res-TSSDNet
on a MiniSpoof spoof clip, where the mean-spectrum reference gives a negative sum and
real speech a positive one."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

from core.detectors.detect import Detector
from core.detectors.frontends import WaveformFrontEnd
from core.engine import keys
from core.explain import explain, explain_params, notes, reference
from core.explain.base import Explanation
from core.explain.reference_build import build_reference
from core.explain.window import prepare_window
from test_explain import TinySpec, one_thread  # noqa: F401 (one_thread: autouse fixture)

N = 1600  # samples in the toy window: 8 segments of 200


class SegmentEnergies(nn.Module):
    """spoof log-odds = bias + sum_i weights[i] * (mean square of segment i)"""

    def __init__(self, weights, bias: float):
        super().__init__()
        # the Detector reads a device from it
        self.dummy = nn.Parameter(torch.zeros(()))
        self.register_buffer("w", torch.tensor(weights, dtype=torch.float32))
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = (x.reshape(len(x), 8, -1) ** 2).mean(dim=-1)  # (B, 8)
        lo = self.bias + energy @ self.w + 0.0 * self.dummy
        return torch.stack([torch.zeros_like(lo), lo], dim=1)  # spoof = index 1


def detector(weights, bias) -> Detector:
    return Detector(
        TinySpec("energies", WaveformFrontEnd(N), spoof_index=1, gradcam_layer="dummy"), SegmentEnergies(weights, bias)
    )


def noise(seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(N)).astype(np.float32)


def spoof_log_odds(det: Detector, x: torch.Tensor) -> np.ndarray:
    logits = det.logits(x).double()
    return (logits[:, 1] - logits[:, 0]).numpy()


# 1. the notes, on constructed models


def test_sign_note_when_the_blank_is_more_spoof_than_the_clip():
    # segment 5 raises spoof (+40), the others lower it (-7 each); silence scores bias 2
    # (P 0.88), the clip about 2 + 3.6 - 4.4 = 1.2 (P 0.77): spoof, but less than blank
    det = detector([-7.0] * 5 + [40.0] + [-7.0] * 2, bias=2.0)
    e = explain(det, noise(), method="shap", reference="blank")
    assert e.target_label == "spoof" and 0.5 < e.p_target < e.reference_p_spoof
    assert e.values.sum() < 0  # = log-odds(clip) - log-odds(silence)
    assert e.quality["deletion_gain"] > notes.DELETION_MARGIN  # the ranking is good
    assert len(e.notes) == 1 and e.notes[0].startswith(
        "The evidence sums towards bona fide although the model says spoof"
    )
    assert "silence" in e.notes[0] and f"{e.reference_p_spoof:.2f}" in e.notes[0]
    # explained as bona fide, the same values change sign: the same note
    bf = explain(det, noise(), method="shap", reference="blank", target="bonafide")
    np.testing.assert_allclose(bf.values, -e.values, atol=1e-9)
    assert bf.notes[0] == e.notes[0]


def test_deletion_note_when_no_ranking_beats_random():
    # the input does not matter: every curve is flat
    det = detector([0.0] * 8, bias=1.5)
    e = explain(det, noise(), method="shap", reference="blank")
    assert e.quality["deletion_gain"] == pytest.approx(0.0, abs=1e-12)
    assert e.notes == [notes.deletion_note(e.quality, "spoof")]
    assert e.notes[0].startswith("Removing the segments this explanation ranks highest")
    # no note where the explanation ranks well and sums with the verdict
    good = explain(detector([0.0] * 5 + [40.0] + [0.0] * 2, -1.0), noise(), method="shap",
                   reference="blank")  # fmt: skip
    assert good.target_label == "spoof" and good.values.sum() > 0 and good.notes == []


def test_note_rules_at_their_edges():
    q = {"deletion_auc": 0.5, "deletion_auc_random": 0.52}
    assert notes.deletion_note({**q, "deletion_gain": 0.0199}, "spoof") is not None
    assert notes.deletion_note({**q, "deletion_gain": 0.02}, "spoof") is None
    # no random orders: nothing to compare with
    assert notes.deletion_note({"deletion_auc": 0.5}, "spoof") is None
    kw = dict(reference_label="real speech", reference_p_spoof=0.03)
    # bona fide verdict (P(spoof) 0.3), evidence summing towards spoof: the note
    said = notes.sign_note(
        np.array([0.4, -0.1]), target_label="spoof", p_target=0.3, **kw
    )
    assert said.startswith(
        "The evidence sums towards spoof although the model says bona fide"
    )
    assert (
        notes.sign_note(np.array([-0.4]), target_label="spoof", p_target=0.3, **kw)
        is None
    )
    assert (
        notes.sign_note(np.array([0.4]), target_label="spoof", p_target=0.7, **kw)
        is None
    )
    assert (
        notes.sign_note(np.zeros(3), target_label="spoof", p_target=0.7, **kw) is None
    )
    # Grad-CAM's map never compares with the reference: no sign note for it
    flat = {"deletion_auc": 0.5, "deletion_auc_random": 0.9, "deletion_gain": 0.4}
    assert notes.notes_for(np.array([-1.0]), quality=flat, target_label="spoof", p_target=0.9,
                           relative=False, **kw) == []  # fmt: skip


# 2. the real-speech reference: an expected value over the set


def test_speech_reference_is_the_mean_over_the_set():
    det = detector([-7.0] * 5 + [40.0] + [-7.0] * 2, bias=2.0)
    x = noise(1)
    win = prepare_window(det, x, reference="speech")
    refs = win.baseline
    assert refs.shape == (reference.REFERENCE_WINDOWS, N)
    assert win.n_references == len(refs)
    keep = np.zeros((1, 8), bool)
    keep[0, [1, 5]] = True
    mask = torch.from_numpy(np.repeat(keep[0], N // 8))
    by_hand = spoof_log_odds(det, torch.where(mask, torch.from_numpy(x), refs))
    assert win.game(keep)[0] == pytest.approx(by_hand.mean(), abs=1e-9)
    assert win.n_evals == len(refs)  # one coalition, once per reference window
    ref_lo = spoof_log_odds(det, refs)
    assert win.reference_p_spoof == pytest.approx(np.mean(1 / (1 + np.exp(-ref_lo))))
    e = explain(det, x, method="shap")  # the default reference, exact at 8 segments
    assert e.reference == "speech" and e.params["reference"] == "speech"
    assert e.quality["reference_size"] == len(refs)
    assert e.values.sum() == pytest.approx(
        spoof_log_odds(det, win.x)[0] - ref_lo.mean()
    )
    assert e.reference_p_spoof == pytest.approx(win.reference_p_spoof)


def test_the_reference_enters_the_key_and_the_record():
    spec = TinySpec("energies", WaveformFrontEnd(N), spoof_index=1, gradcam_layer="dummy")
    default = keys.explanation_key("a" * 64, spec, "shap", window=0)
    blank = keys.explanation_key("a" * 64, spec, "shap", window=0, reference="blank")
    assert default.params["reference"] == "speech" and default.key != blank.key
    # v2 rows (mean spectrum, silence) are not served
    assert default.method_version == "3"
    with pytest.raises(ValueError, match="unknown reference"):
        explain_params("shap", reference="noise")
    e = explain(detector([0.0] * 8, 1.5), noise(), method="lime", reference="blank")
    back = Explanation.from_record(*e.to_record())
    assert (back.reference, back.reference_p_spoof, back.notes) == (
        "blank", e.reference_p_spoof, e.notes)  # fmt: skip


def test_damaged_reference_set_fails_closed(tmp_path, monkeypatch):
    shipped = reference.reference_path()
    path = tmp_path / reference.REFERENCE_FILE
    shutil.copy(shipped, path)
    shutil.copy(reference.sidecar(shipped), reference.sidecar(path))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    monkeypatch.setattr(reference, "reference_path", lambda: path)
    with pytest.raises(reference.ReferenceError, match="damaged"):
        prepare_window(detector([0.0] * 8, 0.0), noise(), reference="speech")
    reference.sidecar(path).unlink()
    with pytest.raises(reference.ReferenceError, match="missing"):
        reference.speech_set(path)


def test_shipped_set_is_train_bona_fide_and_rebuilds_byte_for_byte(
    minispoof_dir, tmp_path
):
    out = build_reference(minispoof_dir, tmp_path / reference.REFERENCE_FILE)
    shipped = reference.reference_path()
    assert out.read_bytes() == shipped.read_bytes()
    side = reference.sidecar(shipped).read_text().split()[0]
    assert side == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert shipped.stat().st_size < 2 * 2**20
    with np.load(shipped, allow_pickle=False) as z:
        ids = set(z["file_ids"].tolist())
    protocol = minispoof_dir / "protocols" / "minispoof.train.txt"
    train = protocol.read_text().split("\n")
    bona_fide = {line.split()[1] for line in train if line.endswith("bonafide")}
    assert len(ids) == reference.REFERENCE_WINDOWS and ids <= bona_fide


# 3. the shipped 2D Res-TSSDNet on a MiniSpoof spoof clip (the case)


def test_tssd2d_spoof_clip_sums_towards_spoof_against_real_speech(minispoof_dir):
    from core.audio.decode import load_audio

    det = Detector.load("tssd2d")
    # dev, M01 (espeak-ng): the model says spoof, and scores its mean spectrum as more
    # spoof still (log-odds about +13 against +2)
    x = load_audio(minispoof_dir / "flac" / "MS_D_1023594.flac").samples
    runs = {ref: explain(det, x, method="shap", reference=ref, random_orders=0)
            for ref in ("blank", "speech")}  # fmt: skip
    blank, speech = runs["blank"], runs["speech"]
    assert blank.target_label == speech.target_label == "spoof"
    assert blank.values.sum() < 0 < speech.values.sum()
    assert blank.reference_p_spoof > 0.99 and speech.reference_p_spoof < 0.5
    assert blank.notes[0].startswith("The evidence sums towards bona fide")
    assert not any(n.startswith("The evidence sums") for n in speech.notes)
