"""The shipped weights' sidecars against the model card: no eval-only attack was ever
used for training, and the card names every training source."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from core.detectors.registry import MODELS
from core.training.vocode import EVAL_ONLY_SYSTEMS

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


def _held_out_demospoof(root):
    """DemoSpoof dev and eval: their sources (first column) and system ids"""
    from core.audio.protocol import parse_protocol

    entries = [e for split in ("dev", "eval")
               for e in parse_protocol(root / "protocols" / f"demospoof.{split}.txt")]  # fmt: skip
    return {e.speaker for e in entries}, {e.system for e in entries if e.is_spoof}


def leaks(side: dict, held_sources: set, held_systems: set) -> list[str]:
    """every way a sidecar's training data touches held-out data, named"""
    data, found = side["data"], []
    protocols = [data["train_protocol"], *(x["protocol"] for x in data.get("extra_train", []))]
    for p in protocols:
        if p.rsplit("/", 1)[-1].startswith(("demospoof.dev", "demospoof.eval", "minispoof.eval")):
            found.append(f"trained on {p}")
    for m in data.get("matched_dev", []):
        if "eval" in m["protocol"]:
            found.append(f"chose epochs on {m['protocol']}")
    if "train_sources" not in data:  # trained before sources were recorded: MiniSpoof only
        found += [f"{p}: no train_sources recorded" for p in protocols if "demospoof" in p]
        return found
    if set(data["train_sources"]) != set(protocols):
        found.append("train_sources do not cover every training protocol")
    for p, rec in data["train_sources"].items():
        found += [f"{p}: held-out page {s}" for s in sorted(set(rec["first_column"]) & held_sources)]
        found += [f"{p}: held-out system {s}" for s in sorted(set(rec["systems"]) & held_systems)]
        found += [f"{p}: eval-only attack {s}" for s in sorted(set(rec["systems"]) & EVAL_ONLY_SYSTEMS)]
    return found


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_no_held_out_source_or_system_in_any_training_protocol(sidecar, demospoof_dir):
    """No DemoSpoof dev/eval page (nor its systems) and no MiniSpoof eval-only system in
    any protocol a shipped model trained on, vocoded copies included (their first column
    is the source of the copied clip)"""
    assert leaks(json.loads(sidecar.read_text()), *_held_out_demospoof(demospoof_dir)) == []


def test_leakage_check_catches_held_out_pages_systems_and_protocols(demospoof_dir):
    held_sources, held_systems = _held_out_demospoof(demospoof_dir)
    assert {"diffwavedemo", "starganv2vc", "cotatron"} <= held_sources
    system = sorted(held_systems)[0]
    side = {"data": {
        "train_protocol": "x/minispoof.train.txt",
        "extra_train": [{"protocol": "cache/vocoded-demo/vocoded.train.txt"},
                        {"protocol": "d/demospoof.eval.txt"}],
        "matched_dev": [{"protocol": "d/demospoof.dev.txt"}],
        "train_sources": {
            "x/minispoof.train.txt": {"first_column": ["LS1"], "systems": ["M01", "M10"]},
            "cache/vocoded-demo/vocoded.train.txt": {"first_column": ["vits", "diffwavedemo"],
                                                     "systems": ["V03"]},
            "d/demospoof.eval.txt": {"first_column": ["portaspeech"], "systems": [system]},
        }}}  # fmt: skip
    found = leaks(side, held_sources, held_systems)
    assert "trained on d/demospoof.eval.txt" in found
    assert "cache/vocoded-demo/vocoded.train.txt: held-out page diffwavedemo" in found
    assert "x/minispoof.train.txt: eval-only attack M10" in found
    assert f"d/demospoof.eval.txt: held-out system {system}" in found
    assert not any("demospoof.dev" in f for f in found)  # dev may choose epochs
    side["data"]["matched_dev"] = [{"protocol": "d/demospoof.eval.txt"}]
    assert "chose epochs on d/demospoof.eval.txt" in leaks(side, held_sources, held_systems)
