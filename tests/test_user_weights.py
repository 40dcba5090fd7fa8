"""Bring your own weights (issue 12): `weights add / list / remove / verify`, `train
--register`, the user registry's failure modes, the published AASIST checkpoint under a
key of one's own, and a user model going through the Engine like a built-in one
(checkpoint formats: test_checkpoints). Every test runs in a temp weights directory;
the user models it adds leave MODELS at teardown (the ``wdir`` fixture)."""

from __future__ import annotations

import io
import json
import re
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn as nn

from core.cli import main
from core.detectors import registry
from core.detectors.detect import Detector
from core.detectors.networks.inc_tssdnet import IncTSSDNet
from core.detectors.networks.tssdnet import ResTSSDNet
from core.detectors.registry import (
    MODELS,
    PROJECT_ROOT,
    WEIGHTS_ENV,
    file_sha256,
    load_model,
    load_user_models,
    user_registry_problems,
)
from core.detectors.user_registry import REGISTRY_NAME
from core.detectors.user_weights import add_weights, remove_weights
from core.engine import service

SR = 16_000


@pytest.fixture
def wdir(tmp_path, monkeypatch):
    """an empty weights directory as $DEEPFAKE_WEIGHTS_DIR; MODELS restored afterwards"""
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv(WEIGHTS_ENV, str(d))
    before, problems = dict(MODELS), user_registry_problems()
    yield d
    for key in set(MODELS) - set(before):
        service._DETECTORS.pop(key, None)
    MODELS.clear()
    MODELS.update(before)
    registry._USER_PROBLEMS[:] = problems


def random_state(net_cls, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    net = net_cls()
    for m in net.modules():  # non-trivial running statistics, so eval mode differs
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def direct_logits(net_cls, state: dict, x: torch.Tensor) -> torch.Tensor:
    net = net_cls()
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        return net.eval()(x)


def registry_logits(key: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_model(key, device="cpu")(x)


def wav_bytes(seconds: float = 7.0, seed: int = 0) -> bytes:
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(t.size)
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), SR, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# --- add -> analyze -> explain -> remove -------------------------------------------


def test_add_analyze_explain_remove_round_trip(wdir, tmp_path, capsys):
    state = random_state(ResTSSDNet)
    src = tmp_path / "mine.pt"
    torch.save(state, src)
    sha = file_sha256(src)
    rc = main(["weights", "add", "rt-tssd", "--arch", "tssd1d", "--file", str(src),
               "--name", "My Res-TSSDNet", "--provenance", "trained at home"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    spec = MODELS["rt-tssd"]
    assert (spec.origin, spec.display_name, spec.provenance) == ("user", "My Res-TSSDNet", "trained at home")
    assert spec.weights == f"user/{sha}.pt" and spec.sha256 == sha
    assert file_sha256(wdir / spec.weights) == sha  # a content-addressed copy
    saved = json.loads((wdir / REGISTRY_NAME).read_text())
    assert saved["models"]["rt-tssd"]["sha256"] == sha
    assert spec.to_json()["origin"] == "user" and "rt-tssd" in registry.available_models()

    eng = service.Engine(tmp_path / "a.db")
    a = eng.analyze(wav_bytes(), "call.wav", models=["rt-tssd"])
    v = a.verdicts["rt-tssd"]
    assert v.weights_sha256 == sha and len(v.windows) == 2  # 7 s: windows at 0 and 1 s
    # the engine's verdict is the directly loaded network's
    net = ResTSSDNet()
    net.load_state_dict(state)
    expected = Detector(spec, net.eval()).score(eng.audio(a.sha256)).p_spoof
    assert v.p_spoof == pytest.approx(expected, abs=1e-9)
    r = eng.explain(a.sha256, "rt-tssd", "gradcam", segments=4)
    assert not r.cached and r.explanation.model == "rt-tssd"
    assert r.explanation.values.shape == (4,) and np.isfinite(r.explanation.values).all()
    assert eng.explain(a.sha256, "rt-tssd", "gradcam", segments=4).cached

    capsys.readouterr()
    assert main(["weights", "remove", "rt-tssd", "--yes"]) == 0
    assert "rt-tssd" not in MODELS and not (wdir / spec.weights).exists()
    assert "rt-tssd" not in json.loads((wdir / REGISTRY_NAME).read_text())["models"]
    # nothing in the store is deleted: the verdict and the explanation stay in the history
    again = service.Engine(tmp_path / "a.db").analysis(a.sha256)
    assert again.verdicts["rt-tssd"].p_spoof == v.p_spoof
    assert [e["model"] for e in again.explanations] == ["rt-tssd"]
    capsys.readouterr()
    assert main(["weights", "list", "--json"]) == 0
    assert "rt-tssd" not in {m["key"] for m in json.loads(capsys.readouterr().out)}


def test_remove_asks_unless_yes(wdir, tmp_path, monkeypatch, capsys):
    torch.save(random_state(IncTSSDNet), tmp_path / "inc.pt")
    add_weights("ask-me", arch="inc-tssdnet", file=tmp_path / "inc.pt")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal
    assert main(["weights", "remove", "ask-me"]) == 1
    assert "--yes" in one_line_error(capsys) and "ask-me" in MODELS

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["weights", "remove", "ask-me"]) == 1 and "ask-me" in MODELS
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["weights", "remove", "ask-me"]) == 0 and "ask-me" not in MODELS
    assert main(["weights", "remove", "tssd1d", "--yes"]) == 1
    assert "built in" in one_line_error(capsys) and "tssd1d" in MODELS


# --- train --register ----------------------------------------------------------------


def write_corpus(root, prefix: str, n_per_class: int = 2) -> str:
    """tone = bona fide, noise = spoof, 0.2 s FLAC each; returns the protocol path"""
    lines = []
    t = np.arange(int(0.2 * SR)) / SR
    for i in range(n_per_class):
        tone = 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)
        noise = 0.3 * np.random.default_rng(i).standard_normal(t.size)
        for label, x in (("bonafide", tone), ("spoof", noise)):
            file_id = f"{prefix}_{label}_{i}"
            sf.write(root / f"{file_id}.flac", x.astype(np.float32), SR)
            lines.append(f"SPK {file_id} - {'-' if label == 'bonafide' else 'A01'} {label}")
    protocol = root / f"{prefix}.txt"
    protocol.write_text("\n".join(lines) + "\n")
    return str(protocol)


def test_train_register_gives_the_trained_logits(wdir, tmp_path, capsys):
    from core.engine.cards import model_cards

    audio = tmp_path / "audio"
    audio.mkdir()
    train_p, dev_p = write_corpus(audio, "train"), write_corpus(audio, "dev")
    out = tmp_path / "runs" / "tiny.pt"
    rc = main(["train", "--arch", "tssd1d", "--protocol", train_p, "--audio-dir", str(audio),
               "--dev-protocol", dev_p, "--out", str(out), "--epochs", "1",
               "--batch-size", "4", "--no-progress", "--register", "tiny-trained"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    spec = MODELS["tiny-trained"]
    side = json.loads(out.with_suffix(".json").read_text())
    assert spec.sha256 == side["sha256"] == file_sha256(out) and spec.origin == "user"
    assert spec.provenance.startswith("trained with `python -m core train --arch tssd1d` on")
    assert "(2 bona fide, 2 spoof); 1 of 1 epochs" in spec.provenance
    assert f"best dev EER {100 * side['dev_eer']:.2f} % at epoch 1" in spec.provenance
    x = torch.randn(2, 96_000, generator=torch.Generator().manual_seed(0))
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert torch.equal(registry_logits("tiny-trained", x), direct_logits(ResTSSDNet, state, x))
    # the card and the measured EER come from the sidecar kept beside the copy
    card = next(c for c in model_cards() if c["key"] == "tiny-trained")
    assert card["model_card"].startswith("# tiny-trained") and side["command"] in card["model_card"]
    assert any("dev EER" in e and "best epoch 1 of 1" in e for e in card["eers"])
    assert "Added by the user" in card["limits"][2]


def test_register_refuses_a_taken_key_before_training(wdir, tmp_path, capsys):
    rc = main(["train", "--arch", "tssd1d", "--protocol", "nope.txt", "--audio-dir", ".",
               "--dev-protocol", "nope.txt", "--out", str(tmp_path / "x.pt"),
               "--register", "tssd1d"])  # fmt: skip
    assert rc == 1 and "taken by a built-in model" in one_line_error(capsys)


# --- errors leave everything as it was -----------------------------------------------


def test_wrong_arch_and_non_checkpoints_are_one_line_errors(wdir, tmp_path, capsys):
    torch.save(random_state(IncTSSDNet), tmp_path / "inc.pt")
    assert main(["weights", "add", "first", "--arch", "inc-tssdnet", "--file", str(tmp_path / "inc.pt")]) == 0
    reg_before = (wdir / REGISTRY_NAME).read_bytes()
    files_before = sorted(p.name for p in (wdir / "user").iterdir())
    capsys.readouterr()

    torch.save(random_state(ResTSSDNet), tmp_path / "res.pt")
    assert main(["weights", "add", "oops", "--arch", "aasist", "--file", str(tmp_path / "res.pt")]) == 1
    err = one_line_error(capsys)
    assert "does not fit arch 'aasist'" in err and "missing keys" in err and "unexpected keys" in err
    assert "conv1.weight" in err and "(+" in err and err.endswith("it fits --arch tssd1d")

    (tmp_path / "notes.pt").write_text("not weights at all\n")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a whole pickled module
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")  # no tensors
    (tmp_path / "empty.pt").write_bytes(b"")
    cases = {"notes.pt": r"not a (PyTorch|state-dict) checkpoint", "empty.pt": "not a PyTorch checkpoint",
             "module.pt": r"weights_only=True\) refused it \(a pickled model object",
             "meta.pt": "not a checkpoint: a dict with keys epoch, lr", "absent.pt": "no such file"}  # fmt: skip
    for name, expected in cases.items():
        assert main(["weights", "add", "oops", "--arch", "tssd1d", "--file", str(tmp_path / name)]) == 1
        err = one_line_error(capsys)
        assert re.search(expected, err) and name in err, err
    assert main(["weights", "add", "first", "--arch", "tssd1d", "--file", str(tmp_path / "res.pt")]) == 1
    assert "'first' is taken by a user model" in one_line_error(capsys)
    assert main(["weights", "add", "two", "--arch", "tssd1d", "--file", str(tmp_path / "res.pt"),
                 "--config", '{"channels": 3}']) == 1  # fmt: skip
    assert "unknown config keys channels" in one_line_error(capsys)
    assert (wdir / REGISTRY_NAME).read_bytes() == reg_before
    assert sorted(p.name for p in (wdir / "user").iterdir()) == files_before
    assert [k for k, s in MODELS.items() if s.origin == "user"] == ["first"]


def test_a_raw_pickle_is_refused_in_one_line_without_warnings(wdir, tmp_path, capsys):
    import pickle
    import warnings

    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"conv1.weight": [0.1, 0.2]}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # whatever would have been printed
        argv = ["weights", "add", "raw", "--arch", "tssd1d", "--file", str(raw)]
        assert main(argv) == 1
    assert "refused it (a pickled model object" in one_line_error(capsys)
    assert [str(w.message) for w in caught] == []


def test_a_key_is_taken_once_and_comes_back_only_with_its_meaning(wdir, tmp_path):
    torch.save(random_state(IncTSSDNet), tmp_path / "inc.pt")
    add_weights("mine", arch="inc-tssdnet", file=tmp_path / "inc.pt")
    for key in ("mine", "tssd1d", "aasist-official"):
        with pytest.raises(registry.WeightsError, match="is taken by"):
            add_weights(key, arch="inc-tssdnet", file=tmp_path / "inc.pt")
    with pytest.raises(registry.WeightsError, match="lower-case"):
        add_weights("Bad Key", arch="inc-tssdnet", file=tmp_path / "inc.pt")
    remove_weights("mine")
    # stored results of "mine" used spoof index 1: the key cannot return with another
    with pytest.raises(registry.WeightsError, match="used before for these weights"):
        add_weights("mine", arch="inc-tssdnet", file=tmp_path / "inc.pt", spoof_index=0)
    assert add_weights("mine", arch="inc-tssdnet", file=tmp_path / "inc.pt").spoof_index == 1


def test_a_corrupt_user_registry_is_reported_and_kept(wdir, tmp_path, capsys):
    torch.save(random_state(IncTSSDNet), tmp_path / "inc.pt")
    spec = add_weights("kept", arch="inc-tssdnet", file=tmp_path / "inc.pt")
    good = (wdir / REGISTRY_NAME).read_bytes()
    broken = good[: len(good) // 2]
    (wdir / REGISTRY_NAME).write_bytes(broken)

    problems = load_user_models()
    assert len(problems) == 1 and str(wdir / REGISTRY_NAME) in problems[0]
    assert "not valid JSON" in problems[0] and user_registry_problems() == problems
    assert "kept" not in MODELS and {"tssd1d", "aasist-official"} <= set(MODELS)
    # built-in models keep working (the shipped weights, in the project's directory)
    shipped = load_model("tssd1d", directory=PROJECT_ROOT / "weights", device="cpu")
    with torch.no_grad():
        assert shipped(torch.zeros(1, 96_000)).shape == (1, 2)

    capsys.readouterr()
    assert main(["weights", "add", "more", "--arch", "inc-tssdnet", "--file", str(tmp_path / "inc.pt")]) == 1
    assert str(wdir / REGISTRY_NAME) in one_line_error(capsys)
    assert main(["weights", "remove", "kept", "--yes"]) == 1
    assert "not valid JSON" in one_line_error(capsys)
    assert main(["weights", "verify"]) == 1
    assert main(["models"]) == 1
    out, err = capsys.readouterr()
    assert "tssd1d" in out and "not valid JSON" in err
    # nothing was deleted or rewritten: restoring the file restores the model
    assert (wdir / REGISTRY_NAME).read_bytes() == broken and (wdir / spec.weights).exists()
    (wdir / REGISTRY_NAME).write_bytes(good)
    assert load_user_models() == [] and MODELS["kept"].sha256 == spec.sha256


def test_bad_entries_skip_only_themselves(wdir, tmp_path):
    torch.save(random_state(IncTSSDNet), tmp_path / "inc.pt")
    add_weights("fine", arch="inc-tssdnet", file=tmp_path / "inc.pt")
    data = json.loads((wdir / REGISTRY_NAME).read_text())
    entry = data["models"]["fine"]
    data["models"]["tssd1d"] = dict(entry)  # a built-in's key, written by hand
    data["models"]["lost-arch"] = {**entry, "arch": "no-such-arch"}
    (wdir / REGISTRY_NAME).write_text(json.dumps(data))
    problems = load_user_models()
    assert [k for k, s in MODELS.items() if s.origin == "user"] == ["fine"]
    assert MODELS["tssd1d"].origin == "built-in" and len(problems) == 2
    assert any("'tssd1d' has the key of a built-in" in p for p in problems)
    assert any("unknown arch 'no-such-arch'" in p for p in problems)


def test_verify_rehashes_every_file(wdir, tmp_path, capsys):
    for seed, key in enumerate(["good", "tampered", "gone"]):
        torch.save(random_state(IncTSSDNet, seed), tmp_path / f"{key}.pt")
        add_weights(key, arch="inc-tssdnet", file=tmp_path / f"{key}.pt")
    assert main(["weights", "verify"]) == 0
    capsys.readouterr()
    tampered = wdir / MODELS["tampered"].weights
    data = bytearray(tampered.read_bytes())
    data[-10] ^= 0xFF
    tampered.write_bytes(bytes(data))
    (wdir / MODELS["gone"].weights).unlink()
    assert main(["weights", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    status = {c["key"]: c["status"] for c in report["checks"]}
    assert (status["good"], status["tampered"], status["gone"]) == ("ok", "checksum mismatch", "missing")
    assert status["aasist-official"] == "not installed" and report["problems"] == []
    with pytest.raises(registry.WeightsError, match="refusing to load"):
        load_model("tampered", device="cpu")


# --- the published AASIST checkpoint under a key of one's own ------------------------


def test_official_aasist_added_under_a_new_key_reproduces_the_reference(wdir, aasist_official_dir):
    ref = json.loads((aasist_official_dir / "reference_logits.json").read_text())
    x = torch.from_numpy(np.load(aasist_official_dir / "reference_logits.inputs.npy"))
    spec = add_weights("my-aasist", arch="aasist", file=aasist_official_dir / "AASIST.pth",
                       provenance="clovaai/aasist AASIST.pth, added by hand")  # fmt: skip
    assert spec.sha256 == MODELS["aasist-official"].sha256 and spec.spoof_index == 0
    assert torch.max(torch.abs(registry_logits("my-aasist", x) - torch.tensor(ref["AASIST"]["logits"]))) <= 1e-4
