"""The shipped weights' sidecars against the model card: no eval-only attack was ever
used for training, and the card names every training source."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from core.registry import MODELS
from core.vocode import EVAL_ONLY_SYSTEMS

WEIGHTS = ROOT / "weights"
SIDECARS = sorted(p for p in WEIGHTS.glob("*.json") if "arch" in json.loads(p.read_text()))


def test_there_are_shipped_sidecars():
    assert {p.stem for p in SIDECARS} >= {"tssd1d", "tssd2d", "aasist"}


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_no_eval_only_system_in_training_and_every_source_is_in_the_card(sidecar):
    side = json.loads(sidecar.read_text())
    systems = set(side["data"]["train_counts"]["systems"])
    assert not systems & EVAL_ONLY_SYSTEMS, f"{sidecar.name} trained on {systems & EVAL_ONLY_SYSTEMS}"
    assert "eval" not in side["data"]["train_protocol"] and "eval" not in side["data"]["dev_protocol"]
    for extra in side["data"].get("extra_train", []):
        assert "eval" not in extra["protocol"] and "dev" not in extra["protocol"]
    card = (WEIGHTS / "MODEL_CARD.md").read_text()
    missing = [s for s in sorted(systems) if s not in card]
    assert not missing, f"MODEL_CARD.md does not name training systems {missing}"
    # the card names these exact weights, and the registry checks the same file
    assert side["sha256"][:12] in card, f"MODEL_CARD.md does not name {sidecar.stem}'s SHA-256"
    assert MODELS[sidecar.stem].sha256 == side["sha256"]
